//! A network's table ([`Layer`]s) turned into what a pass needs: the steps
//! in order, each reading one value and writing another; every value's
//! length per sample; the parameter tensors; the activated layers. Both
//! backends size their buffers from it and run the same loop over it
//! (`pass.rs`), so nothing else is sized or indexed by layer.

use super::arch::{activated_at, conv_at, count_before, params_at, shape_before, weights_of, Activated, Architecture, Kind, Layer, ParamSpec, INPUT};
use super::layers::{BatchNorm, Conv2d, Dense, MaxPool2};
use std::ops::Range;
use std::sync::OnceLock;

/// A tensor a pass reads or writes, one per sample: the input images
/// (`Value(0)`), then each layer's output. Dropout and flattening work in
/// place, so their output is their input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value(pub usize);

/// A gradient buffer of the backward pass: the loss's gradient with respect
/// to the logits, and two buffers the layers pass their gradient between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grad {
    Logits,
    A,
    B,
}

impl Grad {
    /// The buffer's place in a backend's array of three.
    pub fn index(self) -> usize {
        match self {
            Grad::Logits => 0,
            Grad::A => 1,
            Grad::B => 2,
        }
    }

    /// The buffer to write into when the gradient is in `self`.
    pub fn spare(self) -> Grad {
        if self == Grad::A {
            Grad::B
        } else {
            Grad::A
        }
    }
}

/// A layer's parameters: where they are, and what the profile calls its passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weights {
    /// The index of the weight tensor in [`Plan::params`].
    pub tensor: usize,
    /// The bias's, when the layer has one (the next tensor).
    pub bias: Option<usize>,
    /// `<layer> forward` and `<layer> backward`.
    pub stages: [&'static str; 2],
}

/// What a step computes. `index` numbers the steps of one kind (the
/// backends keep per-layer state by it: saved activations, pooling winners,
/// dropout masks, im2col matrices).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Conv { layer: Conv2d, index: usize, weights: Weights },
    Dense { layer: Dense, weights: Weights },
    /// `tensors` indexes γ in [`Plan::params`]; β, the moving mean and the
    /// moving variance follow.
    BatchNorm { layer: BatchNorm, index: usize, tensors: usize },
    /// The function under study, on the `index`-th activated layer.
    Activation { index: usize },
    MaxPool { layer: MaxPool2, index: usize },
    Dropout { rate: f32, index: usize },
    Flatten,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub op: Op,
    pub input: Value,
    pub output: Value,
}

#[derive(Debug)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Length per sample of each value.
    pub values: Vec<usize>,
    /// The parameter tensors, in the flat vector's order.
    pub params: Vec<ParamSpec>,
    /// Where each tensor lies in the flat vector.
    pub ranges: Vec<Range<usize>>,
    pub activated: Vec<Activated>,
    pub dropouts: usize,
    pub pools: usize,
    pub convs: usize,
    pub norms: usize,
    /// The last value: one logit per class.
    pub logits: Value,
}

impl Plan {
    /// The plan of `layers`, wired in order: each step reads the previous
    /// step's output.
    pub fn new(layers: &[Layer]) -> Plan {
        let mut values = vec![INPUT.iter().product()];
        let mut steps: Vec<Step> = Vec::new();
        let mut params = Vec::new();
        let mut activated = Vec::new();
        let mut current = Value(0);
        for (i, layer) in layers.iter().enumerate() {
            let (s, out) = (shape_before(layers, i), shape_before(layers, i + 1));
            let count = |k: Kind| count_before(layers, i, k);
            // Built once per network (`Architecture::plan`), so leaking the names costs nothing.
            let (tensor, tensors) = (weights_of(layers, i), params_at(layers, i).1);
            let weights = |name: &str| Weights { tensor, bias: (tensors == 2).then_some(tensor + 1), stages: [format!("{name} forward"), format!("{name} backward")].map(|s| &*Box::leak(s.into_boxed_str())) };
            let op = match *layer {
                Layer::BatchNorm { .. } => Op::BatchNorm { layer: BatchNorm { positions: s[0] * s[1], channels: s[2] }, index: count(Kind::Norm), tensors: tensor },
                Layer::Conv { name, .. } => Op::Conv { layer: Conv2d(conv_at(layers, i)), index: count(Kind::Conv), weights: weights(name) },
                Layer::Dense { name, .. } => Op::Dense { layer: Dense { inputs: s[2], outputs: out[2] }, weights: weights(name) },
                Layer::Activation => Op::Activation { index: count(Kind::Activation) },
                Layer::MaxPool => Op::MaxPool { layer: MaxPool2 { h: s[0], w: s[1], c: s[2] }, index: count(Kind::Pool) },
                Layer::Dropout(rate) => Op::Dropout { rate, index: count(Kind::Dropout) },
                Layer::Flatten => Op::Flatten,
            };
            let (specs, count) = params_at(layers, i);
            params.extend_from_slice(&specs[..count]);
            if matches!(layer, Layer::Activation) {
                activated.push(activated_at(layers, i));
            }
            let output = if matches!(op, Op::Dropout { .. } | Op::Flatten) {
                current
            } else {
                values.push(out.iter().product());
                Value(values.len() - 1)
            };
            steps.push(Step { op, input: current, output });
            current = output;
        }
        let n = layers.len();
        let mut at = 0;
        let ranges = params
            .iter()
            .map(|p| {
                at += p.len;
                at - p.len..at
            })
            .collect();
        Plan {
            steps,
            values,
            params,
            ranges,
            activated,
            dropouts: count_before(layers, n, Kind::Dropout),
            pools: count_before(layers, n, Kind::Pool),
            convs: count_before(layers, n, Kind::Conv),
            norms: count_before(layers, n, Kind::Norm),
            logits: current,
        }
    }

    /// Values in the flat parameter vector.
    pub fn param_count(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.end)
    }

    /// Values per sample of `v`.
    pub fn len(&self, v: Value) -> usize {
        self.values[v.0]
    }

    /// Values per sample of the largest tensor a gradient flows through.
    pub fn largest(&self) -> usize {
        self.values.iter().copied().max().unwrap_or(0)
    }

    pub fn image_len(&self) -> usize {
        self.len(Value(0))
    }

    pub fn classes(&self) -> usize {
        self.len(self.logits)
    }

    /// The pre- and post-activation values of the `index`-th activated layer.
    pub fn activation(&self, index: usize) -> (Value, Value) {
        self.steps.iter().find(|s| s.op == Op::Activation { index }).map(|s| (s.input, s.output)).expect("no such activated layer")
    }

    /// The activated layer that the layer at step `i` feeds, if any (a
    /// batch normalisation may stand between).
    pub fn activates(&self, i: usize) -> Option<usize> {
        match self.steps.get(i + 1)?.op {
            Op::Activation { index } => Some(index),
            Op::BatchNorm { .. } => self.activates(i + 1),
            _ => None,
        }
    }

    /// A layer's output by the fixtures' names: a conv or dense layer's
    /// (after its activation) by its name, the `k`-th pooling's as `poolk`.
    pub fn named_output(&self, name: &str) -> Option<Value> {
        if let Some(a) = self.activated.iter().position(|a| a.name == name) {
            return Some(self.activation(a).1);
        }
        let k: usize = name.strip_prefix("pool")?.parse().ok()?;
        self.steps.iter().find(|s| matches!(s.op, Op::MaxPool { index, .. } if index + 1 == k)).map(|s| s.output)
    }
}

impl Architecture {
    /// This network's plan, built once.
    pub fn plan(self) -> &'static Plan {
        static PLANS: [OnceLock<Plan>; Architecture::ALL.len()] = [const { OnceLock::new() }; Architecture::ALL.len()];
        let at = Architecture::ALL.iter().position(|&a| a == self).expect("every architecture is in ALL");
        PLANS[at].get_or_init(|| Plan::new(self.layers()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::arch::{ACTIVATED, DROPOUT_RATES, PARAMS};

    #[test]
    fn the_article_plan_wires_each_step_to_the_last_and_agrees_with_the_tables() {
        let plan = Architecture::Article.plan();
        assert_eq!(plan.params, PARAMS);
        assert_eq!((plan.ranges.to_vec(), plan.param_count()), (crate::nn::arch::param_ranges().to_vec(), crate::nn::arch::param_count()));
        assert_eq!(plan.activated, ACTIVATED);
        assert_eq!((plan.image_len(), plan.classes(), plan.dropouts, plan.pools, plan.convs, plan.norms), (3072, 10, 3, 2, 4, 0));
        // Each step reads what the one before wrote, with the length it wrote.
        for w in plan.steps.windows(2) {
            assert_eq!(w[1].input, w[0].output);
        }
        for s in &plan.steps {
            let (i, o) = (plan.len(s.input), plan.len(s.output));
            match s.op {
                Op::Conv { layer, .. } => assert_eq!((i, o), (layer.0.in_len(), layer.0.out_len())),
                Op::Dense { layer, .. } => assert_eq!((i, o), (layer.inputs, layer.outputs)),
                Op::MaxPool { layer, .. } => assert_eq!((i, o), (layer.in_len(), layer.out_len())),
                Op::Activation { index } => assert_eq!((i, o), (ACTIVATED[index].len(), ACTIVATED[index].len())),
                Op::Dropout { rate, index } => assert_eq!((s.input == s.output, rate), (true, DROPOUT_RATES[index])),
                Op::BatchNorm { .. } => unreachable!("the article's network has no batch normalisation"),
                Op::Flatten => assert_eq!(s.input, s.output),
            }
        }
        assert_eq!(plan.largest(), 32 * 32 * 32);
        assert_eq!(plan.len(plan.named_output("pool2").unwrap()), 6 * 6 * 64);
        assert_eq!(plan.named_output("dense1"), Some(plan.activation(4).1));
        assert_eq!((plan.activates(0), plan.activates(1), plan.activates(16)), (Some(0), None, None));
    }
}

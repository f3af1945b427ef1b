//! The network on the CPU: its buffers, sized from the plan (`plan.rs`),
//! and the operations the passes (`pass.rs`) call, over the layers of
//! `layers.rs` and the activation kernels.
//!
//! All parameters sit in one flat vector (Keras' order: conv1 kernel, conv1
//! bias, …, dense2 bias) so the optimizer, checkpoints and fixtures see one
//! slice. Every buffer is sized once for the largest batch: a training step
//! allocates nothing.

pub use super::arch::{param_count, param_ranges, ParamSpec, ACTIVATED, CLASSES, DROPOUT_RATES, IMAGE_LEN, PARAMS};
use super::arch::{Architecture, Init};
use super::layers::{BatchNorm, BatchNormSaved, Conv2d, Dense, Dropout, MaxPool2, Moving};
use super::loss::{softmax_cross_entropy, BatchStats};
use super::pass::{self, Mode, Ops};
use super::plan::{Grad, Op, Plan, Value, Weights};
use crate::activation::kernels::{self, ElementWise, Groups, Saved};
use crate::engine::cpu::SendPtr;
use crate::activation::Activation;
use crate::engine::profile::{stage, stage_of};
use crate::engine::rng::{Purpose, Rng};
use anyhow::Result;
use rayon::prelude::*;
use std::ops::Range;

/// Per-layer statistics gathered during a forward/backward pass (diagnostics).
#[derive(Clone, Debug, Default)]
pub struct LayerTap {
    /// Pre-activation values of each activated layer.
    pub pre: Vec<f32>,
    /// Post-activation values (before dropout).
    pub post: Vec<f32>,
    /// Slope of the activation at each element.
    pub slope: Vec<f32>,
    /// Gradient reaching the layer's input (d loss / d input of the conv/dense).
    pub input_grad: Vec<f32>,
}

/// The plan's tensors and each layer's state for one batch size.
struct Workspace {
    max_batch: usize,
    /// The plan's values, `max_batch` samples each.
    values: Vec<Vec<f32>>,
    /// The gradient buffers, by [`Grad`]: the logits', then two for the layers.
    grads: [Vec<f32>; 3],
    /// Per activated layer: what its backward pass needs.
    saved: Vec<Saved>,
    /// Per pooling: which input won each output.
    argmax: Vec<Vec<u8>>,
    /// Per dropout: the mask of the last training pass.
    masks: Vec<Vec<f32>>,
    /// Per batch normalisation: x̂ and 1/σ.
    norms: Vec<BatchNormSaved>,
    /// Inference's group minima (layer-wise functions).
    mins: Vec<f32>,
    /// The bias of a layer that has none.
    zeros: Vec<f32>,
}

impl Workspace {
    fn new(plan: &Plan, act: Activation, b: usize) -> Workspace {
        let z = |n: usize| vec![0f32; b * n];
        let (mut argmax, mut masks, mut norms) = (Vec::new(), Vec::new(), Vec::new());
        for s in &plan.steps {
            match s.op {
                Op::MaxPool { layer, .. } => argmax.push(vec![0u8; b * layer.out_len()]),
                Op::Dropout { .. } => masks.push(z(plan.len(s.input))),
                Op::BatchNorm { layer, .. } => norms.push(BatchNormSaved { xhat: z(layer.per_sample()), ..Default::default() }),
                _ => {}
            }
        }
        Workspace {
            max_batch: b,
            values: plan.values.iter().map(|&len| z(len)).collect(),
            grads: [z(plan.classes()), z(plan.largest()), z(plan.largest())],
            saved: plan.activated.iter().map(|a| Saved::with_capacity(act, Groups { samples: b, spatial: a.spatial, channels: a.channels })).collect(),
            argmax,
            masks,
            norms,
            mins: Vec::new(),
            zeros: vec![0.0; plan.largest()],
        }
    }

    fn value(&self, v: Value, n: usize, plan: &Plan) -> &[f32] {
        &self.values[v.0][..n * plan.len(v)]
    }
}

/// `values[x]` to read and `values[y]` to write (a step's input precedes its output).
fn read_write<T>(values: &mut [Vec<T>], x: usize, y: usize) -> (&[T], &mut [T]) {
    assert!(x < y, "a step reads an earlier value than it writes");
    let (before, from) = values.split_at_mut(y);
    (&before[x], &mut from[0])
}

/// Gradient buffer `dy` to read and `dx` to write.
fn grad_pair(grads: &mut [Vec<f32>; 3], dy: Grad, dx: Grad) -> (&[f32], &mut [f32]) {
    let [a, b] = grads.get_disjoint_mut([dy.index(), dx.index()]).expect("two gradient buffers");
    (a, b)
}

/// A Keras training step: dropout keyed by the run's generator and the
/// global step; `logged` when the trainer reads the step's pre-activations
/// afterwards (`steps.csv`). Other steps need not keep them.
#[derive(Clone, Copy)]
pub struct TrainingStep<'a> {
    pub rng: &'a Rng,
    pub step: u64,
    pub logged: bool,
}

pub struct Model {
    pub act: Activation,
    pub params: Vec<f32>,
    pub grads: Vec<f32>,
    plan: &'static Plan,
    ws: Workspace,
}

/// The CPU's operations for one pass: the model, the dropout generator of
/// a training pass and, when diagnostics probe, where the taps go.
struct Cpu<'a> {
    m: &'a mut Model,
    rng: Option<&'a Rng>,
    taps: Option<&'a mut [LayerTap]>,
    /// Whether the pass keeps the pre-activations of element-wise functions
    /// (the backward pass reads only their slopes).
    keep_pre: bool,
}

/// A layer's weights and bias, and the gradients of both (the bias's: None where it has none).
type LayerTensors<'a> = (&'a [f32], &'a [f32], &'a mut [f32], Option<&'a mut [f32]>);

/// A layer's weights and bias (zeros where it has none), and their gradients.
fn tensors<'a>(ranges: &[Range<usize>], params: &'a [f32], grads: &'a mut [f32], zeros: &'a [f32], w: Weights, outputs: usize) -> LayerTensors<'a> {
    let rw = ranges[w.tensor].clone();
    match w.bias {
        Some(b) => {
            let rb = ranges[b].clone();
            let (gw, gb) = grads[rw.start..rb.end].split_at_mut(rw.len());
            (&params[rw], &params[rb], gw, Some(gb))
        }
        None => (&params[rw.clone()], &zeros[..outputs], &mut grads[rw], None),
    }
}

impl Cpu<'_> {
    fn groups(&self, index: usize, n: usize) -> Groups {
        let a = self.m.plan.activated[index];
        Groups { samples: n, spatial: a.spatial, channels: a.channels }
    }

    /// A parameter layer's forward pass: `f(weights, bias, x, y)`.
    fn layer_forward(&mut self, weights: Weights, outputs: usize, x: Value, y: Value, f: impl FnOnce(&[f32], &[f32], &[f32], &mut [f32])) {
        let Model { params, grads, ws, plan, .. } = &mut *self.m;
        let (w, b, ..) = tensors(&plan.ranges, params, grads, &ws.zeros, weights, outputs);
        let (x, y) = read_write(&mut ws.values, x.0, y.0);
        stage_of(weights.stages[0], || f(w, b, x, y));
    }

    /// A parameter layer's backward pass: `f(weights, x, dy, dw, db, dx)`.
    #[allow(clippy::type_complexity)] // the layers' own backward signature
    fn layer_backward(&mut self, weights: Weights, n: usize, x: Value, dy: Grad, dx: Option<Grad>, f: impl FnOnce(&[f32], &[f32], &[f32], &mut [f32], Option<&mut [f32]>, Option<&mut [f32]>)) {
        let Model { params, grads, ws, plan, .. } = &mut *self.m;
        let (w, _, gw, gb) = tensors(&plan.ranges, params, grads, &ws.zeros, weights, 0);
        let x = &ws.values[x.0][..n * plan.len(x)];
        let (dy, dx) = match dx {
            Some(dx) => {
                let (dy, dx) = grad_pair(&mut ws.grads, dy, dx);
                (dy, Some(dx))
            }
            None => (&ws.grads[dy.index()][..], None),
        };
        stage_of(weights.stages[1], || f(w, x, dy, gw, gb, dx));
    }
}

impl Ops for Cpu<'_> {
    fn plan(&self) -> &'static Plan {
        self.m.plan
    }

    fn conv(&mut self, layer: &Conv2d, _index: usize, weights: Weights, n: usize, x: Value, y: Value) -> Result<()> {
        self.layer_forward(weights, layer.0.cout, x, y, |w, b, x, y| layer.forward(n, w, b, x, y));
        Ok(())
    }

    fn conv_backward(&mut self, layer: &Conv2d, _index: usize, weights: Weights, n: usize, x: Value, dy: Grad, dx: Option<Grad>) -> Result<()> {
        self.layer_backward(weights, n, x, dy, dx, |w, x, dy, gw, gb, dx| layer.backward(n, w, x, dy, gw, gb, dx));
        Ok(())
    }

    fn linear(&mut self, layer: &Dense, weights: Weights, n: usize, x: Value, y: Value) -> Result<()> {
        self.layer_forward(weights, layer.outputs, x, y, |w, b, x, y| layer.forward(n, w, b, x, y));
        Ok(())
    }

    fn linear_backward(&mut self, layer: &Dense, weights: Weights, n: usize, x: Value, dy: Grad, dx: Option<Grad>) -> Result<()> {
        self.layer_backward(weights, n, x, dy, dx, |w, x, dy, gw, gb, dx| layer.backward(n, w, x, dy, gw, gb, dx));
        Ok(())
    }

    fn batch_norm(&mut self, layer: &BatchNorm, index: usize, tensors: usize, n: usize, mode: Mode, x: Value, y: Value) -> Result<()> {
        let Model { params, ws, plan, .. } = &mut *self.m;
        let (c, at) = (layer.channels, plan.ranges[tensors].start);
        let (gamma_beta, moving) = params[at..at + 4 * c].split_at_mut(2 * c);
        let (gamma, beta) = gamma_beta.split_at(c);
        let (mean, variance) = moving.split_at_mut(c);
        let (x, y) = read_write(&mut ws.values, x.0, y.0);
        let saved = mode.saves().then_some(&mut ws.norms[index]);
        stage_of("batch normalisation", || layer.forward(n, x, gamma, beta, Moving { mean, variance }, mode.batch_statistics(), y, saved));
        Ok(())
    }

    fn batch_norm_backward(&mut self, layer: &BatchNorm, index: usize, tensors: usize, n: usize, dy: Grad, dx: Grad) -> Result<()> {
        let Model { params, grads, ws, plan, .. } = &mut *self.m;
        let (c, at) = (layer.channels, plan.ranges[tensors].start);
        let (dgamma_dbeta, dmoving) = grads[at..at + 4 * c].split_at_mut(2 * c);
        let (dgamma, dbeta) = dgamma_dbeta.split_at_mut(c);
        // Not trained: a zero gradient leaves them as the forward pass set them.
        dmoving.fill(0.0);
        let (dy, dx) = grad_pair(&mut ws.grads, dy, dx);
        stage_of("batch normalisation", || layer.backward(n, dy, &params[at..at + c], &ws.norms[index], dgamma, dbeta, dx));
        Ok(())
    }

    fn activation(&mut self, index: usize, n: usize, train: bool, pre: Value, post: Value) -> Result<()> {
        let (act, groups) = (self.m.act, self.groups(index, n));
        let ws = &mut self.m.ws;
        let (pre, post) = read_write(&mut ws.values, pre.0, post.0);
        let _s = stage("activation forward");
        if train {
            kernels::forward_train(act, groups, pre, post, &mut ws.saved[index]);
        } else {
            kernels::forward_eval(act, groups, pre, post, &mut ws.mins);
        }
        Ok(())
    }

    /// With an element-wise function, each block of the convolution's rows
    /// goes through the function as soon as the block is computed, while it
    /// is in the cache: the same operations on the same values as the two
    /// passes, which read all of y back (8 MB for conv1 and for conv2).
    #[allow(clippy::too_many_arguments)]
    fn conv_activated(&mut self, layer: &Conv2d, index: usize, weights: Weights, n: usize, x: Value, y: Value, activation: usize, train: bool, post: Value) -> Result<()> {
        let Some(f) = ElementWise::of(self.m.act) else {
            return pass::conv_then_activation(self, layer, index, weights, n, x, y, activation, train, post);
        };
        let Model { params, grads, ws, plan, .. } = &mut *self.m;
        let (w, b, ..) = tensors(&plan.ranges, params, grads, &ws.zeros, weights, layer.0.cout);
        let len = n * plan.len(y);
        let [xs, ys, posts] = ws.values.get_disjoint_mut([x.0, y.0, post.0]).expect("a convolution's input, output and activation are three values");
        let ys = self.keep_pre.then_some(&mut ys[..]);
        let post_at = SendPtr(posts[..len].as_mut_ptr());
        let slope_at = train.then(|| SendPtr(ws.saved[activation].dydx[..len].as_mut_ptr()));
        let then = |first: usize, run: &mut [f32]| {
            // The pointers whole, not their fields (which are not Sync).
            let (post_at, slope_at) = (&post_at, &slope_at);
            // SAFETY: the runs of y are disjoint and within its `len`
            // values, and `post` and the slopes hold `len` values.
            let (post, slope) = unsafe {
                (std::slice::from_raw_parts_mut(post_at.0.add(first), run.len()), slope_at.as_ref().map(|s| std::slice::from_raw_parts_mut(s.0.add(first), run.len())))
            };
            f.apply(run, post, slope);
        };
        stage_of(weights.stages[0], || layer.forward_then(n, w, b, xs, ys, &then));
        Ok(())
    }

    /// With an element-wise function, each sample's input gradient is
    /// multiplied by the function's slopes as soon as it is computed, while
    /// it is in the cache: the products of the activation's backward pass,
    /// which read the whole gradient back (8 MB for conv1's activation).
    #[allow(clippy::too_many_arguments)]
    fn conv_backward_activated(&mut self, layer: &Conv2d, index: usize, weights: Weights, n: usize, x: Value, g: Grad, activation: usize, pre: Value) -> Result<Grad> {
        if ElementWise::of(self.m.act).is_none() {
            return pass::back_through_conv_then_activation(self, layer, index, weights, n, x, g, activation, pre);
        }
        let Model { params, grads, ws, plan, .. } = &mut *self.m;
        let (w, _, gw, gb) = tensors(&plan.ranges, params, grads, &ws.zeros, weights, 0);
        let xs = &ws.values[x.0][..n * plan.len(x)];
        let slope = &ws.saved[activation].dydx;
        let (dy, dx) = grad_pair(&mut ws.grads, g, g.spare());
        let then = |first: usize, run: &mut [f32]| kernels::times_slope_in_place(run, &slope[first..first + run.len()]);
        stage_of(weights.stages[1], || layer.backward_then(n, w, xs, dy, gw, gb, dx, &then));
        Ok(g.spare())
    }

    fn activation_backward(&mut self, index: usize, n: usize, pre: Value, dy: Grad, dx: Grad) -> Result<()> {
        let (act, groups) = (self.m.act, self.groups(index, n));
        let ws = &mut self.m.ws;
        let (dy, dx) = grad_pair(&mut ws.grads, dy, dx);
        stage_of("activation backward", || kernels::backward(act, groups, &ws.values[pre.0], dy, &ws.saved[index], dx));
        Ok(())
    }

    fn pool(&mut self, layer: &MaxPool2, index: usize, n: usize, x: Value, y: Value) -> Result<()> {
        let ws = &mut self.m.ws;
        let (x, y) = read_write(&mut ws.values, x.0, y.0);
        stage_of("pooling & dropout", || layer.forward(n, x, y, &mut ws.argmax[index]));
        Ok(())
    }

    fn pool_backward(&mut self, layer: &MaxPool2, index: usize, n: usize, dy: Grad, dx: Grad) -> Result<()> {
        let ws = &mut self.m.ws;
        let (dy, dx) = grad_pair(&mut ws.grads, dy, dx);
        stage_of("pooling & dropout", || layer.backward(n, dy, &ws.argmax[index], dx));
        Ok(())
    }

    fn dropout(&mut self, index: usize, rate: f32, stream: u64, n: usize, len: usize, x: Value) -> Result<()> {
        let rng = self.rng.expect("a training pass's dropout generator");
        let ws = &mut self.m.ws;
        let _s = stage("pooling & dropout");
        Dropout::forward(rng, stream, rate, &mut ws.values[x.0][..n * len], &mut ws.masks[index][..n * len], len);
        Ok(())
    }

    fn dropout_backward(&mut self, index: usize, n: usize, len: usize, g: Grad) -> Result<()> {
        let ws = &mut self.m.ws;
        stage_of("pooling & dropout", || Dropout::backward(&ws.masks[index][..n * len], &mut ws.grads[g.index()][..n * len]));
        Ok(())
    }

    /// An element-wise function takes one pass; a layer-wise one the three,
    /// as its term through the minimum needs the pooled gradient itself.
    fn back_through_pool(&mut self, activation: usize, pre: Value, pool: (&MaxPool2, usize), dropout: Option<usize>, n: usize, g: Grad) -> Result<Grad> {
        if self.m.act.uses_min() {
            return pass::back_through_pool_in_turn(self, activation, pre, pool, dropout, n, g);
        }
        let ((layer, index), ws) = (pool, &mut self.m.ws);
        let len = n * layer.out_len();
        let mask = dropout.map(|d| &ws.masks[d][..len]);
        let (dy, dx) = grad_pair(&mut ws.grads, g, g.spare());
        stage_of("pooling & dropout", || layer.backward_through(n, dy, mask, &ws.argmax[index], &ws.saved[activation].dydx, dx));
        Ok(g.spare())
    }

    fn tap_input_grad(&mut self, activation: usize, n: usize, input: Value, g: Grad) {
        let (plan, ws) = (self.m.plan, &self.m.ws);
        if let Some(taps) = self.taps.as_deref_mut() {
            let t = &mut taps[activation].input_grad;
            t.clear();
            t.extend_from_slice(&ws.grads[g.index()][..n * plan.len(input)]);
        }
    }
}

impl Model {
    /// A model of the article's network with zero parameters, able to
    /// process batches of up to `max_batch`.
    pub fn new(network: Architecture, act: Activation, max_batch: usize) -> Model {
        let plan = network.plan();
        Model { act, params: vec![0.0; plan.param_count()], grads: vec![0.0; plan.param_count()], plan, ws: Workspace::new(plan, act, max_batch) }
    }

    /// The network's plan: its tensors, parameters and activated layers.
    pub fn plan(&self) -> &'static Plan {
        self.plan
    }

    pub fn max_batch(&self) -> usize {
        self.ws.max_batch
    }

    /// Keras' defaults: Glorot-uniform kernels, zero biases and β, γ and
    /// the moving variance 1, the moving mean 0. Tensor `i` draws from
    /// stream `i`.
    pub fn init_glorot(&mut self, rng: &Rng) {
        for (i, (spec, range)) in self.plan.params.iter().zip(&self.plan.ranges).enumerate() {
            let t = &mut self.params[range.clone()];
            match spec.init {
                Init::Zeros => t.fill(0.0),
                Init::Ones => t.fill(1.0),
                Init::Glorot { fan_in, fan_out } => {
                    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt() as f32;
                    rng.fill_uniform(Purpose::Init, i as u64, t);
                    for v in t.iter_mut() {
                        *v = (2.0 * *v - 1.0) * limit;
                    }
                }
            }
        }
    }

    /// Copy a batch of u8 NHWC images into the input buffer, scaled to [0, 1] by /255.
    pub fn load_images(&mut self, images: &[u8]) -> usize {
        let n = images.len() / IMAGE_LEN;
        assert!(n <= self.ws.max_batch, "batch of {n} exceeds the workspace ({})", self.ws.max_batch);
        let _s = stage("input");
        self.ws.values[0][..images.len()].par_iter_mut().zip(images.par_iter()).for_each(|(x, &p)| *x = p as f32 / 255.0);
        n
    }

    /// Copy a batch of f32 NHWC inputs (fixtures, tests).
    pub fn load_input(&mut self, x: &[f32]) -> usize {
        let n = x.len() / IMAGE_LEN;
        assert!(n <= self.ws.max_batch);
        self.ws.values[0][..x.len()].copy_from_slice(x);
        n
    }

    /// A pass's operations on this model.
    fn cpu<'a>(&'a mut self, rng: Option<&'a Rng>, taps: Option<&'a mut [LayerTap]>) -> Cpu<'a> {
        Cpu { m: self, rng, taps, keep_pre: true }
    }

    /// Softmax cross-entropy of the last forward pass, and with `grad` its
    /// gradient with respect to the logits.
    fn loss(&mut self, n: usize, labels: &[u8], grad: bool) -> BatchStats {
        let (logits, ws) = (self.plan.logits, &mut self.ws);
        let (classes, dlogits) = (self.plan.classes(), &mut ws.grads[Grad::Logits.index()]);
        let dlogits = grad.then(|| &mut dlogits[..n * classes]);
        stage_of("loss", || softmax_cross_entropy(&ws.values[logits.0][..n * classes], labels, dlogits))
    }

    /// Loss and gradients for the loaded batch. With a training `step` this
    /// is a Keras training step's forward/backward; without, dropout is the
    /// identity (what the fixtures describe).
    pub fn loss_and_grads(&mut self, n: usize, labels: &[u8], step: Option<TrainingStep>) -> BatchStats {
        let (rng, global) = (step.map(|s| s.rng), step.map(|s| s.step));
        let keep_pre = step.is_none_or(|s| s.logged);
        pass::forward(&mut Cpu { keep_pre, ..self.cpu(rng, None) }, n, Mode::Train { dropout_step: global }).expect("the CPU's passes do not fail");
        let stats = self.loss(n, labels, true);
        pass::backward(&mut self.cpu(None, None), n, step.is_some(), false).expect("the CPU's passes do not fail");
        stats
    }

    /// Inference over the loaded batch.
    pub fn evaluate(&mut self, n: usize, labels: &[u8]) -> BatchStats {
        pass::forward(&mut self.cpu(None, None), n, Mode::Eval).expect("the CPU's passes do not fail");
        self.loss(n, labels, false)
    }

    /// An inference-mode forward and backward pass that records each
    /// activated layer's values and gradients (for diagnostics).
    pub fn probe(&mut self, n: usize, labels: &[u8], taps: &mut [LayerTap]) -> BatchStats {
        pass::forward(&mut self.cpu(None, None), n, Mode::Probe).expect("the CPU's passes do not fail");
        let stats = self.loss(n, labels, true);
        let (plan, ws) = (self.plan, &self.ws);
        for (i, t) in taps.iter_mut().enumerate() {
            let (pre, post) = plan.activation(i);
            let len = n * plan.len(pre);
            t.pre.clear();
            t.pre.extend_from_slice(&ws.values[pre.0][..len]);
            t.post.clear();
            t.post.extend_from_slice(&ws.values[post.0][..len]);
            t.slope.clear();
            t.slope.extend_from_slice(&ws.saved[i].dydx[..len]);
        }
        pass::backward(&mut self.cpu(None, Some(taps)), n, false, true).expect("the CPU's passes do not fail");
        stats
    }

    /// Each activated layer's pre-activations in the last forward pass
    /// (except a training step's that is not logged: see [`TrainingStep`]).
    pub fn pre_activations(&self, n: usize) -> Vec<&[f32]> {
        (0..self.plan.activated.len()).map(|i| self.ws.value(self.plan.activation(i).0, n, self.plan)).collect()
    }

    /// The logits of the last forward pass.
    pub fn logits(&self, n: usize) -> &[f32] {
        self.ws.value(self.plan.logits, n, self.plan)
    }

    /// The outputs of the last forward pass, by name (fixture checks):
    /// `conv1..conv4`, `dense1` (after the activation), `pool1`, `pool2`.
    pub fn layer_output(&self, name: &str, n: usize) -> Option<&[f32]> {
        Some(self.ws.value(self.plan.named_output(name)?, n, self.plan))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::arch::Role;

    /// A convolution's activation is applied to each block of rows as the
    /// convolution finishes it: the values and slopes are the whole-layer
    /// pass's, bit for bit, for a function evaluated everywhere (relu), one
    /// evaluated only at or below zero (softplus_linear) and a layer-wise
    /// one (zero_fit_linear, which is not interleaved), in training and in
    /// inference. Backward, the slopes multiply each sample's input
    /// gradient as it is computed: the parameters' gradients are those of
    /// the separate passes, which a tapping backward pass takes. With and
    /// without batch normalisation (whose activations follow it, not the
    /// convolution, so only the backward pass pairs them).
    #[test]
    fn activations_applied_per_block_equal_the_whole_layer_pass() {
        let n = 3;
        let labels = [1u8, 7, 3];
        let mut x = vec![0f32; n * IMAGE_LEN];
        Rng::new(9).fill_uniform(Purpose::Synthetic, 0, &mut x);
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for (act, network) in [Activation::Relu, Activation::SoftplusLinear, Activation::ZeroFitLinear].into_iter().flat_map(|a| [(a, Architecture::Article), (a, Architecture::ArticleBn)]) {
            let mut m = Model::new(network, act, n);
            m.init_glorot(&Rng::new(8));
            m.load_input(&x);
            for train in [true, false] {
                if train {
                    // A training pass whose backward pass taps takes the separate passes.
                    let mut taps = vec![LayerTap::default(); m.plan().activated.len()];
                    pass::forward(&mut m.cpu(None, None), n, Mode::Train { dropout_step: None }).unwrap();
                    m.loss(n, &labels, true);
                    pass::backward(&mut m.cpu(None, Some(&mut taps)), n, false, true).unwrap();
                    let separate = m.grads.clone();
                    // A training step that is not logged keeps no
                    // pre-activations (where a convolution's element-wise
                    // activation follows it), and nothing reads them: with
                    // NaN left in their place, the same values, slopes and
                    // gradients.
                    let rng = Rng::new(3);
                    let computed = |m: &mut Model, logged: bool| {
                        m.loss_and_grads(n, &labels, Some(TrainingStep { rng: &rng, step: 11, logged }));
                        let plan = m.plan();
                        let values = (0..plan.activated.len()).flat_map(|i| bits(m.ws.value(plan.activation(i).1, n, plan)).into_iter().chain(bits(&m.ws.saved[i].dydx)));
                        (bits(&m.grads), values.collect::<Vec<_>>())
                    };
                    let logged = computed(&mut m, true);
                    let plan = m.plan();
                    for i in 0..plan.activated.len() {
                        m.ws.values[plan.activation(i).0 .0].fill(f32::NAN);
                    }
                    assert!(logged == computed(&mut m, false), "{act:?} {network:?}: a step not logged");
                    let fused = ElementWise::of(act).is_some() && network == Architecture::Article;
                    let untouched = (0..plan.activated.len()).filter(|&i| m.ws.value(plan.activation(i).0, n, plan).iter().all(|v| v.is_nan())).count();
                    // conv1..conv4 (dense1's pre-activation is the dense layer's output).
                    assert_eq!(untouched, if fused { 4 } else { 0 }, "{act:?} {network:?}: pre-activations kept by a step not logged");
                    m.loss_and_grads(n, &labels, None);
                    assert_eq!(bits(&m.grads), bits(&separate), "{act:?} {network:?}: the parameters' gradients");
                } else {
                    // Other images, so that values left from training cannot pass.
                    x.reverse();
                    m.load_input(&x);
                    m.evaluate(n, &labels);
                }
                let plan = m.plan();
                for (i, a) in plan.activated.iter().enumerate() {
                    let (pre, post) = plan.activation(i);
                    let g = Groups { samples: n, spatial: a.spatial, channels: a.channels };
                    let mut want = vec![0f32; g.len()];
                    let what = format!("{act:?} {network:?}, layer {i}, training {train}");
                    if train {
                        let mut saved = Saved::with_capacity(act, g);
                        kernels::forward_train(act, g, m.ws.value(pre, n, plan), &mut want, &mut saved);
                        assert_eq!(bits(&m.ws.saved[i].dydx[..g.len()]), bits(&saved.dydx), "{what}: slopes");
                    } else {
                        kernels::forward_eval(act, g, m.ws.value(pre, n, plan), &mut want, &mut Vec::new());
                    }
                    assert_eq!(bits(m.ws.value(post, n, plan)), bits(&want), "{what}: values");
                }
            }
        }
    }

    /// The network with batch normalisation, end to end: its gradients
    /// against central differences of the loss (batch statistics, as in
    /// training), on the largest gradient of every kind of tensor, and its
    /// moving statistics moved by a training pass and used by inference.
    #[test]
    fn batch_norm_network_gradients_and_moving_statistics() {
        let n = 3;
        let mut m = Model::new(Architecture::ArticleBn, Activation::Relu, n);
        m.init_glorot(&Rng::new(5));
        let mut x = vec![0f32; n * IMAGE_LEN];
        Rng::new(6).fill_uniform(Purpose::Synthetic, 0, &mut x);
        let labels = [1u8, 7, 3];
        let loss = |m: &mut Model| {
            m.load_input(&x);
            m.loss_and_grads(n, &labels, None).mean_loss()
        };
        loss(&mut m);
        let grads = m.grads.clone();
        let plan = m.plan();
        for role in [Role::Weight, Role::Gamma, Role::Beta] {
            for (spec, range) in plan.params.iter().zip(&plan.ranges).filter(|(s, _)| s.role == role && s.layer != "dense2") {
                let i = range.clone().max_by(|&a, &b| grads[a].abs().total_cmp(&grads[b].abs())).unwrap();
                let (orig, h) = (m.params[i], 1e-3f32);
                m.params[i] = orig + h;
                let up = loss(&mut m);
                m.params[i] = orig - h;
                let down = loss(&mut m);
                m.params[i] = orig;
                let numeric = (up - down) / (2.0 * h as f64);
                let analytic = grads[i] as f64;
                assert!((analytic - numeric).abs() <= 0.05 * analytic.abs() + 1e-4, "{}: analytic {analytic} vs numeric {numeric}", spec.name());
            }
        }
        // The moving statistics are not trained, and each training pass moved them.
        let moving: Vec<_> = plan.params.iter().zip(&plan.ranges).filter(|(s, _)| matches!(s.role, Role::MovingMean | Role::MovingVariance)).map(|(_, r)| r.clone()).collect();
        assert_eq!(moving.len(), 10);
        for r in &moving {
            assert!(grads[r.clone()].iter().all(|&g| g == 0.0));
        }
        let mean = plan.ranges[plan.params.iter().position(|s| s.layer == "bn1" && s.role == Role::MovingMean).unwrap()].clone();
        assert!(m.params[mean.clone()].iter().any(|&v| v != 0.0), "a training pass moves the moving mean");
        // Inference normalises by the moving statistics: setting them to a
        // batch's own would give training's outputs; left near (0, 1) it does not.
        m.load_input(&x);
        let eval = m.evaluate(n, &labels).mean_loss();
        let train = loss(&mut m);
        assert_ne!(eval, train);
    }
}

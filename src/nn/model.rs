//! The article's CNN (the table in `arch.rs`) as one type, with its
//! forward and backward passes on the CPU.
//!
//! All parameters sit in one flat vector (Keras' order: conv1 kernel, conv1
//! bias, …, dense2 bias) so the optimizer, checkpoints and fixtures see one
//! slice. Every buffer is sized once for the largest batch: a training step
//! allocates nothing.

pub use super::arch::{param_count, param_ranges, ParamSpec, ACTIVATED, DROPOUT_RATES, PARAMS};
use super::arch::{conv, dense, pool};
use super::layers::{Conv2d, Dense, Dropout, MaxPool2};
use super::loss::{softmax_cross_entropy, BatchStats};
use crate::activation::kernels::{self, Groups, Saved};
use crate::activation::Activation;
use crate::engine::profile::{stage, stage_of};
use crate::engine::rng::{Purpose, Rng};
use rayon::prelude::*;

// The layer types, shapes from the table (`arch.rs`), each layer's input
// the previous layer's output by construction.
pub type Conv1 = Conv2d<{ conv(0).h }, { conv(0).w }, { conv(0).cin }, { conv(0).cout }, { conv(0).k }, { conv(0).pad }>;
pub type Conv2 = Conv2d<{ conv(1).h }, { conv(1).w }, { conv(1).cin }, { conv(1).cout }, { conv(1).k }, { conv(1).pad }>;
pub type Pool1 = MaxPool2<{ pool(0)[0] }, { pool(0)[1] }, { pool(0)[2] }>;
pub type Conv3 = Conv2d<{ conv(2).h }, { conv(2).w }, { conv(2).cin }, { conv(2).cout }, { conv(2).k }, { conv(2).pad }>;
pub type Conv4 = Conv2d<{ conv(3).h }, { conv(3).w }, { conv(3).cin }, { conv(3).cout }, { conv(3).k }, { conv(3).pad }>;
pub type Pool2 = MaxPool2<{ pool(1)[0] }, { pool(1)[1] }, { pool(1)[2] }>;
pub type Dense1 = Dense<{ dense(0)[0] }, { dense(0)[1] }>;
pub type Dense2 = Dense<{ dense(1)[0] }, { dense(1)[1] }>;

pub const IMAGE_LEN: usize = Conv1::IN_LEN;
pub const CLASSES: usize = Dense2::OUT;

/// Split a flat vector into its tensors.
fn split<T>(mut v: &mut [T]) -> [&mut [T]; PARAMS.len()] {
    PARAMS.map(|p| {
        let (a, b) = std::mem::take(&mut v).split_at_mut(p.len);
        v = b;
        a
    })
}

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

/// Activations and scratch for one batch size.
struct Workspace {
    max_batch: usize,
    x: Vec<f32>,
    pre1: Vec<f32>,
    a1: Vec<f32>,
    pre2: Vec<f32>,
    a2: Vec<f32>,
    p1: Vec<f32>,
    arg1: Vec<u8>,
    mask1: Vec<f32>,
    pre3: Vec<f32>,
    a3: Vec<f32>,
    pre4: Vec<f32>,
    a4: Vec<f32>,
    p2: Vec<f32>,
    arg2: Vec<u8>,
    mask2: Vec<f32>,
    pre5: Vec<f32>,
    a5: Vec<f32>,
    mask3: Vec<f32>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    saved: [Saved; 5],
    mins: Vec<f32>,
    g1: Vec<f32>,
    g2: Vec<f32>,
}

impl Workspace {
    fn new(act: Activation, b: usize) -> Workspace {
        let z = |n: usize| vec![0f32; b * n];
        let groups = Model::groups(b);
        let biggest = [Conv1::OUT_LEN, Conv2::OUT_LEN, Conv3::OUT_LEN, Conv4::OUT_LEN, Conv1::IN_LEN].into_iter().max().unwrap();
        Workspace {
            max_batch: b,
            x: z(Conv1::IN_LEN),
            pre1: z(Conv1::OUT_LEN),
            a1: z(Conv1::OUT_LEN),
            pre2: z(Conv2::OUT_LEN),
            a2: z(Conv2::OUT_LEN),
            p1: z(Pool1::OUT_LEN),
            arg1: vec![0; b * Pool1::OUT_LEN],
            mask1: z(Pool1::OUT_LEN),
            pre3: z(Conv3::OUT_LEN),
            a3: z(Conv3::OUT_LEN),
            pre4: z(Conv4::OUT_LEN),
            a4: z(Conv4::OUT_LEN),
            p2: z(Pool2::OUT_LEN),
            arg2: vec![0; b * Pool2::OUT_LEN],
            mask2: z(Pool2::OUT_LEN),
            pre5: z(Dense1::OUT),
            a5: z(Dense1::OUT),
            mask3: z(Dense1::OUT),
            logits: z(CLASSES),
            dlogits: z(CLASSES),
            saved: groups.map(|g| Saved::with_capacity(act, g)),
            mins: Vec::new(),
            g1: z(biggest),
            g2: z(biggest),
        }
    }
}

/// Dropout during a training step: the run's generator and the global step.
#[derive(Clone, Copy)]
pub struct DropoutKey<'a> {
    pub rng: &'a Rng,
    pub step: u64,
}

pub struct Model {
    pub act: Activation,
    pub params: Vec<f32>,
    pub grads: Vec<f32>,
    ws: Workspace,
}

impl Model {
    /// A model with zero parameters, able to process batches of up to `max_batch`.
    pub fn new(act: Activation, max_batch: usize) -> Model {
        Model { act, params: vec![0.0; param_count()], grads: vec![0.0; param_count()], ws: Workspace::new(act, max_batch) }
    }

    pub fn max_batch(&self) -> usize {
        self.ws.max_batch
    }

    fn groups(n: usize) -> [Groups; ACTIVATED.len()] {
        ACTIVATED.map(|a| Groups { samples: n, spatial: a.spatial, channels: a.channels })
    }

    /// Keras' defaults: Glorot-uniform kernels, zero biases.
    pub fn init_glorot(&mut self, rng: &Rng) {
        for ((i, spec), t) in PARAMS.iter().enumerate().zip(split(&mut self.params)) {
            if spec.fan_in == 0 {
                t.fill(0.0);
            } else {
                let limit = (6.0 / (spec.fan_in + spec.fan_out) as f64).sqrt() as f32;
                rng.fill_uniform(Purpose::Init, i as u64, t);
                for v in t.iter_mut() {
                    *v = (2.0 * *v - 1.0) * limit;
                }
            }
        }
    }

    /// Copy a batch of u8 NHWC images into the input buffer, scaled to [0, 1] by /255.
    pub fn load_images(&mut self, images: &[u8]) -> usize {
        let n = images.len() / IMAGE_LEN;
        assert!(n <= self.ws.max_batch, "batch of {n} exceeds the workspace ({})", self.ws.max_batch);
        let _s = stage("input");
        self.ws.x[..images.len()].par_iter_mut().zip(images.par_iter()).for_each(|(x, &p)| *x = p as f32 / 255.0);
        n
    }

    /// Copy a batch of f32 NHWC inputs (fixtures, tests).
    pub fn load_input(&mut self, x: &[f32]) -> usize {
        let n = x.len() / IMAGE_LEN;
        assert!(n <= self.ws.max_batch);
        self.ws.x[..x.len()].copy_from_slice(x);
        n
    }

    /// Forward pass over the loaded batch. With `dropout` it is a training
    /// pass (masks drawn, derivatives saved); without, inference.
    fn forward(&mut self, n: usize, dropout: Option<DropoutKey>, train: bool) {
        let p = split(&mut self.params);
        let ws = &mut self.ws;
        let act = self.act;
        let groups = Model::groups(n);
        let apply = |i: usize, pre: &[f32], post: &mut [f32], saved: &mut Saved, mins: &mut Vec<f32>| {
            let _s = stage("activation forward");
            if train {
                kernels::forward_train(act, groups[i], pre, post, saved)
            } else {
                kernels::forward_eval(act, groups[i], pre, post, mins)
            }
        };
        let dropout_fwd = |stream: u64, x: &mut [f32], mask: &mut [f32], len: usize, rate: f32| {
            if let Some(k) = dropout {
                let _s = stage("pooling & dropout");
                Dropout::forward(k.rng, k.step * 3 + stream, rate, &mut x[..n * len], &mut mask[..n * len], len);
            }
        };
        let [s1, s2, s3, s4, s5] = &mut ws.saved;
        stage_of("conv1 forward", || Conv1::forward(n, p[0], p[1], &ws.x, &mut ws.pre1));
        apply(0, &ws.pre1, &mut ws.a1, s1, &mut ws.mins);
        stage_of("conv2 forward", || Conv2::forward(n, p[2], p[3], &ws.a1, &mut ws.pre2));
        apply(1, &ws.pre2, &mut ws.a2, s2, &mut ws.mins);
        stage_of("pooling & dropout", || Pool1::forward(n, &ws.a2, &mut ws.p1, &mut ws.arg1));
        dropout_fwd(0, &mut ws.p1, &mut ws.mask1, Pool1::OUT_LEN, DROPOUT_RATES[0]);
        stage_of("conv3 forward", || Conv3::forward(n, p[4], p[5], &ws.p1, &mut ws.pre3));
        apply(2, &ws.pre3, &mut ws.a3, s3, &mut ws.mins);
        stage_of("conv4 forward", || Conv4::forward(n, p[6], p[7], &ws.a3, &mut ws.pre4));
        apply(3, &ws.pre4, &mut ws.a4, s4, &mut ws.mins);
        stage_of("pooling & dropout", || Pool2::forward(n, &ws.a4, &mut ws.p2, &mut ws.arg2));
        dropout_fwd(1, &mut ws.p2, &mut ws.mask2, Pool2::OUT_LEN, DROPOUT_RATES[1]);
        stage_of("dense1 forward", || Dense1::forward(n, p[8], p[9], &ws.p2, &mut ws.pre5));
        apply(4, &ws.pre5, &mut ws.a5, s5, &mut ws.mins);
        // a5 is needed by diagnostics before dropout only; dropout applies in place.
        dropout_fwd(2, &mut ws.a5, &mut ws.mask3, Dense1::OUT, DROPOUT_RATES[2]);
        stage_of("dense2 forward", || Dense2::forward(n, p[10], p[11], &ws.a5, &mut ws.logits));
    }

    /// Backward pass; fills `self.grads`. Needs a preceding `forward(.., train = true)`.
    fn backward(&mut self, n: usize, dropout: bool, mut tap: Option<&mut [LayerTap; 5]>) {
        let act = self.act;
        let groups = Model::groups(n);
        let p = split(&mut self.params);
        let g = split(&mut self.grads);
        let [gw1, gb1, gw2, gb2, gw3, gb3, gw4, gb4, gw5, gb5, gw6, gb6] = g;
        let ws = &mut self.ws;
        let (ga, gb) = (&mut ws.g1, &mut ws.g2);
        let tapping = tap.is_some();
        let mut keep = |i: usize, v: &[f32]| {
            if let Some(t) = tap.as_deref_mut() {
                t[i].input_grad.clear();
                t[i].input_grad.extend_from_slice(v);
            }
        };

        let act_bwd = |i: usize, x: &[f32], dy: &[f32], saved: &Saved, dx: &mut [f32]| stage_of("activation backward", || kernels::backward(act, groups[i], x, dy, saved, dx));
        let dropout_bwd = |mask: &[f32], g: &mut [f32]| {
            if dropout {
                stage_of("pooling & dropout", || Dropout::backward(mask, g));
            }
        };

        stage_of("dense2 backward", || Dense2::backward(n, p[10], &ws.a5, &ws.dlogits, gw6, gb6, Some(ga)));
        let len5 = n * Dense1::OUT;
        dropout_bwd(&ws.mask3[..len5], &mut ga[..len5]);
        act_bwd(4, &ws.pre5, ga, &ws.saved[4], gb);
        stage_of("dense1 backward", || Dense1::backward(n, p[8], &ws.p2, gb, gw5, gb5, Some(ga)));
        keep(4, &ga[..n * Dense1::IN]);
        // Back through dropout, a pooling and the activation of layer $i, from
        // the gradient in $g (its scratch: $scratch), which then holds the
        // result. An element-wise function takes one pass; a layer-wise one
        // keeps the three, as its term through the minimum needs the pooled
        // gradient itself.
        macro_rules! back_through_pool {
            ($pool:ty, $mask:expr, $arg:expr, $i:expr, $pre:expr, $g:ident, $scratch:ident) => {
                let len = n * <$pool>::OUT_LEN;
                if act.uses_min() {
                    dropout_bwd(&$mask[..len], &mut $g[..len]);
                    stage_of("pooling & dropout", || <$pool>::backward(n, $g, &$arg, $scratch));
                    act_bwd($i, &$pre, $scratch, &ws.saved[$i], $g);
                } else {
                    stage_of("pooling & dropout", || <$pool>::backward_through(n, $g, dropout.then_some(&$mask[..len]), &$arg, &ws.saved[$i].dydx, $scratch));
                    std::mem::swap($g, $scratch);
                }
            };
        }
        back_through_pool!(Pool2, ws.mask2, ws.arg2, 3, ws.pre4, ga, gb);
        stage_of("conv4 backward", || Conv4::backward(n, p[6], &ws.a3, ga, gw4, gb4, Some(gb)));
        keep(3, &gb[..n * Conv4::IN_LEN]);
        act_bwd(2, &ws.pre3, gb, &ws.saved[2], ga);
        stage_of("conv3 backward", || Conv3::backward(n, p[4], &ws.p1, ga, gw3, gb3, Some(gb)));
        keep(2, &gb[..n * Conv3::IN_LEN]);
        back_through_pool!(Pool1, ws.mask1, ws.arg1, 1, ws.pre2, gb, ga);
        stage_of("conv2 backward", || Conv2::backward(n, p[2], &ws.a1, gb, gw2, gb2, Some(ga)));
        keep(1, &ga[..n * Conv2::IN_LEN]);
        act_bwd(0, &ws.pre1, ga, &ws.saved[0], gb);
        // The image gradient is only wanted by diagnostics.
        stage_of("conv1 backward", || Conv1::backward(n, p[0], &ws.x, gb, gw1, gb1, tapping.then_some(&mut ga[..])));
        if tapping {
            keep(0, &ga[..n * Conv1::IN_LEN]);
        }
    }

    /// Loss and gradients for the loaded batch. With `dropout` this is a
    /// Keras training step's forward/backward; without, dropout is the
    /// identity (what the fixtures describe).
    pub fn loss_and_grads(&mut self, n: usize, labels: &[u8], dropout: Option<DropoutKey>) -> BatchStats {
        self.forward(n, dropout, true);
        let stats = stage_of("loss", || softmax_cross_entropy(&self.ws.logits[..n * CLASSES], labels, Some(&mut self.ws.dlogits[..n * CLASSES])));
        self.backward(n, dropout.is_some(), None);
        stats
    }

    /// Inference over the loaded batch.
    pub fn evaluate(&mut self, n: usize, labels: &[u8]) -> BatchStats {
        self.forward(n, None, false);
        softmax_cross_entropy(&self.ws.logits[..n * CLASSES], labels, None)
    }

    /// An inference-mode forward and backward pass that records each
    /// activated layer's values and gradients (for diagnostics).
    pub fn probe(&mut self, n: usize, labels: &[u8], tap: &mut [LayerTap; 5]) -> BatchStats {
        self.forward(n, None, true);
        let stats = softmax_cross_entropy(&self.ws.logits[..n * CLASSES], labels, Some(&mut self.ws.dlogits[..n * CLASSES]));
        let ws = &self.ws;
        let layers: [(&[f32], &[f32], usize); 5] = [
            (&ws.pre1, &ws.a1, Conv1::OUT_LEN),
            (&ws.pre2, &ws.a2, Conv2::OUT_LEN),
            (&ws.pre3, &ws.a3, Conv3::OUT_LEN),
            (&ws.pre4, &ws.a4, Conv4::OUT_LEN),
            (&ws.pre5, &ws.a5, Dense1::OUT),
        ];
        for (i, (pre, post, len)) in layers.into_iter().enumerate() {
            tap[i].pre.clear();
            tap[i].pre.extend_from_slice(&pre[..n * len]);
            tap[i].post.clear();
            tap[i].post.extend_from_slice(&post[..n * len]);
            tap[i].slope.clear();
            tap[i].slope.extend_from_slice(&ws.saved[i].dydx[..n * len]);
        }
        self.backward(n, false, Some(tap));
        stats
    }

    /// Each activated layer's pre-activations in the last forward pass.
    pub fn pre_activations(&self, n: usize) -> [&[f32]; ACTIVATED.len()] {
        let ws = &self.ws;
        [&ws.pre1[..n * Conv1::OUT_LEN], &ws.pre2[..n * Conv2::OUT_LEN], &ws.pre3[..n * Conv3::OUT_LEN], &ws.pre4[..n * Conv4::OUT_LEN], &ws.pre5[..n * Dense1::OUT]]
    }

    /// The logits of the last forward pass.
    pub fn logits(&self, n: usize) -> &[f32] {
        &self.ws.logits[..n * CLASSES]
    }

    /// The outputs of the last forward pass, by name (fixture checks):
    /// `conv1..conv4`, `dense1` (after the activation), `pool1`, `pool2`.
    pub fn layer_output(&self, name: &str, n: usize) -> Option<&[f32]> {
        let ws = &self.ws;
        Some(match name {
            "conv1" => &ws.a1[..n * Conv1::OUT_LEN],
            "conv2" => &ws.a2[..n * Conv2::OUT_LEN],
            "pool1" => &ws.p1[..n * Pool1::OUT_LEN],
            "conv3" => &ws.a3[..n * Conv3::OUT_LEN],
            "conv4" => &ws.a4[..n * Conv4::OUT_LEN],
            "pool2" => &ws.p2[..n * Pool2::OUT_LEN],
            "dense1" => &ws.a5[..n * Dense1::OUT],
            _ => return None,
        })
    }
}

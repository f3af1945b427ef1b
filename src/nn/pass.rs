//! The network's forward and backward passes, written once as a loop over
//! its [`Plan`]. A backend supplies the operations ([`Ops`]: the CPU's
//! [`Model`](super::model::Model), the GPU's [`GpuRuns`](super::gpu::GpuRuns)),
//! each on `n` samples (per run, where a backend trains several), reading
//! and writing the plan's values and gradient buffers by name.

use super::layers::{BatchNorm, Conv2d, Dense, MaxPool2};
use super::plan::{Grad, Op, Plan, Step, Value, Weights};
use anyhow::Result;

/// What a forward pass is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A training pass: batch normalisation by the batch's statistics
    /// (folded into the moving ones), what the backward pass needs saved,
    /// and, with the global step, dropout masks drawn.
    Train { dropout_step: Option<u64> },
    /// Inference that keeps what a backward pass needs (diagnostics).
    Probe,
    /// Inference.
    Eval,
}

impl Mode {
    /// Whether the backward pass will follow, so its inputs are saved.
    pub fn saves(self) -> bool {
        self != Mode::Eval
    }

    /// Whether batch normalisation uses (and updates) the batch's statistics.
    pub fn batch_statistics(self) -> bool {
        matches!(self, Mode::Train { .. })
    }
}

/// What a backend computes. Per-layer state (saved activation slopes,
/// pooling winners, dropout masks, im2col matrices) stays in the backend,
/// kept by the step's `index`.
pub trait Ops {
    fn plan(&self) -> &'static Plan;

    /// `y = conv(x) + b`.
    fn conv(&mut self, layer: &Conv2d, index: usize, weights: Weights, n: usize, x: Value, y: Value) -> Result<()>;
    /// Weight and bias gradients from `dy`; the input gradient into `dx` when given.
    #[allow(clippy::too_many_arguments)]
    fn conv_backward(&mut self, layer: &Conv2d, index: usize, weights: Weights, n: usize, x: Value, dy: Grad, dx: Option<Grad>) -> Result<()>;
    /// `y = x·W + b`.
    fn linear(&mut self, layer: &Dense, weights: Weights, n: usize, x: Value, y: Value) -> Result<()>;
    fn linear_backward(&mut self, layer: &Dense, weights: Weights, n: usize, x: Value, dy: Grad, dx: Option<Grad>) -> Result<()>;
    /// Batch normalisation with the tensors from `tensors` (γ, β, moving
    /// mean, moving variance), in `mode`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm(&mut self, layer: &BatchNorm, index: usize, tensors: usize, n: usize, mode: Mode, x: Value, y: Value) -> Result<()>;
    /// γ's and β's gradients (the moving statistics' are 0) and the input gradient.
    fn batch_norm_backward(&mut self, layer: &BatchNorm, index: usize, tensors: usize, n: usize, dy: Grad, dx: Grad) -> Result<()>;
    /// `post = f(pre)`, saving what the backward pass needs when `train`.
    fn activation(&mut self, index: usize, n: usize, train: bool, pre: Value, post: Value) -> Result<()>;
    /// A convolution into `y` and the activation (its index) of `y` into
    /// `post`: the two operations in turn; a backend may interleave them
    /// where that gives the same bits.
    #[allow(clippy::too_many_arguments)]
    fn conv_activated(&mut self, layer: &Conv2d, index: usize, weights: Weights, n: usize, x: Value, y: Value, activation: usize, train: bool, post: Value) -> Result<()> {
        conv_then_activation(self, layer, index, weights, n, x, y, activation, train, post)
    }
    fn activation_backward(&mut self, index: usize, n: usize, pre: Value, dy: Grad, dx: Grad) -> Result<()>;
    /// Back through a convolution (its weights' and bias's gradients, and
    /// its input gradient) and the activation (its index) whose output `x`
    /// it read, from `g`; returns the buffer holding the gradient at the
    /// activation's input `pre`. The two in turn; a backend may interleave
    /// them where that gives the same bits.
    #[allow(clippy::too_many_arguments)]
    fn conv_backward_activated(&mut self, layer: &Conv2d, index: usize, weights: Weights, n: usize, x: Value, g: Grad, activation: usize, pre: Value) -> Result<Grad> {
        back_through_conv_then_activation(self, layer, index, weights, n, x, g, activation, pre)
    }
    fn pool(&mut self, layer: &MaxPool2, index: usize, n: usize, x: Value, y: Value) -> Result<()>;
    fn pool_backward(&mut self, layer: &MaxPool2, index: usize, n: usize, dy: Grad, dx: Grad) -> Result<()>;
    /// Dropout in place on `x` (`len` values per sample), its mask drawn from `stream`.
    fn dropout(&mut self, index: usize, rate: f32, stream: u64, n: usize, len: usize, x: Value) -> Result<()>;
    fn dropout_backward(&mut self, index: usize, n: usize, len: usize, g: Grad) -> Result<()>;

    /// Back through a dropout (its index, when training), a pooling and the
    /// activation before it, from `g`; returns the buffer holding the
    /// result. The three operations in turn; a backend may do them in one
    /// pass where that gives the same bits.
    #[allow(clippy::too_many_arguments)]
    fn back_through_pool(&mut self, activation: usize, pre: Value, pool: (&MaxPool2, usize), dropout: Option<usize>, n: usize, g: Grad) -> Result<Grad> {
        back_through_pool_in_turn(self, activation, pre, pool, dropout, n, g)
    }

    /// The gradient reaching the input of the layer that the
    /// `activation`-th activated layer follows (diagnostics; called only
    /// when the backward pass taps).
    fn tap_input_grad(&mut self, _activation: usize, _n: usize, _input: Value, _g: Grad) {}
}

/// [`Ops::back_through_pool`] as its passes in turn.
pub fn back_through_pool_in_turn<O: Ops + ?Sized>(ops: &mut O, activation: usize, pre: Value, pool: (&MaxPool2, usize), dropout: Option<usize>, n: usize, g: Grad) -> Result<Grad> {
    let (layer, index) = pool;
    if let Some(d) = dropout {
        ops.dropout_backward(d, n, layer.out_len(), g)?;
    }
    ops.pool_backward(layer, index, n, g, g.spare())?;
    ops.activation_backward(activation, n, pre, g.spare(), g)?;
    Ok(g)
}

/// [`Ops::conv_activated`] as two passes.
#[allow(clippy::too_many_arguments)]
pub fn conv_then_activation<O: Ops + ?Sized>(ops: &mut O, layer: &Conv2d, index: usize, weights: Weights, n: usize, x: Value, y: Value, activation: usize, train: bool, post: Value) -> Result<()> {
    ops.conv(layer, index, weights, n, x, y)?;
    ops.activation(activation, n, train, y, post)
}

/// [`Ops::conv_backward_activated`] as two passes, into the buffers the
/// backward loop would use for them one after another.
#[allow(clippy::too_many_arguments)]
pub fn back_through_conv_then_activation<O: Ops + ?Sized>(ops: &mut O, layer: &Conv2d, index: usize, weights: Weights, n: usize, x: Value, g: Grad, activation: usize, pre: Value) -> Result<Grad> {
    let d = g.spare();
    ops.conv_backward(layer, index, weights, n, x, g, Some(d))?;
    ops.activation_backward(activation, n, pre, d, d.spare())?;
    Ok(d.spare())
}

/// The forward pass, in `mode`.
pub fn forward(ops: &mut impl Ops, n: usize, mode: Mode) -> Result<()> {
    let plan = ops.plan();
    let mut steps = plan.steps.iter().peekable();
    while let Some(&Step { op, input, output }) = steps.next() {
        match op {
            Op::Conv { layer, index, weights } => match steps.peek() {
                Some(&&Step { op: Op::Activation { index: a }, input: pre, output: post }) if pre == output => {
                    steps.next();
                    ops.conv_activated(&layer, index, weights, n, input, output, a, mode.saves(), post)?;
                }
                _ => ops.conv(&layer, index, weights, n, input, output)?,
            },
            Op::Dense { layer, weights } => ops.linear(&layer, weights, n, input, output)?,
            Op::BatchNorm { layer, index, tensors } => ops.batch_norm(&layer, index, tensors, n, mode, input, output)?,
            Op::Activation { index } => ops.activation(index, n, mode.saves(), input, output)?,
            Op::MaxPool { layer, index } => ops.pool(&layer, index, n, input, output)?,
            Op::Dropout { rate, index } => {
                if let Mode::Train { dropout_step: Some(step) } = mode {
                    // One stream per (step, dropout layer), as every committed run drew them.
                    let stream = step * plan.dropouts as u64 + index as u64;
                    ops.dropout(index, rate, stream, n, plan.len(input), input)?;
                }
            }
            Op::Flatten => {}
        }
    }
    Ok(())
}

/// The backward pass from the logits' gradient (`Grad::Logits`), after a
/// training forward pass; `dropout` when that pass drew masks. With `tap`
/// the input gradient of every activated layer's layer is handed to
/// [`Ops::tap_input_grad`], the first layer's included (otherwise nobody
/// needs the images' gradient, and it is not computed).
pub fn backward(ops: &mut impl Ops, n: usize, dropout: bool, tap: bool) -> Result<()> {
    let plan = ops.plan();
    let mut g = Grad::Logits;
    let mut end = plan.steps.len();
    while end > 0 {
        let i = end - 1;
        let Step { op, input, .. } = plan.steps[i];
        // Steps this iteration takes back through, from the last one.
        let mut taken = 1;
        match (&plan.steps[..end], op) {
            ([.., Step { op: Op::Activation { index: a }, input: pre, .. }, Step { op: Op::MaxPool { layer, index: p }, .. }, Step { op: Op::Dropout { index: d, .. }, .. }], _) => {
                g = ops.back_through_pool(*a, *pre, (layer, *p), dropout.then_some(*d), n, g)?;
                taken = 3;
            }
            ([.., Step { op: Op::Activation { index: a }, input: pre, .. }, Step { op: Op::MaxPool { layer, index: p }, .. }], _) => {
                g = ops.back_through_pool(*a, *pre, (layer, *p), None, n, g)?;
                taken = 2;
            }
            // Tapping wants the convolution's input gradient itself.
            ([.., Step { op: Op::Activation { index: a }, input: pre, output: post }, Step { op: Op::Conv { layer, index, weights }, input: x, .. }], _) if post == x && !tap => {
                g = ops.conv_backward_activated(layer, *index, *weights, n, *x, g, *a, *pre)?;
                taken = 2;
            }
            (_, Op::Conv { layer, index, weights }) => {
                let dx = (i > 0 || tap).then_some(g.spare());
                ops.conv_backward(&layer, index, weights, n, input, g, dx)?;
                g = g.spare();
            }
            (_, Op::Dense { layer, weights }) => {
                let dx = (i > 0 || tap).then_some(g.spare());
                ops.linear_backward(&layer, weights, n, input, g, dx)?;
                g = g.spare();
            }
            (_, Op::BatchNorm { layer, index, tensors }) => {
                ops.batch_norm_backward(&layer, index, tensors, n, g, g.spare())?;
                g = g.spare();
            }
            (_, Op::Activation { index }) => {
                ops.activation_backward(index, n, input, g, g.spare())?;
                g = g.spare();
            }
            (_, Op::MaxPool { layer, index }) => {
                ops.pool_backward(&layer, index, n, g, g.spare())?;
                g = g.spare();
            }
            (_, Op::Dropout { index, .. }) => {
                if dropout {
                    ops.dropout_backward(index, n, plan.len(input), g)?;
                }
            }
            (_, Op::Flatten) => {}
        }
        if tap
            && matches!(op, Op::Conv { .. } | Op::Dense { .. })
            && let Some(a) = plan.activates(i)
        {
            ops.tap_input_grad(a, n, input, g);
        }
        end -= taken;
    }
    Ok(())
}

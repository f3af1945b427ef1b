//! The article's network on a GPU, several runs trained at once.
//!
//! All runs share the network's shapes, so R runs train in one sequence of
//! launches: their parameters are stacked along a run axis, each GEMM is
//! batched over runs, and every other kernel sees one batch of R·n samples.
//! Each run keeps its own data order, dropout masks (its seed keys the
//! Philox stream) and activation function, so a run's numbers are exactly
//! those of the same run trained alone, and those of the CPU ([`Model`] and
//! [`Adam`]): `network.cu` mirrors the CPU kernels operation for operation.
//!
//! The passes are the CPU's (`pass.rs`): this file supplies their
//! operations as launches, with the same per-layer state, kept by the plan.
//!
//! [`Model`]: super::model::Model
//! [`Adam`]: super::adam::Adam

use super::optim::{Optimizer, OptimizerConfig};
use super::loss::BatchStats;
use super::arch::Architecture;
use super::layers::{BatchNorm, Conv2d, Dense, MaxPool2};
use super::pass::{self, Mode, Ops};
use super::plan::{Grad, Op, Plan, Value, Weights};
use crate::engine::cpu::conv::Conv;
use crate::activation::{cuda as act_cuda, Activation};
use crate::data::Split;
use crate::engine::codegen::PRELUDE;
use crate::engine::launch::{Arg, Device, DeviceVec};
use anyhow::{bail, Result};

/// The network's kernels (hand-written, mirroring `layers.rs`).
const NETWORK: &str = include_str!("network.cu");

const THREADS: u32 = 256;

/// The distinct functions of `acts`, in order of first appearance: the
/// program holds kernels `act{i}_…` for each.
pub fn distinct(acts: &[Activation]) -> Vec<Activation> {
    let mut out: Vec<Activation> = Vec::new();
    for a in acts {
        if !out.contains(a) {
            out.push(*a);
        }
    }
    out
}

/// The whole NVRTC program for runs of these functions.
pub fn program(acts: &[Activation]) -> String {
    let mut src = act_cuda::program(&distinct(acts));
    // The prelude comes first in `act_cuda::program`; the network needs it too.
    debug_assert!(src.starts_with(PRELUDE));
    src.push('\n');
    src.push_str(NETWORK);
    src
}

/// Values of one sample's im2col matrix.
fn col_len(c: &Conv) -> usize {
    c.positions() * c.kdim()
}

/// A dataset split resident on the device, with one sample order per run.
pub struct DeviceSplit<D: Device> {
    images: DeviceVec<D, u8>,
    labels: DeviceVec<D, u8>,
    order: DeviceVec<D, u32>,
    /// Elements between two runs' orders (0: all runs share one order).
    order_stride: usize,
    pub len: usize,
}

/// The plan's tensors, each layer's state and scratch for R runs of up to
/// `max_batch` samples.
struct Workspace<D: Device> {
    /// The plan's values.
    values: Vec<DeviceVec<D, f32>>,
    labels: DeviceVec<D, u8>,
    /// Per convolution: its im2col matrix, kept for the weight gradient.
    col: Vec<DeviceVec<D, f32>>,
    /// Per activated layer: ∂f/∂x, ∂f/∂m and the group minima.
    dydx: Vec<DeviceVec<D, f32>>,
    dydm: Vec<DeviceVec<D, f32>>,
    mins: Vec<DeviceVec<D, f32>>,
    /// Per pooling: which input won each output.
    argmax: Vec<DeviceVec<D, u8>>,
    /// Per dropout: the mask of the last training pass.
    masks: Vec<DeviceVec<D, f32>>,
    /// Per batch normalisation: what its backward pass needs.
    norms: Vec<NormState<D>>,
    /// The bias of a layer that has none.
    zeros: DeviceVec<D, f32>,
    /// The gradient buffers, by [`Grad`]: the logits', then two for the layers.
    grads: [DeviceVec<D, f32>; 3],
    dcol: DeviceVec<D, f32>,
    loss: DeviceVec<D, f64>,
    correct: DeviceVec<D, u8>,
    loss_total: DeviceVec<D, f64>,
    correct_total: DeviceVec<D, u64>,
}

/// A batch normalisation's saved values, per run: x̂, and μ and 1/σ per channel.
struct NormState<D: Device> {
    xhat: DeviceVec<D, f32>,
    mean: DeviceVec<D, f32>,
    inv_std: DeviceVec<D, f32>,
    /// Whether the last forward pass used the batch's statistics.
    batch_statistics: bool,
}

impl<D: Device> Workspace<D> {
    fn value(&self, v: Value) -> &DeviceVec<D, f32> {
        &self.values[v.0]
    }

    fn grad(&self, g: Grad) -> &DeviceVec<D, f32> {
        &self.grads[g.index()]
    }
}

pub struct GpuRuns<D: Device> {
    pub dev: D,
    runs: usize,
    max_batch: usize,
    /// Per run: index of its function in the program.
    act_index: Vec<usize>,
    acts: Vec<Activation>,
    optimizer: OptimizerConfig,
    plan: &'static Plan,
    /// Steps taken (the same for every run).
    pub t: u64,
    params: DeviceVec<D, f32>,
    grads: DeviceVec<D, f32>,
    /// The optimizer's state tensors (`OptimizerConfig::state_names`), each stacked over runs.
    opt_state: Vec<DeviceVec<D, f32>>,
    keys: DeviceVec<D, u32>,
    ws: Workspace<D>,
}

fn grid(count: usize) -> [u32; 3] {
    [count.div_ceil(THREADS as usize).clamp(1, 8192) as u32, 1, 1]
}

impl<D: Device> GpuRuns<D> {
    /// R runs (one per entry of `acts`/`seeds`); `device` compiles the
    /// [`program`] it is given and returns the device to run it on.
    pub fn new(network: Architecture, acts: &[Activation], seeds: &[u64], max_batch: usize, optimizer: OptimizerConfig, device: impl FnOnce(&str) -> Result<D>) -> Result<Self> {
        if acts.is_empty() || acts.len() != seeds.len() {
            bail!("GPU runs: {} functions for {} seeds", acts.len(), seeds.len());
        }
        let plan = network.plan();
        let distinct = distinct(acts);
        let dev = device(&program(acts))?;
        let (r, b) = (acts.len(), max_batch);
        let z = |len: usize| DeviceVec::<D, f32>::zeros(&dev, r * b * len);
        let (mut col, mut argmax, mut masks, mut norms) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for s in &plan.steps {
            match s.op {
                Op::Conv { layer, .. } => col.push(z(col_len(&layer.0))?),
                Op::MaxPool { layer, .. } => argmax.push(DeviceVec::zeros(&dev, r * b * layer.out_len())?),
                Op::Dropout { .. } => masks.push(z(plan.len(s.input))?),
                Op::BatchNorm { layer, .. } => {
                    let per_run = |len: usize| DeviceVec::<D, f32>::zeros(&dev, r * len);
                    norms.push(NormState { xhat: z(layer.per_sample())?, mean: per_run(layer.channels)?, inv_std: per_run(layer.channels)?, batch_statistics: false });
                }
                _ => {}
            }
        }
        let per_activated = |len: &dyn Fn(usize) -> usize| plan.activated.iter().map(|a| z(len(a.len()))).collect::<Result<Vec<_>>>();
        let ws = Workspace {
            values: plan.values.iter().map(|&len| z(len)).collect::<Result<_>>()?,
            labels: DeviceVec::zeros(&dev, r * b)?,
            dcol: z(col.iter().map(|c| c.len / (r * b)).max().unwrap_or(0))?,
            col,
            dydx: per_activated(&|len| len)?,
            dydm: per_activated(&|len| len)?,
            mins: plan.activated.iter().map(|a| z(a.channels)).collect::<Result<_>>()?,
            argmax,
            masks,
            norms,
            zeros: DeviceVec::zeros(&dev, plan.largest())?,
            grads: [z(plan.classes())?, z(plan.largest())?, z(plan.largest())?],
            loss: DeviceVec::zeros(&dev, r * b)?,
            correct: DeviceVec::zeros(&dev, r * b)?,
            loss_total: DeviceVec::zeros(&dev, r)?,
            correct_total: DeviceVec::zeros(&dev, r)?,
        };
        let p = plan.param_count();
        let keys: Vec<u32> = seeds.iter().flat_map(|&s| [s as u32, (s >> 32) as u32]).collect();
        Ok(GpuRuns {
            runs: r,
            max_batch: b,
            act_index: acts.iter().map(|a| distinct.iter().position(|d| d == a).unwrap()).collect(),
            acts: distinct,
            optimizer,
            plan,
            t: 0,
            params: DeviceVec::zeros(&dev, r * p)?,
            grads: DeviceVec::zeros(&dev, r * p)?,
            opt_state: optimizer.state_names().iter().map(|_| DeviceVec::zeros(&dev, r * p)).collect::<Result<_>>()?,
            keys: DeviceVec::from_slice(&dev, &keys)?,
            ws,
            dev,
        })
    }

    pub fn runs(&self) -> usize {
        self.runs
    }

    /// Set run `run`'s parameters and optimizer state (all runs must share `t`).
    pub fn set_state(&mut self, run: usize, params: &[f32], optimizer: &Optimizer) -> Result<()> {
        let p = self.plan.param_count();
        assert!(params.len() == p && optimizer.state.iter().all(|s| s.len() == p));
        if optimizer.config != self.optimizer {
            bail!("GPU runs trained together must share the optimizer settings");
        }
        self.t = optimizer.t;
        self.params.write(&self.dev, run * p, params)?;
        for (dst, src) in self.opt_state.iter_mut().zip(&optimizer.state) {
            dst.write(&self.dev, run * p, src)?;
        }
        Ok(())
    }

    /// Run `run`'s parameters and optimizer state.
    pub fn state(&self, run: usize) -> Result<(Vec<f32>, Optimizer)> {
        let p = self.plan.param_count();
        let params = self.params.read(&self.dev, run * p, p)?;
        let state = self.opt_state.iter().map(|s| s.read(&self.dev, run * p, p)).collect::<Result<_>>()?;
        Ok((params, Optimizer { config: self.optimizer, state, t: self.t }))
    }

    /// Run `run`'s gradients of the last step.
    pub fn grads(&self, run: usize) -> Result<Vec<f32>> {
        let p = self.plan.param_count();
        self.grads.read(&self.dev, run * p, p)
    }

    /// Copy a split to the device, in its stored order for every run.
    pub fn upload(&self, split: &Split) -> Result<DeviceSplit<D>> {
        let identity: Vec<u32> = (0..split.len() as u32).collect();
        Ok(DeviceSplit {
            images: DeviceVec::from_slice(&self.dev, &split.images)?,
            labels: DeviceVec::from_slice(&self.dev, &split.labels)?,
            order: DeviceVec::from_slice(&self.dev, &identity)?,
            order_stride: 0,
            len: split.len(),
        })
    }

    /// Give each run its own order of the split (an epoch's shuffle).
    pub fn set_orders(&self, split: &mut DeviceSplit<D>, orders: &[Vec<u32>]) -> Result<()> {
        assert!(orders.len() == self.runs && orders.iter().all(|o| o.len() == split.len));
        if split.order.len != self.runs * split.len {
            split.order = DeviceVec::zeros(&self.dev, self.runs * split.len)?;
        }
        for (r, o) in orders.iter().enumerate() {
            split.order.write(&self.dev, r * split.len, o)?;
        }
        split.order_stride = split.len;
        Ok(())
    }

    fn launch(&self, kernel: &str, count: usize, args: &[Arg<'_, D::Buf>]) -> Result<()> {
        self.dev.launch(kernel, grid(count), THREADS, args)
    }

    /// Load samples `start..start + n` of every run's order.
    fn gather(&self, data: &DeviceSplit<D>, start: usize, n: usize) -> Result<()> {
        let ws = &self.ws;
        self.launch(
            "gather_batch",
            self.runs * n * self.plan.image_len(),
            &[
                data.images.arg(),
                data.labels.arg(),
                data.order.arg(),
                Arg::I64(data.order_stride as i64),
                Arg::I64(start as i64),
                Arg::I32(n as i32),
                Arg::I32(self.runs as i32),
                Arg::I32(self.plan.image_len() as i32),
                ws.value(Value(0)).arg(),
                ws.labels.arg(),
            ],
        )
    }

    /// `C[r] (+)= A[r]·B[r]` for every run: A is `m×k` with strides
    /// (rs, cs) and run stride, likewise B; C row-major. With `ones`, also
    /// the column sums of B into `ones` (run stride as C's; see `network.cu`).
    #[allow(clippy::too_many_arguments)]
    fn gemm(&self, m: usize, n: usize, k: usize, a: (Arg<'_, D::Buf>, usize, usize, usize), b: (Arg<'_, D::Buf>, usize, usize, usize), c: (Arg<'_, D::Buf>, usize, usize), accumulate: bool, ones: Arg<'_, D::Buf>) -> Result<()> {
        let rows = m + matches!(ones, Arg::Ptr(..)) as usize;
        // The tile size only decides which thread computes an output, never
        // its sum, so either kernel gives the same bits.
        let big = rows.div_ceil(64) * n.div_ceil(64) * self.runs >= 264;
        let (kernel, tile) = if big { ("gemm_64", 64) } else { ("gemm_16", 16) };
        let grid = [n.div_ceil(tile) as u32, rows.div_ceil(tile) as u32, self.runs as u32];
        let l = |v: usize| Arg::I64(v as i64);
        self.dev.launch(
            kernel,
            grid,
            THREADS,
            &[Arg::I32(m as i32), Arg::I32(n as i32), Arg::I32(k as i32), a.0, l(a.1), l(a.2), l(a.3), b.0, l(b.1), l(b.2), l(b.3), c.0, l(c.1), l(c.2), Arg::I32(accumulate as i32), ones],
        )
    }

    /// Offset of parameter tensor `i` in run 0; runs are the plan's `param_count()` apart.
    fn param(&self, i: usize) -> usize {
        self.plan.ranges[i].start
    }

    /// `y = x·W + b` for every run (b = 0 for a layer without a bias, as
    /// on the CPU); x is `rows×inner` per run.
    fn affine(&self, rows: usize, inner: usize, outs: usize, x: &DeviceVec<D, f32>, w: Weights, y: &DeviceVec<D, f32>) -> Result<()> {
        let p = self.plan.param_count();
        let r = self.runs;
        let (bias, stride) = match w.bias {
            Some(b) => (self.params.at(self.param(b)), p),
            None => (self.ws.zeros.arg(), 0),
        };
        self.launch("fill_bias", r * rows * outs, &[y.arg(), bias, Arg::I64(stride as i64), Arg::I64(rows as i64), Arg::I32(outs as i32), Arg::I32(r as i32)])?;
        self.gemm(rows, outs, inner, (x.arg(), inner, 1, rows * inner), (self.params.at(self.param(w.tensor)), outs, 1, p), (y.arg(), outs, rows * outs), true, Arg::Null)
    }

    /// Weight and bias gradients of an affine map (`rows×inner` input x, upstream dy),
    /// and, when `dx` is given, the input gradient (`rows×inner`).
    #[allow(clippy::too_many_arguments)]
    fn affine_backward(&self, rows: usize, inner: usize, outs: usize, x: &DeviceVec<D, f32>, w: Weights, dy: &DeviceVec<D, f32>, dx: Option<&DeviceVec<D, f32>>) -> Result<()> {
        let p = self.plan.param_count();
        // dW = xᵀ·dy, and db = Σ rows of dy as its extra row of ones.
        let (dw, db) = (self.grads.at(self.param(w.tensor)), w.bias.map_or(Arg::Null, |b| self.grads.at(self.param(b))));
        let w = w.tensor;
        self.gemm(inner, outs, rows, (x.arg(), 1, inner, rows * inner), (dy.arg(), outs, 1, rows * outs), (dw, outs, p), false, db)?;
        if let Some(dx) = dx {
            // dx = dy·Wᵀ
            self.gemm(rows, inner, outs, (dy.arg(), outs, 1, rows * outs), (self.params.at(self.param(w)), 1, outs, p), (dx.arg(), inner, rows * inner), false, Arg::Null)?;
        }
        Ok(())
    }

    fn conv_args<'a>(&self, c: &Conv, samples: usize) -> [Arg<'a, D::Buf>; 8] {
        let i = |v: usize| Arg::I32(v as i32);
        [Arg::I64(samples as i64), i(c.h), i(c.w), i(c.cin), i(c.k), i(c.pad), i(c.oh()), i(c.ow())]
    }

    fn pool_args<'a>(&self, p: &MaxPool2, samples: usize) -> [Arg<'a, D::Buf>; 6] {
        let i = |v: usize| Arg::I32(v as i32);
        [Arg::I64(samples as i64), i(p.h), i(p.w), i(p.c), i(p.oh()), i(p.ow())]
    }

    /// Runs `[r0, r1)` that share a function, for one launch each.
    fn same_function_spans(&self) -> Vec<(usize, usize, usize)> {
        let mut spans = Vec::new();
        let mut r0 = 0;
        for r in 1..=self.runs {
            if r == self.runs || self.act_index[r] != self.act_index[r0] {
                spans.push((self.act_index[r0], r0, r));
                r0 = r;
            }
        }
        spans
    }
}

/// The passes' operations as launches, each over every run's `n` samples.
impl<D: Device> Ops for GpuRuns<D> {
    fn plan(&self) -> &'static Plan {
        self.plan
    }

    /// im2col into the conv's own matrix (its weight gradient reads it), then one batched GEMM.
    fn conv(&mut self, layer: &Conv2d, index: usize, weights: Weights, n: usize, x: Value, y: Value) -> Result<()> {
        let (c, ws) = (&layer.0, &self.ws);
        let (col, samples) = (&ws.col[index], self.runs * n);
        let mut args = vec![ws.value(x).arg(), col.arg()];
        args.extend(self.conv_args(c, samples));
        self.launch("im2col", samples * col_len(c), &args)?;
        self.affine(n * c.positions(), c.kdim(), c.cout, col, weights, ws.value(y))
    }

    fn conv_backward(&mut self, layer: &Conv2d, index: usize, weights: Weights, n: usize, _x: Value, dy: Grad, dx: Option<Grad>) -> Result<()> {
        let (c, ws) = (&layer.0, &self.ws);
        let dcol = dx.map(|_| &ws.dcol);
        self.affine_backward(n * c.positions(), c.kdim(), c.cout, &ws.col[index], weights, ws.grad(dy), dcol)?;
        if let Some(dx) = dx {
            let samples = self.runs * n;
            let mut args = vec![ws.dcol.arg(), ws.grad(dx).arg()];
            args.extend(self.conv_args(c, samples));
            self.launch("col2im", samples * c.in_len(), &args)?;
        }
        Ok(())
    }

    fn linear(&mut self, layer: &Dense, weights: Weights, n: usize, x: Value, y: Value) -> Result<()> {
        self.affine(n, layer.inputs, layer.outputs, self.ws.value(x), weights, self.ws.value(y))
    }

    fn linear_backward(&mut self, layer: &Dense, weights: Weights, n: usize, x: Value, dy: Grad, dx: Option<Grad>) -> Result<()> {
        let ws = &self.ws;
        self.affine_backward(n, layer.inputs, layer.outputs, ws.value(x), weights, ws.grad(dy), dx.map(|g| ws.grad(g)))
    }

    /// The statistics (the batch's, folded into the moving ones, or the
    /// moving ones), then `y = γ·x̂ + β`.
    fn batch_norm(&mut self, layer: &BatchNorm, index: usize, tensors: usize, n: usize, mode: Mode, x: Value, y: Value) -> Result<()> {
        let (r, c) = (self.runs, layer.channels);
        let p = Arg::I64(self.plan.param_count() as i64);
        let at = |k: usize| Arg::I64(self.param(tensors + k) as i64);
        let (ws, state) = (&self.ws, &self.ws.norms[index]);
        let (keep, take) = (BatchNorm::MOMENTUM as f32, (1.0 - BatchNorm::MOMENTUM) as f32);
        if mode.batch_statistics() {
            let rows = Arg::I64((n * layer.positions) as i64);
            self.launch("bn_statistics", r * c, &[ws.value(x).arg(), rows, Arg::I32(c as i32), Arg::I32(r as i32), self.params.arg(), p, at(2), at(3), Arg::F32(keep), Arg::F32(take), Arg::F64(BatchNorm::EPSILON), state.mean.arg(), state.inv_std.arg()])?;
        } else {
            self.launch("bn_moving", r * c, &[self.params.arg(), p, at(2), at(3), Arg::I32(c as i32), Arg::I32(r as i32), Arg::F64(BatchNorm::EPSILON), state.mean.arg(), state.inv_std.arg()])?;
        }
        let xhat = if mode.saves() { state.xhat.arg() } else { Arg::Null };
        let per_run = Arg::I64((n * layer.per_sample()) as i64);
        self.launch("bn_normalize", r * n * layer.per_sample(), &[ws.value(x).arg(), ws.value(y).arg(), xhat, state.mean.arg(), state.inv_std.arg(), self.params.arg(), p, at(0), at(1), per_run, Arg::I32(c as i32), Arg::I32(r as i32)])?;
        self.ws.norms[index].batch_statistics = mode.batch_statistics();
        Ok(())
    }

    fn batch_norm_backward(&mut self, layer: &BatchNorm, index: usize, tensors: usize, n: usize, dy: Grad, dx: Grad) -> Result<()> {
        let (r, c) = (self.runs, layer.channels);
        let p = Arg::I64(self.plan.param_count() as i64);
        let at = |k: usize| Arg::I64(self.param(tensors + k) as i64);
        let (ws, state) = (&self.ws, &self.ws.norms[index]);
        let rows = n * layer.positions;
        self.launch("bn_backward_sums", r * c, &[ws.grad(dy).arg(), state.xhat.arg(), Arg::I64(rows as i64), Arg::I32(c as i32), Arg::I32(r as i32), self.grads.arg(), p, at(0), at(1), at(2), at(3)])?;
        self.launch(
            "bn_backward",
            r * n * layer.per_sample(),
            &[ws.grad(dy).arg(), state.xhat.arg(), state.inv_std.arg(), self.params.arg(), self.grads.arg(), p, at(0), at(1), Arg::I64((n * layer.per_sample()) as i64), Arg::I32(c as i32), Arg::I32(r as i32), Arg::F32(rows as f32), Arg::I32(state.batch_statistics as i32), ws.grad(dx).arg()],
        )
    }

    fn activation(&mut self, index: usize, n: usize, train: bool, pre: Value, post: Value) -> Result<()> {
        let a = self.plan.activated[index];
        let (spatial, channels, len) = (a.spatial, a.channels, a.len());
        let ws = &self.ws;
        let (pre, post) = (ws.value(pre), ws.value(post));
        for (f, r0, r1) in self.same_function_spans() {
            let (samples, s0) = ((r1 - r0) * n, r0 * n);
            let (e0, g0) = (s0 * len, s0 * channels);
            let (sp, ch) = (Arg::I32(spatial as i32), Arg::I32(channels as i32));
            if self.acts[f].uses_min() {
                self.launch(&format!("act{f}_group_mins"), samples * channels, &[pre.at(e0), ws.mins[index].at(g0), Arg::I32(samples as i32), Arg::I32(spatial as i32), Arg::I32(channels as i32)])?;
            }
            let count = Arg::I64((samples * len) as i64);
            if train {
                self.launch(&format!("act{f}_forward_train"), samples * len, &[pre.at(e0), ws.mins[index].at(g0), post.at(e0), ws.dydx[index].at(e0), ws.dydm[index].at(e0), count, sp, ch])?;
            } else {
                self.launch(&format!("act{f}_forward_eval"), samples * len, &[pre.at(e0), ws.mins[index].at(g0), post.at(e0), count, sp, ch])?;
            }
        }
        Ok(())
    }

    /// `dx = ∂f/∂pre · dy`.
    fn activation_backward(&mut self, index: usize, n: usize, pre: Value, dy: Grad, dx: Grad) -> Result<()> {
        let a = self.plan.activated[index];
        let (spatial, channels, len) = (a.spatial, a.channels, a.len());
        let ws = &self.ws;
        let (pre, dy, dx) = (ws.value(pre), ws.grad(dy), ws.grad(dx));
        for (f, r0, r1) in self.same_function_spans() {
            let (samples, s0) = ((r1 - r0) * n, r0 * n);
            let (e0, g0) = (s0 * len, s0 * channels);
            self.launch(
                &format!("act{f}_backward"),
                samples * channels,
                &[pre.at(e0), dy.at(e0), ws.dydx[index].at(e0), ws.dydm[index].at(e0), ws.mins[index].at(g0), dx.at(e0), Arg::I32(samples as i32), Arg::I32(spatial as i32), Arg::I32(channels as i32)],
            )?;
        }
        Ok(())
    }

    fn pool(&mut self, layer: &MaxPool2, index: usize, n: usize, x: Value, y: Value) -> Result<()> {
        let (ws, samples) = (&self.ws, self.runs * n);
        let mut args = vec![ws.value(x).arg(), ws.value(y).arg(), ws.argmax[index].arg()];
        args.extend(self.pool_args(layer, samples));
        self.launch("maxpool_forward", samples * layer.out_len(), &args)
    }

    fn pool_backward(&mut self, layer: &MaxPool2, index: usize, n: usize, dy: Grad, dx: Grad) -> Result<()> {
        let (ws, samples) = (&self.ws, self.runs * n);
        let mut args = vec![ws.grad(dy).arg(), ws.argmax[index].arg(), ws.grad(dx).arg()];
        args.extend(self.pool_args(layer, samples));
        self.launch("maxpool_backward", samples * layer.in_len(), &args)
    }

    fn dropout(&mut self, index: usize, rate: f32, stream: u64, n: usize, len: usize, x: Value) -> Result<()> {
        let scale = 1.0 / (1.0 - rate);
        let ws = &self.ws;
        self.launch(
            "dropout_forward",
            self.runs * n * len,
            &[ws.value(x).arg(), ws.masks[index].arg(), Arg::I64((n * len) as i64), Arg::I32(self.runs as i32), self.keys.arg(), Arg::U64(stream), Arg::F32(rate), Arg::F32(scale)],
        )
    }

    fn dropout_backward(&mut self, index: usize, n: usize, len: usize, g: Grad) -> Result<()> {
        let count = self.runs * n * len;
        self.launch("multiply", count, &[self.ws.grad(g).arg(), self.ws.masks[index].arg(), Arg::I64(count as i64)])
    }
}

impl<D: Device> GpuRuns<D> {
    /// Loss per sample (and its gradient when training), added to the runs' totals.
    fn loss(&self, n: usize, grad: bool) -> Result<()> {
        let ws = &self.ws;
        let dlogits = if grad { ws.grad(Grad::Logits).arg() } else { Arg::Null };
        self.launch(
            "softmax_xent",
            self.runs * n,
            &[ws.value(self.plan.logits).arg(), ws.labels.arg(), dlogits, ws.loss.arg(), ws.correct.arg(), Arg::I64((self.runs * n) as i64), Arg::I32(self.plan.classes() as i32), Arg::I32(n as i32)],
        )?;
        self.launch("add_batch_stats", self.runs, &[ws.loss.arg(), ws.correct.arg(), Arg::I32(n as i32), Arg::I32(self.runs as i32), ws.loss_total.arg(), ws.correct_total.arg()])
    }

    /// Zero the runs' loss and accuracy totals.
    pub fn reset_stats(&mut self) -> Result<()> {
        self.ws.loss_total.write(&self.dev, 0, &vec![0.0; self.runs])?;
        self.ws.correct_total.write(&self.dev, 0, &vec![0; self.runs])
    }

    /// Each run's totals since [`reset_stats`](Self::reset_stats), over `samples` samples per run.
    pub fn stats(&self, samples: usize) -> Result<Vec<BatchStats>> {
        let loss = self.ws.loss_total.read(&self.dev, 0, self.runs)?;
        let correct = self.ws.correct_total.read(&self.dev, 0, self.runs)?;
        Ok(loss.iter().zip(&correct).map(|(&l, &c)| BatchStats { loss_sum: l, correct: c as usize, samples }).collect())
    }

    /// One training step of every run on samples `start..start + n` of its
    /// order, at global step `step`: forward with dropout, loss, backward, the optimizer's update.
    pub fn train_step(&mut self, data: &DeviceSplit<D>, start: usize, n: usize, step: u64) -> Result<()> {
        assert!(n <= self.max_batch && start + n <= data.len);
        self.gather(data, start, n)?;
        pass::forward(self, n, Mode::Train { dropout_step: Some(step) })?;
        self.loss(n, true)?;
        pass::backward(self, n, true, false)?;
        self.t += 1;
        let count = self.runs * self.plan.param_count();
        let (p, g) = (self.params.arg(), self.grads.arg());
        match (self.optimizer, self.opt_state.as_slice()) {
            (OptimizerConfig::Adam(c), [m, v]) => self.launch(
                "adam",
                count,
                &[p, g, m.arg(), v.arg(), Arg::I64(count as i64), Arg::F32(c.alpha(self.t)), Arg::F32(1.0 - c.beta1), Arg::F32(1.0 - c.beta2), Arg::F32(c.epsilon)],
            ),
            (OptimizerConfig::Sgd(c), [velocity]) => self.launch("sgd", count, &[p, g, velocity.arg(), Arg::I64(count as i64), Arg::F32(c.learning_rate), Arg::F32(c.momentum)]),
            (c, s) => bail!("{} optimizer with {} state tensors", c.name(), s.len()),
        }
    }

    /// Loss and gradients without dropout or an update (`Model::loss_and_grads(.., None)`).
    pub fn loss_and_grads(&mut self, data: &DeviceSplit<D>, start: usize, n: usize) -> Result<()> {
        self.gather(data, start, n)?;
        pass::forward(self, n, Mode::Train { dropout_step: None })?;
        self.loss(n, true)?;
        pass::backward(self, n, false, false)
    }

    /// What run `run` computed in the last step on `n` samples: its batch's
    /// loss and accuracy, each activated layer's pre-activations, its gradients.
    pub fn last_batch(&self, run: usize, n: usize) -> Result<(BatchStats, Vec<Vec<f32>>, Vec<f32>)> {
        let ws = &self.ws;
        let loss = ws.loss.read(&self.dev, run * n, n)?;
        let correct = ws.correct.read(&self.dev, run * n, n)?;
        // Summed in sample order, as the CPU's loss sums them.
        let stats = BatchStats { loss_sum: loss.iter().fold(0.0, |s, l| s + l), correct: correct.iter().map(|&c| c as usize).sum(), samples: n };
        let pre = (0..self.plan.activated.len())
            .map(|i| {
                let (pre, len) = (self.plan.activation(i).0, self.plan.activated[i].len());
                ws.value(pre).read(&self.dev, run * n * len, n * len)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((stats, pre, self.grads(run)?))
    }

    /// Inference over a whole split, in batches of `max_batch` as `train::evaluate`.
    pub fn evaluate(&mut self, data: &DeviceSplit<D>) -> Result<Vec<BatchStats>> {
        self.reset_stats()?;
        let mut start = 0;
        while start < data.len {
            let n = self.max_batch.min(data.len - start);
            self.gather(data, start, n)?;
            pass::forward(self, n, Mode::Eval)?;
            self.loss(n, false)?;
            start += n;
        }
        self.stats(data.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keeps_the_first_of_each_function() {
        assert_eq!(distinct(&[Activation::Relu, Activation::Tanh, Activation::Relu]), vec![Activation::Relu, Activation::Tanh]);
    }
}

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
//! The sequence of launches below mirrors `Model::forward` / `Model::backward`
//! line for line; read them side by side.
//!
//! [`Model`]: super::model::Model
//! [`Adam`]: super::adam::Adam

use super::optim::{Optimizer, OptimizerConfig};
use super::loss::BatchStats;
use super::arch::{self, ACTIVATED};
use super::model::{param_count, param_ranges, Conv1, Conv2, Conv3, Conv4, Dense1, Dense2, Pool1, Pool2, CLASSES, DROPOUT_RATES, IMAGE_LEN};
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

/// The convolutions' and poolings' shapes, and each activated layer's
/// (spatial, channels) groups, from the network's table.
const CONVS: [Conv; arch::CONVS] = {
    let mut out = [arch::conv(0); arch::CONVS];
    let mut i = 0;
    while i < out.len() {
        out[i] = arch::conv(i);
        i += 1;
    }
    out
};

/// A pooling layer's input shape (h, w, c).
const POOLS: [[usize; 3]; arch::POOLS] = [arch::pool(0), arch::pool(1)];

/// Values of one sample's im2col matrix.
fn col_len(c: &Conv) -> usize {
    c.positions() * c.kdim()
}

fn pool_out_len(p: &[usize; 3]) -> usize {
    (p[0] / 2) * (p[1] / 2) * p[2]
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

/// The activations, saved values and scratch for R runs of up to `max_batch`.
struct Workspace<D: Device> {
    x: DeviceVec<D, f32>,
    labels: DeviceVec<D, u8>,
    col: [DeviceVec<D, f32>; 4],
    /// Pre-activations of the 5 activated layers.
    pre: [DeviceVec<D, f32>; 5],
    /// Post-activations.
    post: [DeviceVec<D, f32>; 5],
    dydx: [DeviceVec<D, f32>; 5],
    dydm: [DeviceVec<D, f32>; 5],
    mins: [DeviceVec<D, f32>; 5],
    pooled: [DeviceVec<D, f32>; 2],
    argmax: [DeviceVec<D, u8>; 2],
    masks: [DeviceVec<D, f32>; 3],
    logits: DeviceVec<D, f32>,
    dlogits: DeviceVec<D, f32>,
    g1: DeviceVec<D, f32>,
    g2: DeviceVec<D, f32>,
    dcol: DeviceVec<D, f32>,
    loss: DeviceVec<D, f64>,
    correct: DeviceVec<D, u8>,
    loss_total: DeviceVec<D, f64>,
    correct_total: DeviceVec<D, u64>,
}

pub struct GpuRuns<D: Device> {
    pub dev: D,
    runs: usize,
    max_batch: usize,
    /// Per run: index of its function in the program.
    act_index: Vec<usize>,
    acts: Vec<Activation>,
    optimizer: OptimizerConfig,
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
    pub fn new(acts: &[Activation], seeds: &[u64], max_batch: usize, optimizer: OptimizerConfig, device: impl FnOnce(&str) -> Result<D>) -> Result<Self> {
        if acts.is_empty() || acts.len() != seeds.len() {
            bail!("GPU runs: {} functions for {} seeds", acts.len(), seeds.len());
        }
        let distinct = distinct(acts);
        let dev = device(&program(acts))?;
        let (r, b) = (acts.len(), max_batch);
        let p = param_count();
        let z = |len: usize| DeviceVec::<D, f32>::zeros(&dev, r * b * len);
        let five = |f: &dyn Fn(usize) -> Result<DeviceVec<D, f32>>| -> Result<[DeviceVec<D, f32>; 5]> {
            Ok([f(ACTIVATED[0].len())?, f(ACTIVATED[1].len())?, f(ACTIVATED[2].len())?, f(ACTIVATED[3].len())?, f(ACTIVATED[4].len())?])
        };
        let biggest = [Conv1::OUT_LEN, Conv2::OUT_LEN, Conv3::OUT_LEN, Conv4::OUT_LEN, Conv1::IN_LEN].into_iter().max().unwrap();
        let ws = Workspace {
            x: z(IMAGE_LEN)?,
            labels: DeviceVec::zeros(&dev, r * b)?,
            col: [z(col_len(&CONVS[0]))?, z(col_len(&CONVS[1]))?, z(col_len(&CONVS[2]))?, z(col_len(&CONVS[3]))?],
            pre: five(&z)?,
            post: five(&z)?,
            dydx: five(&z)?,
            dydm: five(&z)?,
            mins: five(&|_| z(64))?,
            pooled: [z(pool_out_len(&POOLS[0]))?, z(pool_out_len(&POOLS[1]))?],
            argmax: [DeviceVec::zeros(&dev, r * b * pool_out_len(&POOLS[0]))?, DeviceVec::zeros(&dev, r * b * pool_out_len(&POOLS[1]))?],
            masks: [z(pool_out_len(&POOLS[0]))?, z(pool_out_len(&POOLS[1]))?, z(Dense1::OUT)?],
            logits: z(CLASSES)?,
            dlogits: z(CLASSES)?,
            g1: z(biggest)?,
            g2: z(biggest)?,
            dcol: z(CONVS.iter().map(col_len).max().unwrap())?,
            loss: DeviceVec::zeros(&dev, r * b)?,
            correct: DeviceVec::zeros(&dev, r * b)?,
            loss_total: DeviceVec::zeros(&dev, r)?,
            correct_total: DeviceVec::zeros(&dev, r)?,
        };
        let keys: Vec<u32> = seeds.iter().flat_map(|&s| [s as u32, (s >> 32) as u32]).collect();
        Ok(GpuRuns {
            runs: r,
            max_batch: b,
            act_index: acts.iter().map(|a| distinct.iter().position(|d| d == a).unwrap()).collect(),
            acts: distinct,
            optimizer,
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
        let p = param_count();
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
        let p = param_count();
        let params = self.params.read(&self.dev, run * p, p)?;
        let state = self.opt_state.iter().map(|s| s.read(&self.dev, run * p, p)).collect::<Result<_>>()?;
        Ok((params, Optimizer { config: self.optimizer, state, t: self.t }))
    }

    /// Run `run`'s gradients of the last step.
    pub fn grads(&self, run: usize) -> Result<Vec<f32>> {
        let p = param_count();
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
            self.runs * n * IMAGE_LEN,
            &[
                data.images.arg(),
                data.labels.arg(),
                data.order.arg(),
                Arg::I64(data.order_stride as i64),
                Arg::I64(start as i64),
                Arg::I32(n as i32),
                Arg::I32(self.runs as i32),
                Arg::I32(IMAGE_LEN as i32),
                ws.x.arg(),
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

    /// Offset of parameter tensor `i` in run 0; runs are `param_count()` apart.
    fn param(&self, i: usize) -> usize {
        param_ranges()[i].start
    }

    /// `y = x·W + b` for every run; x is `rows×inner` per run.
    fn linear(&self, rows: usize, inner: usize, outs: usize, x: &DeviceVec<D, f32>, w: usize, y: &DeviceVec<D, f32>) -> Result<()> {
        let p = param_count();
        let r = self.runs;
        self.launch("fill_bias", r * rows * outs, &[y.arg(), self.params.at(self.param(w + 1)), Arg::I64(p as i64), Arg::I64(rows as i64), Arg::I32(outs as i32), Arg::I32(r as i32)])?;
        self.gemm(rows, outs, inner, (x.arg(), inner, 1, rows * inner), (self.params.at(self.param(w)), outs, 1, p), (y.arg(), outs, rows * outs), true, Arg::Null)
    }

    /// Weight and bias gradients of a linear map (`rows×inner` input x, upstream dy),
    /// and, when `dx` is given, the input gradient (`rows×inner`).
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(&self, rows: usize, inner: usize, outs: usize, x: &DeviceVec<D, f32>, w: usize, dy: &DeviceVec<D, f32>, dx: Option<&DeviceVec<D, f32>>) -> Result<()> {
        let p = param_count();
        // dW = xᵀ·dy, and db = Σ rows of dy as its extra row of ones.
        let (dw, db) = (self.grads.at(self.param(w)), self.grads.at(self.param(w + 1)));
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

    /// `Conv2d::forward` for conv `l` (0-based) of every run.
    fn conv(&self, l: usize, n: usize, x: &DeviceVec<D, f32>) -> Result<()> {
        let c = &CONVS[l];
        let (col, y) = (&self.ws.col[l], &self.ws.pre[l]);
        let samples = self.runs * n;
        let mut args = vec![x.arg(), col.arg()];
        args.extend(self.conv_args(c, samples));
        self.launch("im2col", samples * col_len(c), &args)?;
        self.linear(n * c.positions(), c.kdim(), c.cout, col, arch::conv_weights(l), y)
    }

    /// `Conv2d::backward` for conv `l`: parameter gradients, and the input gradient into `dx` when given.
    fn conv_backward(&self, l: usize, n: usize, dy: &DeviceVec<D, f32>, dx: Option<&DeviceVec<D, f32>>) -> Result<()> {
        let c = &CONVS[l];
        let dcol = dx.map(|_| &self.ws.dcol);
        self.linear_backward(n * c.positions(), c.kdim(), c.cout, &self.ws.col[l], arch::conv_weights(l), dy, dcol)?;
        if let Some(dx) = dx {
            let samples = self.runs * n;
            let mut args = vec![self.ws.dcol.arg(), dx.arg()];
            args.extend(self.conv_args(c, samples));
            self.launch("col2im", samples * c.in_len(), &args)?;
        }
        Ok(())
    }

    fn pool_args<'a>(&self, p: &[usize; 3], samples: usize) -> [Arg<'a, D::Buf>; 6] {
        let i = |v: usize| Arg::I32(v as i32);
        [Arg::I64(samples as i64), i(p[0]), i(p[1]), i(p[2]), i(p[0] / 2), i(p[1] / 2)]
    }

    fn pool(&self, l: usize, n: usize, x: &DeviceVec<D, f32>) -> Result<()> {
        let p = &POOLS[l];
        let samples = self.runs * n;
        let mut args = vec![x.arg(), self.ws.pooled[l].arg(), self.ws.argmax[l].arg()];
        args.extend(self.pool_args(p, samples));
        self.launch("maxpool_forward", samples * pool_out_len(p), &args)
    }

    fn pool_backward(&self, l: usize, n: usize, dy: &DeviceVec<D, f32>, dx: &DeviceVec<D, f32>) -> Result<()> {
        let p = &POOLS[l];
        let samples = self.runs * n;
        let mut args = vec![dy.arg(), self.ws.argmax[l].arg(), dx.arg()];
        args.extend(self.pool_args(p, samples));
        self.launch("maxpool_backward", samples * p[0] * p[1] * p[2], &args)
    }

    /// Dropout `d` (0..3) in place on `x` (`len` features per sample) at global step `step`.
    fn dropout(&self, d: usize, n: usize, len: usize, x: &DeviceVec<D, f32>, step: u64) -> Result<()> {
        let rate = DROPOUT_RATES[d];
        let scale = 1.0 / (1.0 - rate);
        self.launch(
            "dropout_forward",
            self.runs * n * len,
            &[x.arg(), self.ws.masks[d].arg(), Arg::I64((n * len) as i64), Arg::I32(self.runs as i32), self.keys.arg(), Arg::U64(step * 3 + d as u64), Arg::F32(rate), Arg::F32(scale)],
        )
    }

    fn dropout_backward(&self, d: usize, n: usize, len: usize, g: &DeviceVec<D, f32>) -> Result<()> {
        self.launch("multiply", self.runs * n * len, &[g.arg(), self.ws.masks[d].arg(), Arg::I64((self.runs * n * len) as i64)])
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

    /// The activation of layer `l`: `post = f(pre)`, saving what the backward pass needs when training.
    fn activate(&self, l: usize, n: usize, train: bool) -> Result<()> {
        let (spatial, channels) = (ACTIVATED[l].spatial, ACTIVATED[l].channels);
        let len = spatial * channels;
        let ws = &self.ws;
        for (a, r0, r1) in self.same_function_spans() {
            let (samples, s0) = ((r1 - r0) * n, r0 * n);
            let (e0, g0) = (s0 * len, s0 * channels);
            let (sp, ch) = (Arg::I32(spatial as i32), Arg::I32(channels as i32));
            if self.acts[a].uses_min() {
                self.launch(&format!("act{a}_group_mins"), samples * channels, &[ws.pre[l].at(e0), ws.mins[l].at(g0), Arg::I32(samples as i32), Arg::I32(spatial as i32), Arg::I32(channels as i32)])?;
            }
            let count = Arg::I64((samples * len) as i64);
            if train {
                self.launch(&format!("act{a}_forward_train"), samples * len, &[ws.pre[l].at(e0), ws.mins[l].at(g0), ws.post[l].at(e0), ws.dydx[l].at(e0), ws.dydm[l].at(e0), count, sp, ch])?;
            } else {
                self.launch(&format!("act{a}_forward_eval"), samples * len, &[ws.pre[l].at(e0), ws.mins[l].at(g0), ws.post[l].at(e0), count, sp, ch])?;
            }
        }
        Ok(())
    }

    /// `dx = ∂f/∂pre · dy` for layer `l`.
    fn activate_backward(&self, l: usize, n: usize, dy: &DeviceVec<D, f32>, dx: &DeviceVec<D, f32>) -> Result<()> {
        let (spatial, channels) = (ACTIVATED[l].spatial, ACTIVATED[l].channels);
        let len = spatial * channels;
        let ws = &self.ws;
        for (a, r0, r1) in self.same_function_spans() {
            let (samples, s0) = ((r1 - r0) * n, r0 * n);
            let (e0, g0) = (s0 * len, s0 * channels);
            self.launch(
                &format!("act{a}_backward"),
                samples * channels,
                &[ws.pre[l].at(e0), dy.at(e0), ws.dydx[l].at(e0), ws.dydm[l].at(e0), ws.mins[l].at(g0), dx.at(e0), Arg::I32(samples as i32), Arg::I32(spatial as i32), Arg::I32(channels as i32)],
            )?;
        }
        Ok(())
    }

    /// `Model::forward` for every run; `dropout_step` is the global step of a training pass.
    fn forward(&self, n: usize, dropout_step: Option<u64>, train: bool) -> Result<()> {
        let ws = &self.ws;
        self.conv(0, n, &ws.x)?;
        self.activate(0, n, train)?;
        self.conv(1, n, &ws.post[0])?;
        self.activate(1, n, train)?;
        self.pool(0, n, &ws.post[1])?;
        if let Some(s) = dropout_step {
            self.dropout(0, n, Pool1::OUT_LEN, &ws.pooled[0], s)?;
        }
        self.conv(2, n, &ws.pooled[0])?;
        self.activate(2, n, train)?;
        self.conv(3, n, &ws.post[2])?;
        self.activate(3, n, train)?;
        self.pool(1, n, &ws.post[3])?;
        if let Some(s) = dropout_step {
            self.dropout(1, n, Pool2::OUT_LEN, &ws.pooled[1], s)?;
        }
        self.linear(n, Dense1::IN, Dense1::OUT, &ws.pooled[1], arch::dense_weights(0), &ws.pre[4])?;
        self.activate(4, n, train)?;
        if let Some(s) = dropout_step {
            self.dropout(2, n, Dense1::OUT, &ws.post[4], s)?;
        }
        self.linear(n, Dense2::IN, Dense2::OUT, &ws.post[4], arch::dense_weights(1), &ws.logits)
    }

    /// `Model::backward` for every run; fills the gradients.
    fn backward(&self, n: usize, dropout: bool) -> Result<()> {
        let ws = &self.ws;
        let (ga, gb) = (&ws.g1, &ws.g2);
        self.linear_backward(n, Dense2::IN, Dense2::OUT, &ws.post[4], arch::dense_weights(1), &ws.dlogits, Some(ga))?;
        if dropout {
            self.dropout_backward(2, n, Dense1::OUT, ga)?;
        }
        self.activate_backward(4, n, ga, gb)?;
        self.linear_backward(n, Dense1::IN, Dense1::OUT, &ws.pooled[1], arch::dense_weights(0), gb, Some(ga))?;
        if dropout {
            self.dropout_backward(1, n, Pool2::OUT_LEN, ga)?;
        }
        self.pool_backward(1, n, ga, gb)?;
        self.activate_backward(3, n, gb, ga)?;
        self.conv_backward(3, n, ga, Some(gb))?;
        self.activate_backward(2, n, gb, ga)?;
        self.conv_backward(2, n, ga, Some(gb))?;
        if dropout {
            self.dropout_backward(0, n, Pool1::OUT_LEN, gb)?;
        }
        self.pool_backward(0, n, gb, ga)?;
        self.activate_backward(1, n, ga, gb)?;
        self.conv_backward(1, n, gb, Some(ga))?;
        self.activate_backward(0, n, ga, gb)?;
        self.conv_backward(0, n, gb, None)
    }

    /// Loss per sample (and its gradient when training), added to the runs' totals.
    fn loss(&self, n: usize, grad: bool) -> Result<()> {
        let ws = &self.ws;
        let dlogits = if grad { ws.dlogits.arg() } else { Arg::Null };
        self.launch(
            "softmax_xent",
            self.runs * n,
            &[ws.logits.arg(), ws.labels.arg(), dlogits, ws.loss.arg(), ws.correct.arg(), Arg::I64((self.runs * n) as i64), Arg::I32(CLASSES as i32), Arg::I32(n as i32)],
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
        self.forward(n, Some(step), true)?;
        self.loss(n, true)?;
        self.backward(n, true)?;
        self.t += 1;
        let count = self.runs * param_count();
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
        self.forward(n, None, true)?;
        self.loss(n, true)?;
        self.backward(n, false)
    }

    /// What run `run` computed in the last step on `n` samples: its batch's
    /// loss and accuracy, each activated layer's pre-activations, its gradients.
    pub fn last_batch(&self, run: usize, n: usize) -> Result<(BatchStats, Vec<Vec<f32>>, Vec<f32>)> {
        let ws = &self.ws;
        let loss = ws.loss.read(&self.dev, run * n, n)?;
        let correct = ws.correct.read(&self.dev, run * n, n)?;
        // Summed in sample order, as the CPU's loss sums them.
        let stats = BatchStats { loss_sum: loss.iter().fold(0.0, |s, l| s + l), correct: correct.iter().map(|&c| c as usize).sum(), samples: n };
        let pre = ACTIVATED.iter().zip(&ws.pre).map(|(a, p)| p.read(&self.dev, run * n * a.len(), n * a.len())).collect::<Result<Vec<_>>>()?;
        Ok((stats, pre, self.grads(run)?))
    }

    /// Inference over a whole split, in batches of `max_batch` as `train::evaluate`.
    pub fn evaluate(&mut self, data: &DeviceSplit<D>) -> Result<Vec<BatchStats>> {
        self.reset_stats()?;
        let mut start = 0;
        while start < data.len {
            let n = self.max_batch.min(data.len - start);
            self.gather(data, start, n)?;
            self.forward(n, None, false)?;
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
    fn shapes_match_the_cpu_types() {
        assert_eq!(col_len(&CONVS[1]), Conv2::COL_LEN);
        assert_eq!(CONVS[3].positions() * CONVS[3].cout, Conv4::OUT_LEN);
        assert_eq!(CONVS[2].in_len(), Conv3::IN_LEN);
        assert_eq!(pool_out_len(&POOLS[1]), Pool2::OUT_LEN);
        assert_eq!(distinct(&[Activation::Relu, Activation::Tanh, Activation::Relu]), vec![Activation::Relu, Activation::Tanh]);
    }
}

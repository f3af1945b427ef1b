//! CPU kernels that apply an [`Activation`] to a layer's output.
//!
//! Elements are laid out `[sample][spatial][channel]` (NHWC; a dense layer is
//! spatial = units, channels = 1). Work is split by sample, so the thread
//! count never changes a result. The function is evaluated 16 elements at a
//! time over [`Lanes`], each lane with the operations of a lone `f32`.

use super::{Activation, Custom};
use crate::engine::cpu::{copy_short, isa_compiled};
use crate::engine::cpu::simd::Isa;
use crate::engine::math::lanes as lanes_of;
use crate::engine::real::{Dual, DualOf, Lanes, Real};
use rayon::prelude::*;
use std::cell::UnsafeCell;
use std::sync::Arc;

/// How a layer's output is grouped for the layer-wise minimum.
#[derive(Clone, Copy, Debug)]
pub struct Groups {
    pub samples: usize,
    pub spatial: usize,
    pub channels: usize,
}

#[allow(clippy::len_without_is_empty)] // a layer's groups are never empty
impl Groups {
    pub fn per_sample(&self) -> usize {
        self.spatial * self.channels
    }
    pub fn len(&self) -> usize {
        self.samples * self.per_sample()
    }
}

/// What the forward pass keeps for the backward pass.
#[derive(Default, Clone)]
pub struct Saved {
    /// ∂f/∂x per element.
    pub dydx: Vec<f32>,
    /// ∂f/∂m per element (layer-wise functions only).
    pub dydm: Vec<f32>,
    /// The group minimum per (sample, channel) (layer-wise functions only).
    pub mins: Vec<f32>,
}

impl Saved {
    pub fn with_capacity(act: Activation, g: Groups) -> Saved {
        let lw = act.uses_min();
        Saved {
            dydx: vec![0.0; g.len()],
            dydm: if lw { vec![0.0; g.len()] } else { Vec::new() },
            mins: if lw { vec![0.0; g.samples * g.channels] } else { Vec::new() },
        }
    }
}

/// Lanes per step of the kernels below.
const W: usize = 32;

/// The function to apply, looked up once per call (an expression's registry
/// entry, not once per element).
enum Resolved {
    /// Index into [`Activation::ALL`].
    Builtin(usize),
    Custom(Arc<Custom>),
}

impl Resolved {
    fn of(act: Activation) -> Resolved {
        match act.custom() {
            Some(c) => Resolved::Custom(c),
            None => Resolved::Builtin(Activation::ALL.iter().position(|&a| a == act).expect("a built-in is in Activation::ALL")),
        }
    }
}

/// A function as a kernel loop applies it. Each built-in is its own type, so
/// each gets a loop compiled for it alone: with the choice made inside the
/// loop, the compiler built the lanes on the stack (store-forwarding stalls
/// in `perf annotate`), and relu's training pass took 1.5× as long.
///
/// Each method is given the instruction set its kernel was compiled for
/// (an inlined body cannot ask), which an expression's walk needs; it is
/// always the `isa` of an `isa_compiled!` kernel, one this CPU has.
trait Kernel {
    fn eval<T: Real>(&self, isa: Isa, x: T, m: T) -> T;

    /// ∂f/∂x as training uses it, given the derivative `d` of the definition.
    #[inline(always)]
    fn slope(&self, _isa: Isa, _x: Lanes<W>, _m: Lanes<W>, d: Lanes<W>) -> Lanes<W> {
        d
    }

    /// The value and the slope training uses, on lanes at or below 0 (of a
    /// function linear above 0: [`Activation::linear_above_zero`]).
    #[inline(always)]
    fn at_most_zero(&self, isa: Isa, x: Lanes<W>) -> (Lanes<W>, Lanes<W>) {
        by_definition(self, isa, x)
    }
}

/// The value and slope of `k` at `x` (no layer-wise minimum), from the definition.
#[inline(always)]
fn by_definition<K: Kernel + ?Sized>(k: &K, isa: Isa, x: Lanes<W>) -> (Lanes<W>, Lanes<W>) {
    let m = Lanes([0.0; W]);
    let r = k.eval(isa, DualOf::var(x), DualOf::constant(m));
    (r.v, k.slope(isa, x, m, r.d))
}

/// The built-in `Activation::ALL[K]`.
struct Builtin<const K: usize>;

impl<const K: usize> Kernel for Builtin<K> {
    #[inline(always)]
    fn eval<T: Real>(&self, _isa: Isa, x: T, m: T) -> T {
        Activation::ALL[K].eval(x, m)
    }

    #[inline(always)]
    fn at_most_zero(&self, isa: Isa, x: Lanes<W>) -> (Lanes<W>, Lanes<W>) {
        match Activation::ALL[K] {
            // Without the dual's steps and the other side's select (K is a constant: no branch).
            Activation::SoftplusLinear => super::softplus_linear_at_most_zero(x),
            _ => by_definition(self, isa, x),
        }
    }
}

impl Kernel for Custom {
    #[inline(always)]
    fn eval<T: Real>(&self, isa: Isa, x: T, m: T) -> T {
        debug_assert!(Isa::available().contains(&isa));
        // SAFETY: the kernel's instruction set, one this CPU has (see the trait).
        unsafe { self.forward.eval_on(isa, x, m) }
    }

    /// A straight-through function's own slope expression, or `d`.
    #[inline(always)]
    fn slope(&self, isa: Isa, x: Lanes<W>, m: Lanes<W>, d: Lanes<W>) -> Lanes<W> {
        // SAFETY: as above.
        self.grad.as_ref().map_or(d, |g| unsafe { g.eval_on(isa, x, m) })
    }
}

/// Run `$body` with `$k` bound to the [`Kernel`] of `$f` (a `&Resolved`).
macro_rules! with_kernel {
    ($f:expr, $k:ident => $body:expr) => {{
        const _: () = assert!(Activation::ALL.len() == 6, "give each built-in its arm below");
        match $f {
            Resolved::Builtin(0) => { let $k = &Builtin::<0>; $body }
            Resolved::Builtin(1) => { let $k = &Builtin::<1>; $body }
            Resolved::Builtin(2) => { let $k = &Builtin::<2>; $body }
            Resolved::Builtin(3) => { let $k = &Builtin::<3>; $body }
            Resolved::Builtin(4) => { let $k = &Builtin::<4>; $body }
            Resolved::Builtin(5) => { let $k = &Builtin::<5>; $body }
            Resolved::Builtin(k) => unreachable!("built-in {k} has no arm"),
            Resolved::Custom(c) => { let $k: &Custom = c; $body }
        }
    }};
}

fn group_mins(x: &[f32], g: Groups, mins: &mut [f32]) {
    let c = g.channels;
    for (xs, ms) in x.chunks(g.per_sample()).zip(mins.chunks_mut(c)) {
        ms.fill(f32::INFINITY);
        for row in xs.chunks(c) {
            for (m, &v) in ms.iter_mut().zip(row) {
                if v < *m {
                    *m = v;
                }
            }
        }
    }
}

/// `step(i0, len, lanes)` for each run of `W` elements of `x` from element
/// `i0`, then for the tail (`len < W`, zeros in the lanes past its end).
///
/// The whole runs have a loop of their own: one loop over both kinds made
/// the lanes a choice between a full load and a padded one, which LLVM kept
/// as 32 scalar registers, so every `select` became 32 scalar compares
/// (`perf annotate` of relu's training pass on AVX-512; the pass took 5 ms
/// of a 55 ms step). Callers mark `step` `#[inline(always)]`: a closure
/// left out of line is compiled for the baseline instruction set (SSE2),
/// not for the kernel's, and LLVM left relu's out of line.
#[inline(always)]
fn each_lanes(x: &[f32], mut step: impl FnMut(usize, usize, Lanes<W>)) {
    let whole = x.chunks_exact(W);
    let tail = whole.remainder();
    for (k, xs) in whole.enumerate() {
        step(k * W, W, Lanes(*<&[f32; W]>::try_from(xs).expect("a whole run")));
    }
    if !tail.is_empty() {
        step(x.len() - tail.len(), tail.len(), Lanes(lanes_of(|i| tail.get(i).copied().unwrap_or(0.0))));
    }
}

/// The first `dst.len()` (≤ W) lanes of `v` into `dst`.
#[inline(always)]
fn store(dst: &mut [f32], v: Lanes<W>) {
    match <&mut [f32; W]>::try_from(&mut *dst) {
        Ok(full) => *full = v.0,
        Err(_) => copy_short(dst, &v.0[..dst.len()]),
    }
}

/// The group minima of elements `i0..i0+W` of sample `s` (0 where unused).
#[inline(always)]
fn lane_mins(mins: &[f32], g: Groups, s: usize, i0: usize) -> Lanes<W> {
    if mins.is_empty() {
        return Lanes([0.0; W]);
    }
    let c = g.channels;
    let row = &mins[s * c..(s + 1) * c];
    let ch = i0 % c;
    // Channels wrap within the 16 lanes only for groups narrower than them.
    Lanes(lanes_of(|i| row[if ch + i < c { ch + i } else { (ch + i) % c }]))
}

/// Inference: `y = f(x, m)`.
pub fn forward_eval(act: Activation, g: Groups, x: &[f32], y: &mut [f32], mins_scratch: &mut Vec<f32>) {
    forward_eval_on(Isa::detected(), act, g, x, y, mins_scratch)
}

/// [`forward_eval`] on the instruction set `isa` (one of [`Isa::available`]).
fn forward_eval_on(isa: Isa, act: Activation, g: Groups, x: &[f32], y: &mut [f32], mins_scratch: &mut Vec<f32>) {
    let (n, ps) = (g.len(), g.per_sample());
    if let Some(f) = ElementWise::on(isa, act) {
        y[..n].par_chunks_mut(ps).zip(x[..n].par_chunks(ps)).for_each(|(ys, xs)| f.apply(xs, ys, None));
        return;
    }
    mins_scratch.resize(g.samples * g.channels, 0.0);
    group_mins(&x[..n], g, mins_scratch);
    let (f, mins) = (Resolved::of(act), &mins_scratch[..]);
    y[..n].par_chunks_mut(ps).zip(x[..n].par_chunks(ps)).enumerate().for_each(|(s, (ys, xs))| {
        // SAFETY: `isa` is one this CPU has.
        unsafe { eval_sample(isa, &f, isa, g, s, xs, ys, mins, None) }
    });
}

isa_compiled! {
    fn eval_sample(f: &Resolved, isa: Isa, g: Groups, s: usize, x: &[f32], y: &mut [f32], mins: &[f32], linear: Option<f32>) => eval_sample_with
}

#[inline(always)]
#[allow(clippy::too_many_arguments)] // the sample's input and output, where it sits, and the linear side
fn eval_sample_with(f: &Resolved, isa: Isa, g: Groups, s: usize, x: &[f32], y: &mut [f32], mins: &[f32], linear: Option<f32>) {
    with_kernel!(f, f => {
        if let Some(c) = linear {
            // The definition where x <= 0, packed; then x + c elsewhere.
            // SAFETY: nothing else on this thread uses the lists meanwhile.
            let below = unsafe { BelowZero::this_thread() };
            for (xs, ys) in x.chunks(BLOCK).zip(y.chunks_mut(BLOCK)) {
                let n = below.pack(isa, xs);
                for k in 0..n.div_ceil(W) {
                    let (v, _) = f.at_most_zero(isa, below.batch(k));
                    below.keep(k, v, None);
                }
                below.unpack(isa, xs, c, ys, &mut []);
            }
            return;
        }
        each_lanes(x, #[inline(always)] |i0, len, xv| {
            let v = f.eval(isa, xv, lane_mins(mins, g, s, i0));
            store(&mut y[i0..i0 + len], v);
        });
    })
}

/// Elements of a sample whose `x <= 0` values are packed at once.
const BLOCK: usize = 4096;

/// A block's elements at or below 0, packed side by side, ready to load as
/// lanes; then, batch by batch, the function's values and slopes there,
/// until [`BelowZero::unpack`] puts them in place.
///
/// Where each packed element came from is not kept: unpacking compares
/// the block with 0 again, and the comparison's mask says which lanes
/// take the next packed values (an expanding permute). Scattering them
/// one at a time by a list of positions took a third of softplus_linear's
/// pass, with the packing.
struct BelowZero {
    /// The packed inputs, and in their place the values.
    vals: Vec<f32>,
    /// The slopes of the packed elements (training only).
    slopes: Vec<f32>,
}

thread_local! {
    static BELOW_ZERO: UnsafeCell<BelowZero> = UnsafeCell::new(BelowZero::new());
}

impl BelowZero {
    /// Room for a block and a whole batch of lanes past its last element
    /// (read, evaluated and kept, never unpacked). A step reads or writes
    /// at most 16 entries from the count so far, which is at most its first
    /// element's index, so that is within the block; the lists are as
    /// long as that with room to spare, which the steps' asserts check.
    fn new() -> BelowZero {
        let cap = BLOCK + W + 16;
        BelowZero { vals: vec![0.0; cap], slopes: vec![0.0; cap] }
    }

    /// This thread's lists, allocated once: a convolution's forward pass
    /// applies the function to each block of rows it finishes, and two
    /// allocations per block cost more than a block of relu.
    ///
    /// A reference rather than a closure over the thread-local, as
    /// `engine::cpu::thread_scratch` returns: the kernels are
    /// `#[target_feature]` functions, and a closure would not inherit their
    /// instruction set.
    ///
    /// # Safety
    /// One user per thread at a time: the reference is not kept past the
    /// kernel's call, nor sent to another thread, and nothing the kernel
    /// calls meanwhile asks for it again (nothing there enters rayon).
    unsafe fn this_thread<'a>() -> &'a mut BelowZero {
        // SAFETY: the lists live as long as the thread; see above for aliasing.
        BELOW_ZERO.with(|b| unsafe { &mut *b.get() })
    }

    /// Packs the elements of `x` (a block) where `x <= 0` (false for NaN),
    /// in order, and returns how many.
    ///
    /// A step of eight (or AVX-512's sixteen) elements at a time, and
    /// branch-free: a sample's signs are as good as random, so a branch per
    /// element mispredicts half the time. All the step's entries are
    /// written at the end of the list, which then advances by the count of
    /// the compare mask. AVX-512 packs them with one compress, AVX2 with
    /// one permute by the mask's row of [`PACK`] (a scalar loop with one
    /// compare per element took a quarter of softplus_linear's training
    /// pass in `perf annotate`).
    #[inline(always)]
    fn pack(&mut self, isa: Isa, x: &[f32]) -> usize {
        assert!(x.len() <= BLOCK);
        let whole = x.len() / isa_step(isa) * isa_step(isa);
        let mut n = match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F; the list has 16 spare entries.
            Isa::Avx512 => unsafe { x86::pack16(&mut self.vals, &x[..whole]) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2; the list has 8 spare entries.
            Isa::Avx2 => unsafe { x86::pack(&mut self.vals, &x[..whole]) },
            _ => {
                let mut n = 0;
                for xs in x[..whole].chunks_exact(8) {
                    let mask = (0..8).fold(0, |m, j| m | ((xs[j] <= 0.0) as usize) << j);
                    for (j, &from) in PACK[mask].iter().enumerate() {
                        self.vals[n + j] = xs[from as usize];
                    }
                    n += COUNT[mask] as usize;
                }
                n
            }
        };
        for &v in &x[whole..] {
            self.vals[n] = v;
            n += (v <= 0.0) as usize;
        }
        n
    }

    /// Batch `k` (from 0) of the packed values as lanes. Lanes past the
    /// last packed value hold stale values: evaluated, never unpacked.
    #[inline(always)]
    fn batch(&self, k: usize) -> Lanes<W> {
        Lanes(self.vals[k * W..(k + 1) * W].try_into().expect("W lanes"))
    }

    /// Batch `k`'s values (and slopes) in place of its inputs.
    #[inline(always)]
    fn keep(&mut self, k: usize, v: Lanes<W>, slopes: Option<Lanes<W>>) {
        self.vals[k * W..(k + 1) * W].copy_from_slice(&v.0);
        if let Some(d) = slopes {
            self.slopes[k * W..(k + 1) * W].copy_from_slice(&d.0);
        }
    }

    /// `y` (and `dydx`, unless empty) over the block `x` that was packed:
    /// the kept values and slopes, in order, where `x <= 0`; `x + c` and 1
    /// elsewhere. AVX-512 takes them back with one expand per sixteen
    /// elements; AVX2 with a permute by a row of [`EXPAND`] and a blend per
    /// eight.
    #[inline(always)]
    fn unpack(&self, isa: Isa, x: &[f32], c: f32, y: &mut [f32], dydx: &mut [f32]) {
        assert!(y.len() == x.len() && (dydx.is_empty() || dydx.len() == x.len()));
        // How many elements the vector steps took back, and how many packed
        // entries; the rest (all of it on the scalar build) goes element by
        // element, below.
        let (whole, mut n) = match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 | Isa::Avx2 => {
                let whole = x.len() / isa_step(isa) * isa_step(isa);
                let (xs, ys) = (&x[..whole], &mut y[..whole]);
                let ds = if dydx.is_empty() { &mut [][..] } else { &mut dydx[..whole] };
                let n = match isa {
                    // SAFETY: the CPU has AVX-512F; a step reads at most 16 entries from n <= its first element.
                    Isa::Avx512 => unsafe { x86::unpack16(&self.vals, &self.slopes, xs, c, ys, ds) },
                    // SAFETY: the CPU has AVX2; as above, 8 entries.
                    _ => unsafe { x86::unpack(&self.vals, &self.slopes, xs, c, ys, ds) },
                };
                (whole, n)
            }
            _ => (0, 0),
        };
        for i in whole..x.len() {
            let below = x[i] <= 0.0;
            y[i] = if below { self.vals[n] } else { x[i] + c };
            if !dydx.is_empty() {
                dydx[i] = if below { self.slopes[n] } else { 1.0 };
            }
            n += below as usize;
        }
    }
}

/// Elements per step of [`BelowZero::pack`] and [`BelowZero::unpack`] on `isa`.
fn isa_step(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        _ => 8,
    }
}

/// For each 8-bit compare mask: its set bit positions in order (the
/// lanes a step packs), each set position's rank among them (the packed
/// entry that lane takes back), and how many there are.
const MASK_TABLES: ([[u32; 8]; 256], [[u32; 8]; 256], [u8; 256]) = {
    let (mut positions, mut ranks, mut counts) = ([[0u32; 8]; 256], [[0u32; 8]; 256], [0u8; 256]);
    let mut mask = 0;
    while mask < 256 {
        let (mut n, mut bit) = (0, 0);
        while bit < 8 {
            if mask & (1 << bit) != 0 {
                positions[mask][n] = bit as u32;
                ranks[mask][bit] = n as u32;
                n += 1;
            }
            bit += 1;
        }
        counts[mask] = n as u8;
        mask += 1;
    }
    (positions, ranks, counts)
};

/// Row `mask` holds the mask's set bit positions in order; the entries
/// after them are unused.
static PACK: [[u32; 8]; 256] = MASK_TABLES.0;

/// [`PACK`]'s inverse: row `mask`, at each set bit position, holds how many
/// set bits precede it; the other entries are unused.
#[cfg(target_arch = "x86_64")]
static EXPAND: [[u32; 8]; 256] = MASK_TABLES.1;

/// The number of set bits of each mask (a table: the kernels' AVX2 build
/// may lack the POPCNT instruction).
static COUNT: [u8; 256] = MASK_TABLES.2;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{COUNT, EXPAND, PACK};
    use std::arch::x86_64::*;

    /// [`super::BelowZero::pack`] over whole steps of 8, into `vals`.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx,avx2")]
    pub(super) unsafe fn pack(vals: &mut [f32], x: &[f32]) -> usize {
        assert!(x.len().is_multiple_of(8) && vals.len() >= x.len() + 8);
        let (mut n, zero) = (0, _mm256_setzero_ps());
        for i0 in (0..x.len()).step_by(8) {
            // SAFETY: i0 + 8 <= x.len(); n + 8 <= i0 + 8 <= vals.len().
            unsafe {
                let v = _mm256_loadu_ps(x.as_ptr().add(i0));
                let mask = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(v, zero)) as usize;
                let from = _mm256_loadu_si256(PACK[mask].as_ptr().cast());
                _mm256_storeu_ps(vals.as_mut_ptr().add(n), _mm256_permutevar8x32_ps(v, from));
                n += COUNT[mask] as usize;
            }
        }
        n
    }

    /// [`super::BelowZero::pack`] over whole steps of 16, into `vals`.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn pack16(vals: &mut [f32], x: &[f32]) -> usize {
        assert!(x.len().is_multiple_of(16) && vals.len() >= x.len() + 16);
        let (mut n, zero) = (0, _mm512_setzero_ps());
        for i0 in (0..x.len()).step_by(16) {
            // SAFETY: i0 + 16 <= x.len(); n + 16 <= i0 + 16 <= vals.len().
            // The compress is into a register, then stored whole: a
            // compressing store to memory is microcoded on some CPUs.
            unsafe {
                let v = _mm512_loadu_ps(x.as_ptr().add(i0));
                let below = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, zero);
                _mm512_storeu_ps(vals.as_mut_ptr().add(n), _mm512_maskz_compress_ps(below, v));
                n += count16(below);
            }
        }
        n
    }

    /// [`super::BelowZero::unpack`] over whole steps of 16; returns how
    /// many packed entries it took.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn unpack16(vals: &[f32], slopes: &[f32], x: &[f32], c: f32, y: &mut [f32], dydx: &mut [f32]) -> usize {
        let fill_slope = !dydx.is_empty();
        assert!(x.len().is_multiple_of(16) && y.len() == x.len() && (!fill_slope || dydx.len() == x.len()));
        assert!(vals.len() >= x.len() + 16 && (!fill_slope || slopes.len() >= x.len() + 16));
        let (mut n, cv, one, zero) = (0, _mm512_set1_ps(c), _mm512_set1_ps(1.0), _mm512_setzero_ps());
        for i0 in (0..x.len()).step_by(16) {
            // SAFETY: i0 + 16 <= x.len() = y.len() (= dydx.len() when filled);
            // n + 16 <= i0 + 16 <= the lists' lengths.
            unsafe {
                let v = _mm512_loadu_ps(x.as_ptr().add(i0));
                let below = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, zero);
                let kept = _mm512_loadu_ps(vals.as_ptr().add(n));
                _mm512_storeu_ps(y.as_mut_ptr().add(i0), _mm512_mask_expand_ps(_mm512_add_ps(v, cv), below, kept));
                if fill_slope {
                    let kept = _mm512_loadu_ps(slopes.as_ptr().add(n));
                    _mm512_storeu_ps(dydx.as_mut_ptr().add(i0), _mm512_mask_expand_ps(one, below, kept));
                }
                n += count16(below);
            }
        }
        n
    }

    /// The set bits of a 16-bit mask, from [`COUNT`] (the kernels' build may
    /// lack the POPCNT instruction).
    #[inline(always)]
    fn count16(mask: __mmask16) -> usize {
        (COUNT[(mask & 0xff) as usize] + COUNT[(mask >> 8) as usize]) as usize
    }

    /// [`super::BelowZero::unpack`] over whole steps of 8; returns how many
    /// packed entries it took.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[inline]
    #[target_feature(enable = "avx,avx2")]
    pub(super) unsafe fn unpack(vals: &[f32], slopes: &[f32], x: &[f32], c: f32, y: &mut [f32], dydx: &mut [f32]) -> usize {
        let fill_slope = !dydx.is_empty();
        assert!(x.len().is_multiple_of(8) && y.len() == x.len() && (!fill_slope || dydx.len() == x.len()));
        assert!(vals.len() >= x.len() + 8 && (!fill_slope || slopes.len() >= x.len() + 8));
        let (mut n, cv, one, zero) = (0, _mm256_set1_ps(c), _mm256_set1_ps(1.0), _mm256_setzero_ps());
        for i0 in (0..x.len()).step_by(8) {
            // SAFETY: i0 + 8 <= x.len() = y.len() (= dydx.len() when filled);
            // n + 8 <= i0 + 8 <= the lists' lengths.
            unsafe {
                let v = _mm256_loadu_ps(x.as_ptr().add(i0));
                let below = _mm256_cmp_ps::<_CMP_LE_OQ>(v, zero);
                let mask = _mm256_movemask_ps(below) as usize;
                let from = _mm256_loadu_si256(EXPAND[mask].as_ptr().cast());
                let kept = _mm256_permutevar8x32_ps(_mm256_loadu_ps(vals.as_ptr().add(n)), from);
                _mm256_storeu_ps(y.as_mut_ptr().add(i0), _mm256_blendv_ps(_mm256_add_ps(v, cv), kept, below));
                if fill_slope {
                    let kept = _mm256_permutevar8x32_ps(_mm256_loadu_ps(slopes.as_ptr().add(n)), from);
                    _mm256_storeu_ps(dydx.as_mut_ptr().add(i0), _mm256_blendv_ps(one, kept, below));
                }
                n += COUNT[mask] as usize;
            }
        }
        n
    }
}

/// Training: `y = f(x, m)` and the derivatives the backward pass needs.
pub fn forward_train(act: Activation, g: Groups, x: &[f32], y: &mut [f32], saved: &mut Saved) {
    forward_train_on(Isa::detected(), act, g, x, y, saved)
}

/// [`forward_train`] on the instruction set `isa` (one of [`Isa::available`]).
fn forward_train_on(isa: Isa, act: Activation, g: Groups, x: &[f32], y: &mut [f32], saved: &mut Saved) {
    let (n, ps) = (g.len(), g.per_sample());
    let per_sample = y[..n].par_chunks_mut(ps).zip(saved.dydx[..n].par_chunks_mut(ps)).zip(x[..n].par_chunks(ps));
    if let Some(f) = ElementWise::on(isa, act) {
        per_sample.for_each(|((ys, ds), xs)| f.apply(xs, ys, Some(ds)));
        return;
    }
    group_mins(&x[..n], g, &mut saved.mins);
    let (f, mins) = (Resolved::of(act), &saved.mins[..]);
    // Layer-wise functions also keep ∂f/∂m.
    per_sample.enumerate().zip(saved.dydm[..n].par_chunks_mut(ps)).for_each(|((s, ((ys, ds), xs)), dms)| {
        // SAFETY: `isa` is one this CPU has.
        unsafe { train_sample(isa, &f, isa, g, s, xs, ys, ds, dms, mins, None) }
    });
}

/// An element-wise function (not a layer-wise one), ready to apply to any
/// run of a layer's values: each element's value and slope depend on that
/// element alone, so any run gives the bits of the whole layer's pass. A
/// convolution hands each block of rows over as it finishes it.
pub struct ElementWise {
    f: Resolved,
    /// The constant of `x + c` above zero, for a function linear there.
    linear: Option<f32>,
    isa: Isa,
}

impl ElementWise {
    /// None for a layer-wise function: its values need the layer's minima.
    pub fn of(act: Activation) -> Option<ElementWise> {
        ElementWise::on(Isa::detected(), act)
    }

    /// On `isa`, one of [`Isa::available`].
    fn on(isa: Isa, act: Activation) -> Option<ElementWise> {
        (!act.uses_min()).then(|| ElementWise { f: Resolved::of(act), linear: act.linear_above_zero(), isa })
    }

    /// `y = f(x)`, and with `dydx` the slopes training uses.
    pub fn apply(&self, x: &[f32], y: &mut [f32], dydx: Option<&mut [f32]>) {
        // The groups and the sample matter only to the minima of a layer-wise function.
        let g = Groups { samples: 1, spatial: x.len(), channels: 1 };
        // SAFETY (both): `isa` is one this CPU has. The body gets it too, to
        // pick its packing step (an inlined body cannot ask what it was compiled for).
        match dydx {
            Some(d) => unsafe { train_sample(self.isa, &self.f, self.isa, g, 0, x, y, d, &mut [], &[], self.linear) },
            None => unsafe { eval_sample(self.isa, &self.f, self.isa, g, 0, x, y, &[], self.linear) },
        }
    }
}

isa_compiled! {
    fn train_sample(f: &Resolved, isa: Isa, g: Groups, s: usize, x: &[f32], y: &mut [f32], dydx: &mut [f32], dydm: &mut [f32], mins: &[f32], linear: Option<f32>) => train_sample_with
}

#[inline(always)]
#[allow(clippy::too_many_arguments)] // the sample's inputs, its three outputs, and the linear side
fn train_sample_with(f: &Resolved, isa: Isa, g: Groups, s: usize, x: &[f32], y: &mut [f32], dydx: &mut [f32], dydm: &mut [f32], mins: &[f32], linear: Option<f32>) {
    with_kernel!(f, f => {
        if let Some(c) = linear {
            // The definition where x <= 0, packed; then x + c with slope 1 elsewhere.
            // SAFETY: nothing else on this thread uses the lists meanwhile.
            let below = unsafe { BelowZero::this_thread() };
            for ((xs, ys), ds) in x.chunks(BLOCK).zip(y.chunks_mut(BLOCK)).zip(dydx.chunks_mut(BLOCK)) {
                let n = below.pack(isa, xs);
                for k in 0..n.div_ceil(W) {
                    let (v, d) = f.at_most_zero(isa, below.batch(k));
                    below.keep(k, v, Some(d));
                }
                below.unpack(isa, xs, c, ys, ds);
            }
            return;
        }
        each_lanes(x, #[inline(always)] |i0, len, xv| {
            let m = lane_mins(mins, g, s, i0);
            let r = f.eval(isa, DualOf::var(xv), DualOf::constant(m));
            store(&mut y[i0..i0 + len], r.v);
            store(&mut dydx[i0..i0 + len], f.slope(isa, xv, m, r.d));
            if !dydm.is_empty() {
                store(&mut dydm[i0..i0 + len], f.eval(isa, DualOf::constant(xv), DualOf::var(m)).d);
            }
        });
    })
}

/// `dx = dy·∂f/∂x`, plus, for layer-wise functions, `Σ dy·∂f/∂m` of each
/// group shared among the elements equal to its minimum.
pub fn backward(act: Activation, g: Groups, x: &[f32], dy: &[f32], saved: &Saved, dx: &mut [f32]) {
    let n = g.len();
    let ps = g.per_sample();
    let c = g.channels;
    let (lw, isa) = (act.uses_min(), Isa::detected());
    dx[..n].par_chunks_mut(ps).enumerate().for_each(|(s, dxs)| {
        let base = s * ps;
        // SAFETY: the detected instruction set.
        unsafe { times_slope(isa, &dy[base..base + ps], &saved.dydx[base..base + ps], dxs) };
        if lw {
            for ch in 0..c {
                let m = saved.mins[s * c + ch];
                let (mut sum, mut ties) = (0f32, 0u32);
                for p in 0..g.spatial {
                    let i = p * c + ch;
                    sum += dy[base + i] * saved.dydm[base + i];
                    ties += (x[base + i] == m) as u32;
                }
                let share = sum / ties as f32;
                for p in 0..g.spatial {
                    let i = p * c + ch;
                    if x[base + i] == m {
                        dxs[i] += share;
                    }
                }
            }
        }
    });
}

/// `g = g·slope` in place: [`backward`]'s product for an element-wise
/// function, on a gradient computed a moment ago (a convolution's input
/// gradient, a sample at a time while it is in the cache).
pub fn times_slope_in_place(g: &mut [f32], slope: &[f32]) {
    // SAFETY: the detected instruction set.
    unsafe { slope_in_place(Isa::detected(), g, slope) }
}

isa_compiled! {
    fn slope_in_place(g: &mut [f32], slope: &[f32]) => slope_in_place_with
}

#[inline(always)]
fn slope_in_place_with(g: &mut [f32], slope: &[f32]) {
    assert_eq!(g.len(), slope.len());
    for (d, &k) in g.iter_mut().zip(slope) {
        *d *= k;
    }
}

isa_compiled! {
    fn times_slope(dy: &[f32], slope: &[f32], dx: &mut [f32]) => times_slope_with
}

/// `dx = dy·slope`, compiled per instruction set (the rayon closure around
/// it is built for SSE2).
#[inline(always)]
fn times_slope_with(dy: &[f32], slope: &[f32], dx: &mut [f32]) {
    for ((d, &g), &k) in dx.iter_mut().zip(dy).zip(slope) {
        *d = g * k;
    }
}

/// The activation's values and the slopes training uses, on a grid (charts).
pub fn curve(act: Activation, xs: &[f32], m: f32) -> Vec<(f32, f32, f32)> {
    let custom = act.custom();
    xs.iter()
        .map(|&x| match &custom {
            Some(c) => {
                let (v, d) = c.value_and_slope(x, m);
                (x, v, d)
            }
            None => {
                let r = act.eval(Dual::var(x), Dual::constant(m));
                (x, r.v, r.d)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function evaluated only where x <= 0 (softplus_linear) gives each
    /// element the bits of its definition, in training and in inference,
    /// whatever the mix of signs: NaN, ±0, ±∞, runs longer than a batch,
    /// and samples longer than a block with a tail shorter than eight; on
    /// every instruction set this CPU has.
    #[test]
    fn evaluating_only_at_or_below_zero_keeps_the_bits() {
        let act = Activation::SoftplusLinear;
        let g = Groups { samples: 2, spatial: 1001, channels: 5 };
        let tail = g.per_sample() % BLOCK;
        assert!(g.per_sample() > BLOCK && !tail.is_multiple_of(8) && tail % 16 > 8);
        let mut x: Vec<f32> = (0..g.len()).map(|i| (((i * 7919) % 201) as f32 - 100.0) / 9.0).collect();
        let specials = [f32::NAN, -0.0, 0.0, f32::NEG_INFINITY, f32::INFINITY, -200.0];
        x[3..9].copy_from_slice(&specials);
        // The same in the last elements of the sample, past the whole vector steps.
        x[g.per_sample() - 6..g.per_sample()].copy_from_slice(&specials);
        for i in (100..100 + 3 * W).chain(BLOCK - W..BLOCK + W) {
            x[i] = -x[i].abs() - 0.1;
        }
        assert_lone_values_on_every_isa(act, g, &x);
    }

    /// Training and inference of element-wise `act` on every instruction
    /// set this CPU has give each element of `x` the bits of its lone f32
    /// evaluation: value, slope and inferred value.
    fn assert_lone_values_on_every_isa(act: Activation, g: Groups, x: &[f32]) {
        for isa in Isa::available() {
            let mut saved = Saved::with_capacity(act, g);
            let mut y = vec![0.0; g.len()];
            forward_train_on(isa, act, g, x, &mut y, &mut saved);
            let mut inferred = vec![0.0; g.len()];
            forward_eval_on(isa, act, g, x, &mut inferred, &mut Vec::new());
            for (i, &v) in x.iter().enumerate() {
                // The value, and the slope training uses (a straight-through function's own).
                let (_, value, slope) = curve(act, &[v], 0.0)[0];
                let bits = (y[i].to_bits(), saved.dydx[i].to_bits(), inferred[i].to_bits());
                assert_eq!(bits, (value.to_bits(), slope.to_bits(), value.to_bits()), "{act:?} {isa:?}: element {i} = {v}");
            }
        }
    }

    /// Every element-wise built-in, in training and in inference, on every
    /// instruction set this CPU has, gives each element the bits of its lone
    /// f32 evaluation: the lanes' choices between sides (`select`, as bit
    /// masks) and their tails (samples not a multiple of the lanes).
    #[test]
    fn every_function_gives_its_lone_values_on_every_instruction_set() {
        let g = Groups { samples: 3, spatial: 37, channels: 5 };
        assert!(!g.per_sample().is_multiple_of(W));
        let mut x: Vec<f32> = (0..g.len()).map(|i| (((i * 7919) % 401) as f32 - 200.0) / 23.0).collect();
        let tiny = f32::MIN_POSITIVE / 4.0;
        x[..11].copy_from_slice(&[f32::NAN, -0.0, 0.0, f32::NEG_INFINITY, f32::INFINITY, -200.0, 200.0, tiny, -tiny, f32::MAX, -f32::MAX]);
        for &act in Activation::ALL.iter().filter(|a| !a.uses_min()) {
            assert_lone_values_on_every_isa(act, g, &x);
        }
    }

    /// Expression-defined functions too (the modern study's, whose walk is
    /// compiled per instruction set): every lane gets its lone value.
    #[test]
    fn expressions_give_their_lone_values_on_every_instruction_set() {
        use crate::activation::{define, Definition};
        let g = Groups { samples: 2, spatial: 41, channels: 3 };
        let mut x: Vec<f32> = (0..g.len()).map(|i| (((i * 7919) % 401) as f32 - 200.0) / 23.0).collect();
        x[..10].copy_from_slice(&[f32::NAN, -0.0, 0.0, f32::NEG_INFINITY, f32::INFINITY, -200.0, 200.0, f32::MIN_POSITIVE / 4.0, f32::MAX, -f32::MAX]);
        for (name, expr, grad) in [
            ("kernels_test_gelu", "0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)))", None),
            ("kernels_test_silu", "x*sigmoid(x)", None),
            ("kernels_test_mish", "x*tanh(softplus(x))", None),
            ("kernels_test_elu", "where(x <= 0, exp(x) - 1, x)", None),
            ("kernels_test_mixed", "log(1 + abs(x)) / (3 + max(x, -1)) - min(x, 1)^2 + (abs(x) + 1)^1.5", None),
            ("kernels_test_straight", "max(x, 0)", Some("where(x <= 0, 0.5, 1)")),
        ] {
            let act = define(name, &Definition { expr: expr.into(), grad: grad.map(Into::into) }).expect("a valid function");
            assert_lone_values_on_every_isa(act, g, &x);
        }
    }

    /// An element-wise function applied to runs of any length (a
    /// convolution hands over blocks of rows): empty, shorter than a step,
    /// around a block's and a batch's sizes, all above 0, all at or below
    /// 0; with and without slopes; on every instruction set.
    #[test]
    fn runs_of_any_length_give_the_lone_values() {
        let act = Activation::SoftplusLinear;
        let lengths = (0..=17).chain([W - 1, W, W + 1, 2 * W, BLOCK - 16, BLOCK - 1, BLOCK, BLOCK + 1, BLOCK + 16, 2 * BLOCK + 5]);
        for len in lengths {
            for pattern in 0..3 {
                let x: Vec<f32> = (0..len)
                    .map(|i| {
                        let v = (((i * 7919) % 201) as f32 - 100.0) / 9.0;
                        [v, v.abs() + 0.5, -v.abs()][pattern]
                    })
                    .collect();
                for isa in Isa::available() {
                    let f = ElementWise::on(isa, act).expect("element-wise");
                    let (mut y, mut d, mut inferred) = (vec![7.0; len], vec![7.0; len], vec![7.0; len]);
                    f.apply(&x, &mut y, Some(&mut d));
                    f.apply(&x, &mut inferred, None);
                    for (i, &v) in x.iter().enumerate() {
                        let (_, value, slope) = curve(act, &[v], 0.0)[0];
                        let bits = (y[i].to_bits(), d[i].to_bits(), inferred[i].to_bits());
                        assert_eq!(bits, (value.to_bits(), slope.to_bits(), value.to_bits()), "{isa:?}, {len} elements, pattern {pattern}: element {i} = {v}");
                    }
                }
            }
        }
    }

    /// The layer-wise gradient (through the minimum) against central differences.
    #[test]
    fn zero_fit_gradient_flows_through_the_minimum() {
        let g = Groups { samples: 2, spatial: 5, channels: 3 };
        let x: Vec<f32> = (0..g.len()).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let w: Vec<f32> = (0..g.len()).map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0).collect();
        let act = Activation::ZeroFitLinear;
        let mut saved = Saved::with_capacity(act, g);
        let mut y = vec![0.0; g.len()];
        forward_train(act, g, &x, &mut y, &mut saved);
        let mut dx = vec![0.0; g.len()];
        backward(act, g, &x, &w, &saved, &mut dx);
        let objective = |x: &[f32]| -> f64 {
            let mut y = vec![0.0; g.len()];
            forward_eval(act, g, x, &mut y, &mut Vec::new());
            y.iter().zip(&w).map(|(a, b)| *a as f64 * *b as f64).sum()
        };
        for i in 0..g.len() {
            let h = 1e-3;
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (objective(&xp) - objective(&xm)) / (2.0 * h as f64);
            assert!((dx[i] as f64 - fd).abs() < 1e-2, "element {i}: {} vs {fd}", dx[i]);
        }
    }
}

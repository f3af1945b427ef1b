//! Where a training step's time goes, for `actlab bench`.
//!
//! The model marks each stage of a step (`stage("conv2 backward")`) and the
//! layers the parts inside it (`part("weight-gradient GEMM", flops)`); while
//! [`record`] runs, the time spent in each is summed, so bench can report
//! GFLOP/s per layer and direction against the machine's measured peak.
//! Outside `record` a mark costs one relaxed atomic load.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ON: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<Vec<Total>> = Mutex::new(Vec::new());

thread_local! {
    static STAGE: Cell<&'static str> = const { Cell::new("other") };
    /// How the open part computed its product (see [`path`]).
    static PATH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Time summed over every mark with the same stage and part.
#[derive(Clone, Debug, PartialEq)]
pub struct Total {
    /// e.g. "conv2 backward".
    pub stage: &'static str,
    /// e.g. "weight-gradient GEMM"; [`WHOLE`] for the whole stage.
    pub part: &'static str,
    pub seconds: f64,
    /// Floating-point operations done (a GEMM's 2·m·n·k; 0 for data movement).
    pub flops: f64,
    /// How the engine computed it: instruction set, block shape, operands
    /// (what [`path`] said inside the part; empty if nothing).
    pub path: String,
}

/// An open mark; its time is added when it is dropped.
pub struct Mark {
    open: Option<(Instant, &'static str, &'static str, f64, &'static str)>,
}

fn open(stage: &'static str, part: &'static str, flops: f64, restore: &'static str) -> Mark {
    Mark { open: ON.load(Ordering::Relaxed).then(|| (Instant::now(), stage, part, flops, restore)) }
}

/// The part name of a whole stage's total.
pub const WHOLE: &str = "whole stage";

/// Mark a stage of the step; the parts inside it are attributed to it.
pub fn stage(name: &'static str) -> Mark {
    if !ON.load(Ordering::Relaxed) {
        return Mark { open: None };
    }
    let outer = STAGE.with(|s| s.replace(name));
    open(name, WHOLE, 0.0, outer)
}

/// Run `f` as the stage `name`.
pub fn stage_of<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    let _mark = stage(name);
    f()
}

/// Mark a part of the current stage that does `flops` floating-point operations.
pub fn part(name: &'static str, flops: f64) -> Mark {
    if !ON.load(Ordering::Relaxed) {
        return Mark { open: None };
    }
    let stage = STAGE.with(Cell::get);
    open(stage, name, flops, stage)
}

/// Say how the open part computes its product (the engine's kernels call
/// this with their instruction set and blocking), so a figure from another
/// machine can be read. Successive calls within one part are joined with
/// "; ". `describe` runs only while [`record`] does.
pub fn path(describe: impl FnOnce() -> String) {
    if ON.load(Ordering::Relaxed) {
        PATH.with(|p| {
            let mut p = p.borrow_mut();
            if !p.is_empty() {
                p.push_str("; ");
            }
            p.push_str(&describe());
        });
    }
}

/// The floating-point operations of a GEMM `[m×k]·[k×n]`.
pub fn gemm_flops(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

impl Drop for Mark {
    fn drop(&mut self) {
        let Some((t, stage, part, flops, restore)) = self.open.take() else { return };
        let seconds = t.elapsed().as_secs_f64();
        STAGE.with(|s| s.set(restore));
        // A part takes the path said inside it; a stage leaves it to its parts.
        let path = if part == WHOLE { String::new() } else { PATH.with(|p| std::mem::take(&mut *p.borrow_mut())) };
        let mut totals = TOTALS.lock().unwrap();
        match totals.iter_mut().find(|x| x.stage == stage && x.part == part) {
            Some(x) => {
                x.seconds += seconds;
                x.flops += flops;
                if x.path.is_empty() {
                    x.path = path;
                }
            }
            None => totals.push(Total { stage, part, seconds, flops, path }),
        }
    }
}

/// Run `f` with marks recorded; return its result and the totals, in the
/// order the stages first ran.
pub fn record<R>(f: impl FnOnce() -> R) -> (R, Vec<Total>) {
    TOTALS.lock().unwrap().clear();
    ON.store(true, Ordering::Relaxed);
    let r = f();
    ON.store(false, Ordering::Relaxed);
    (r, std::mem::take(&mut *TOTALS.lock().unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemms_are_attributed_to_their_stage() {
        let ((), totals) = record(|| {
            let _s = stage("conv1 forward");
            let _g = part("GEMM", gemm_flops(2, 3, 4));
            path(|| "transposed".into());
            path(|| "AVX".into());
        });
        let g = totals.iter().find(|t| t.part == "GEMM").unwrap();
        assert_eq!((g.stage, g.flops, g.path.as_str()), ("conv1 forward", 48.0, "transposed; AVX"));
        assert!(totals.iter().any(|t| t.stage == "conv1 forward" && t.part == WHOLE));
        // Outside `record` nothing is kept.
        drop(stage("x"));
        assert!(record(|| ()).1.is_empty());
    }
}

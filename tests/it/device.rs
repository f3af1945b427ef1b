//! `--device`: without a GPU, asking for CUDA fails with a message that says
//! why and what to do; the CPU path is untouched. (On a GPU machine the
//! same commands are exercised by `scripts/gpu-check.sh`.)

use actlab::engine::device::cuda_devices;

fn actlab(args: &[&str]) -> std::process::Output {
    crate::common::actlab(args, &std::env::temp_dir())
}

#[test]
fn cuda_without_a_gpu_is_a_clear_error_and_auto_falls_back() {
    if cuda_devices().is_ok() {
        eprintln!("a GPU is present: this test is for machines without one (scripts/gpu-check.sh covers GPUs)");
        return;
    }
    for args in [&["--device", "cuda", "device-check"][..], &["train", "--device", "cuda:1", "--act", "relu"], &["bench", "--device", "cuda", "--steps", "1"]] {
        let out = actlab(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains("no NVIDIA driver") && err.contains("--device cpu"), "{args:?}: {err}");
    }
    let out = actlab(&["--device", "auto", "device-check"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("device: cpu"));
    let out = actlab(&["--device", "tpu", "device-check"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("cpu, cuda, cuda:N"));
}

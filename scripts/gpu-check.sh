#!/usr/bin/env bash
# The GPU checks, for a machine with an NVIDIA GPU and driver but no Rust:
# build here with `cargo build --release`, copy the binary and this script
# over, then run
#
#   scripts/gpu-check.sh [BINARY] [OUT_DIR]
#
# from the repository root (it reads studies/). Everything it prints is also
# written to OUT_DIR (default gpu-check-out/). It takes well under a minute.
#
# What it checks today: the NVRTC kernels generated from every activation
# definition (built-ins and the zero-slope study's expressions) against the
# CPU kernels, bit for bit, and a rerun on the GPU, bit for bit.
# Training on the GPU (bench, full studies) is not in this version; see the
# README's "GPU" section for what remains.
set -euo pipefail
BIN=${1:-target/release/actlab}
OUT=${2:-gpu-check-out}
mkdir -p "$OUT"
{
  echo "# actlab GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  "$BIN" --version
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "(nvidia-smi not available)"
} | tee "$OUT/device.txt"
status=0
"$BIN" --device cuda device-check 2>&1 | tee "$OUT/device-check.txt" || status=$?
echo "exit status: $status" | tee -a "$OUT/device-check.txt"
exit $status

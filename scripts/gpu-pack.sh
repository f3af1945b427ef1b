#!/usr/bin/env bash
# Pack what the GPU machine needs (it has no Rust and no network) into
# .device/ (git-ignored, about 40 MB): the release binary, stripped and
# gzipped, and the dataset. Then, with the device tool, carry `.device` and run
#
#   scripts/gpu-check.sh .device/actlab.gz .device/cifar10.tar.gz "$OUT"
#
# usage: scripts/gpu-pack.sh [DATASET]   (default ../shared/datasets/cifar10-jpeg.tar.gz)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/datasets/cifar10-jpeg.tar.gz}
cargo build --release
mkdir -p .device
strip -o .device/actlab target/release/actlab
gzip -9 -f .device/actlab
cp "$DATA" .device/cifar10.tar.gz
du -sh .device/*

#!/usr/bin/env bash
# The GPU checks of the CUDA engine, for a machine with an NVIDIA GPU and
# driver but no Rust (see scripts/gpu-pack.sh). From the repository root:
#
#   scripts/gpu-check.sh BINARY[.gz] DATASET OUT_DIR [SECONDS]
#
# In about SECONDS (default 540) it writes to OUT_DIR (at most 8 files):
#   device.txt      the GPU, driver and binary
#   kernels.txt     `device-check`: activation kernels (and a rerun), GEMM kernels, and
#                   3 runs trained together for 2 epochs, each vs the CPU bit for bit
#   verify.txt      the first epoch of every committed run (recorded on the CPU),
#                   retrained on the GPU, runs of a study together: bytes compared
#   single.txt      one run alone on the GPU, twice: both equal to the CPU's record
#   bench.txt       images/s per function, alone and 12 runs together
#   study.txt       `study run positive-only` at the full protocol, timed
#   positive-only.tar.gz   its artifacts (when it finished)
# Exit status: 0 when every bit-for-bit check held. DEVICE=cpu runs the same
# script on the CPU (to try the script itself on a machine without a GPU).
set -uo pipefail
BIN=$1 DATA=$2 OUT=$3 BUDGET=${4:-540} DEV=${DEVICE:-cuda}
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }
# A share of the time left, at least 5 s.
share() { local x=$(( $(left) / $1 - ${2:-0} )); echo $(( x < 5 ? 5 : x )); }
mkdir -p "$OUT"
if [[ $BIN == *.gz ]]; then gunzip -c "$BIN" > /tmp/actlab && chmod +x /tmp/actlab && BIN=/tmp/actlab; fi
A() { "$BIN" --data-dir /tmp/actlab-data "$@"; }
status=0
{
  echo "# actlab GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  A data --data "$DATA" 2>&1 | tail -3
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

A --device $DEV device-check > "$OUT/kernels.txt" 2>&1 || status=1
tail -8 "$OUT/kernels.txt"

# The committed artifacts were trained on the CPU: the GPU must give their bytes.
for s in positive-only earlier zero-slope; do
  echo "## $s" >> "$OUT/verify.txt"
  ( time timeout $(share 3) "$BIN" --data-dir /tmp/actlab-data --device $DEV verify "$s" --epochs 1 ) >> "$OUT/verify.txt" 2>&1 || status=1
done
grep -E "^##|yes|NO|real|rror" "$OUT/verify.txt"

# One run alone (no batching), twice; both must equal the CPU record's first epoch.
want=$(sed -n 2p artifacts/positive-only/zero_fit_linear/seed-2/history.csv)
for i in 1 2; do
  ( time A --device $DEV train --act zero_fit_linear --seed 2 --epochs 1 --train-limit 8192 --test-limit 2000 --out /tmp/single-$i --force ) >> "$OUT/single.txt" 2>&1 || status=1
  got=$(sed -n 2p /tmp/single-$i/history.csv 2>/dev/null)
  if [[ "$got" == "$want" ]]; then echo "single run $i: identical to the CPU record ($got)"; else echo "single run $i: DIFFERENT: GPU '$got', CPU '$want'"; status=1; fi | tee -a "$OUT/single.txt"
done

timeout $(share 3) "$BIN" --device $DEV bench --steps 100 > "$OUT/bench.txt" 2>&1
cat "$OUT/bench.txt"

# The whole positive-only study at the article's protocol, in the time left.
echo "time left for the study: $(left) s" > "$OUT/study.txt"
( time timeout $(share 1 15) "$BIN" --data-dir /tmp/actlab-data --device $DEV study run positive-only --artifacts /tmp/full ) >> "$OUT/study.txt" 2>&1
"$BIN" study status positive-only --artifacts /tmp/full >> "$OUT/study.txt" 2>&1
tail -8 "$OUT/study.txt"
tar czf "$OUT/positive-only.tar.gz" -C /tmp/full . --exclude='checkpoint*' --exclude='*.lock' 2>/dev/null
echo "gpu-check exit status: $status"
exit $status

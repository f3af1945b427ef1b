#!/usr/bin/env bash
# Start `actlab queue run` in the background at the lowest priority, detached
# from this terminal, logging into the run store. It resumes wherever the
# queue stopped; finished runs are published into ./artifacts as they end.
#
#   scripts/queue-background.sh [BINARY]     (default: target/release/actlab)
#
# The binary is copied into the store first, so rebuilding this checkout
# never changes the program a running queue executes.
#
# Lowest priority means two things on Linux: `nice -n 19`, and — where the
# kernel groups processes by session (autogroup) — the same niceness for the
# queue's own session, or it would still take a full share of the CPU from
# the user's builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release/actlab}
store=${ACTLAB_STORE:-${XDG_DATA_HOME:-$HOME/.local/share}/actlab/store}
mkdir -p "$store/bin"
if pgrep -f "$store/bin/actlab-queue queue run" >/dev/null; then
  echo "a queue is already running from $store/bin (see $store/queue.log)"; exit 1
fi
cp "$bin" "$store/bin/actlab-queue"
setsid nice -n 19 "$store/bin/actlab-queue" queue run --store "$store" >> "$store/queue.log" 2>&1 < /dev/null &
pid=$!
sleep 0.5
if [ -w "/proc/$pid/autogroup" ]; then echo 19 > "/proc/$pid/autogroup" || true; fi
echo "queue running (pid $pid), log: $store/queue.log; status: actlab queue status"

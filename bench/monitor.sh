#!/usr/bin/env bash
# Cost of the per-container eBPF/fanotify guard: getpid, open/close and tar
# extraction inside a guarded cgroup vs an unguarded one, host loops while
# containers are guarded, flatness with 1/10/50 guarded containers, the
# opt-in syscall counter, and event throughput/loss. Needs root.
# Ratios are what matter; see docs/monitoring.md for recorded figures.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
CGO_ENABLED=0 go build -o bench/results/monitorbench ./bench/monitorbench
exec bench/results/monitorbench -json bench/results/monitor.json "$@"

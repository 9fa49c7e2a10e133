#!/usr/bin/env bash
# vordr-snapshotter (proxy; audit, strict cached, strict uncached) vs containerd's
# built-in overlayfs: Prepare / Mounts / mount cost through containerd's
# snapshots API, one private containerd, iterations interleaved (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
exec go run ./bench/snapshotter -runs "${RUNS:-200}" -json bench/results/snapshotter.json "$@"

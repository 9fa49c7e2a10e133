#!/usr/bin/env bash
# vordr import vs ctr image import, and task Create latency with and without
# the verification gate, on a private containerd (needs root and `make build`).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
exec go run ./bench/import -runs "${RUNS:-10}" -size-mb "${SIZE_MB:-64}" -bin bin -json bench/results/import.json "$@"

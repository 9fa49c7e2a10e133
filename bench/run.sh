#!/usr/bin/env bash
# Runs vordr's benchmarks. Each compares against a baseline measured in the
# same run and prints ratios; raw results go to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
echo "== runtime: ctr run --rm latency and shim RSS, vordr vs runc.v2"
go run ./bench/runtime -runs "${RUNS:-30}" -shim-dir bin -json bench/results/runtime.json
for s in bench/*.sh; do
	[ "$s" = bench/run.sh ] && continue
	[ -x "$s" ] || continue
	echo "== $s"
	"$s"
done

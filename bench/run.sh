#!/usr/bin/env bash
# Runs vordr's benchmarks. Each compares against a baseline measured in the
# same run and prints ratios; raw results go to bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
echo "== runtime: ctr run --rm latency and shim RSS, vordr vs runc.v2"
go run ./bench/runtime -runs "${RUNS:-30}" -shim-dir bin -json bench/results/runtime.json
echo "== event pipeline: in-container exec and connect storms, default profile vs runc.v2"
go run ./bench/events -runs "${RUNS_EVENTS:-5}" -shim-dir bin -json bench/results/events.json
echo "== idle: shim wake-ups and CPU per idle container, vordr vs runc.v2"
go run ./bench/idle -shim-dir bin
echo "== exec appraisal: strict with a verified image vs runc.v2 (exec storm, first exec, open storm)"
go run ./bench/appraisal -runs "${RUNS_APPRAISAL:-5}" -shim-dir bin -json bench/results/appraisal.json
echo "== ctp pack vs tar c | sha256sum, parallel vs sequential layer verification"
go run ./bench/pack -layer-mib "${PACK_LAYER_MIB:-256}" -runs "${RUNS_PACK:-5}" -verify-runs "${RUNS_VERIFY:-10}" -json bench/results/pack.json
echo "== vordr serve: GET /api/v1/containers with 100 containers; run through the API vs ctr run --rm"
go run ./bench/serve -runs "${RUNS_SERVE:-20}" -shim-dir bin -json bench/results/serve.json
for s in bench/*.sh; do
	[ "$s" = bench/run.sh ] && continue
	[ -x "$s" ] || continue
	echo "== $s"
	"$s"
done

#!/usr/bin/env bash
# Benchmarks for .ctp bundles (issue 3), all figures from the same run:
#   - verify throughput of a large bundle (default 256 MiB) vs sha256sum of
#     the same bytes (target: ratio >= 0.9)
#   - pack throughput
#   - verify latency of a small signed bundle (CLI wall time and in-process)
# Usage: bench/ctp-verify.sh [SIZE_MIB]   (needs go, sha256sum; no root)
set -euo pipefail

SIZE_MIB=${1:-256}
RUNS=${RUNS:-5}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/vordr" ./cmd/vordr
vordr="$work/vordr"

now() { date +%s.%N; }
# best-of-N wall time of a command, in seconds
best() {
	local best="" t0 t1 d
	for _ in $(seq "$RUNS"); do
		t0=$(now); "$@" >/dev/null; t1=$(now)
		d=$(echo "$t1 - $t0" | bc -l)
		if [[ -z $best ]] || (( $(echo "$d < $best" | bc -l) )); then best=$d; fi
	done
	echo "$best"
}

echo "== building a ${SIZE_MIB} MiB rootfs (8 files of random data)"
mkdir -p "$work/rootfs"
per=$(( SIZE_MIB / 8 ))
for i in $(seq 0 7); do
	head -c "$(( per * 1024 * 1024 ))" /dev/urandom > "$work/rootfs/file$i"
done

"$vordr" ctp keygen --no-encrypt "$work/release" >/dev/null
cat > "$work/policy.toml" <<POL
version = 1
mode = "strict"
required_predicates = ["https://slsa.dev/provenance/v1", "https://spdx.dev/Document"]
[[signers]]
key = "release.pub"
POL

# Warm the page cache so both sides read from memory.
cat "$work"/rootfs/* > /dev/null
pack_s=$(best "$vordr" ctp pack --progress never -o "$work/big.ctp" --name big --created 2025-01-01T00:00:00Z --key "$work/release.key" "$work/rootfs")
bytes=$(stat -c %s "$work/big.ctp")
cat "$work/big.ctp" > /dev/null

verify_s=$(best "$vordr" ctp verify --policy "$work/policy.toml" "$work/big.ctp")
sha_s=$(best sha256sum "$work/big.ctp")

mb() { echo "scale=1; $bytes / 1048576 / $1" | bc -l; }
echo "bundle size:        $bytes bytes"
echo "pack:               $(printf %.3f "$pack_s") s  ($(mb "$pack_s") MiB/s, incl. SBOM sha1+sha256 of every file)"
echo "verify (CLI):       $(printf %.3f "$verify_s") s  ($(mb "$verify_s") MiB/s)"
echo "sha256sum:          $(printf %.3f "$sha_s") s  ($(mb "$sha_s") MiB/s)"
echo "ratio verify/sha256sum throughput: $(echo "scale=3; $sha_s / $verify_s" | bc -l)  (target >= 0.9)"

echo "== small signed bundle"
mkdir -p "$work/small/bin"
printf '#!/bin/sh\necho hi\n' > "$work/small/bin/hello"
"$vordr" ctp pack --progress never -o "$work/small.ctp" --name small --created 2025-01-01T00:00:00Z --key "$work/release.key" "$work/small" >/dev/null
small_s=$(RUNS=20 best "$vordr" ctp verify --policy "$work/policy.toml" "$work/small.ctp")
echo "verify small (CLI wall time, incl. process start): $(echo "scale=2; $small_s * 1000" | bc -l) ms"

echo "== Go benchmarks (in-process, same machine)"
CTP_BENCH_MIB=$SIZE_MIB go test -run XXX -bench 'VerifySmall|VerifyLarge|Pack' -benchtime "${BENCHTIME:-3x}" ./ctp/ | grep -E '^Benchmark|^cpu'

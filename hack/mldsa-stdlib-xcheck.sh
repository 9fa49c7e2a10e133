#!/usr/bin/env bash
# Cross-checks vordr's ML-DSA (cloudflare/circl through ctp/keys and DSSE)
# against the Go standard library's independent implementation
# (crypto/internal/fips140/mldsa, not importable: reached by laying
# hack/mldsa_stdlib_xcheck_test.go.in into it with `go test -overlay`).
#  1. vordr generates ML-DSA-65/87 keys, signs a DSSE envelope's PAE, writes
#     seed, public key, PAE and signature (TestMLDSAStdlibExchange);
#  2. the stdlib derives the public key from the seed and verifies the
#     signature (and refuses it tampered or with a context), then signs the
#     same PAE with its own keys;
#  3. vordr verifies the stdlib's signatures through its SPKI parsing and
#     DSSE verifier.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pkg=$(go env GOROOT)/src/crypto/internal/fips140/mldsa
printf '{"Replace":{"%s/vordr_xcheck_test.go":"%s"}}' "$pkg" "$PWD/hack/mldsa_stdlib_xcheck_test.go.in" > "$dir/overlay.json"
export VORDR_XCHECK_DIR=$dir
go test -count=1 -run TestMLDSAStdlibExchange -v ./ctp/keys | grep -E '^(---|ok|FAIL)|xcheck'
go test -count=1 -overlay "$dir/overlay.json" -run TestVordrXcheck -v crypto/internal/fips140/mldsa | grep -E '^(---|ok|FAIL)|checked'
go test -count=1 -run TestMLDSAStdlibExchange -v ./ctp/keys | grep -E '^(---|ok|FAIL)|xcheck'

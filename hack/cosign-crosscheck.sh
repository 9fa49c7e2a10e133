#!/usr/bin/env bash
# Cross-checks vordr's sigstore-bundle support against the real cosign, both
# ways, offline (no Rekor, no Fulcio: key-based, --tlog-upload=false):
#   1. cosign generate-key-pair + attest-blob --bundle  ->  vordr ctp verify-attestation
#      (and vordr reads cosign's encrypted private key)
#   2. vordr ctp pack/sign + export --sigstore          ->  cosign verify-blob-attestation
# Optional (`make cosign-crosscheck`): building cosign from the module proxy
# takes a few minutes the first time; the binary is cached like the toolchain.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.env"
cache=${VORDR_CACHE:-/var/cache/vordr}
bindir="$cache/bin"
mkdir -p "$bindir"
cosign="$bindir/cosign"
if [ ! -x "$cosign" ] || [ "$(cat "$bindir/.cosign.version" 2>/dev/null)" != "$COSIGN_VERSION" ]; then
	echo "cosign-crosscheck: building cosign $COSIGN_VERSION from the module proxy (cached in $bindir)" >&2
	GOBIN="$bindir" GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN_VERSION"
	echo "$COSIGN_VERSION" >"$bindir/.cosign.version"
fi
vordr=$(cd "$here/.." && pwd)/bin/vordr
[ -x "$vordr" ] || { echo "cosign-crosscheck: build vordr first (make build)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export COSIGN_PASSWORD=crosscheck VORDR_PASSPHRASE=crosscheck COSIGN_YES=true

echo "== 1. cosign signs, vordr verifies"
"$cosign" generate-key-pair >/dev/null 2>&1
printf 'an artifact\n' >artifact
digest=$(sha256sum artifact | cut -d' ' -f1)
cat >predicate.json <<'JSON'
{"builder":{"id":"https://ci.example/builder"},"buildType":"https://example/build"}
JSON
"$cosign" attest-blob --key cosign.key --predicate predicate.json --type slsaprovenance \
	--use-signing-config=false --tlog-upload=false --bundle cosign.sigstore.json artifact >/dev/null
"$vordr" ctp verify-attestation --bundle cosign.sigstore.json --key cosign.pub \
	--digest "sha256:$digest" --type slsaprovenance --insecure-ignore-tlog
if "$vordr" ctp verify-attestation --bundle cosign.sigstore.json --key cosign.pub \
	--digest "sha256:$(printf x | sha256sum | cut -d' ' -f1)" --insecure-ignore-tlog >/dev/null 2>&1; then
	echo "FAIL: vordr accepted cosign's attestation for another digest" >&2
	exit 1
fi
# vordr signs with cosign's encrypted private key.
mkdir rootfs && printf '#!/bin/sh\necho hi\n' >rootfs/hello && chmod +x rootfs/hello
"$vordr" ctp pack -o app.ctp --name app --created 2025-01-01T00:00:00Z --progress never rootfs >/dev/null
"$vordr" ctp sign --key cosign.key app.ctp >/dev/null
"$vordr" ctp verify --key cosign.pub app.ctp >/dev/null
echo "vordr signed with cosign's encrypted key and verified with cosign.pub: OK"

echo "== 2. vordr signs, cosign verifies"
"$vordr" ctp export --sigstore -o exported app.ctp >/dev/null
manifest=$("$vordr" ctp inspect --json app.ctp | sed -n 's/.*"manifestDigest": "sha256:\([0-9a-f]*\)".*/\1/p' | head -1)
n=0
for f in exported/*.sigstore.json; do
	case "$f" in
	*provenance*) type=https://slsa.dev/provenance/v1 ;;
	*spdx*) type=https://spdx.dev/Document ;;
	*) type=custom ;;
	esac
	"$cosign" verify-blob-attestation --bundle "$f" --key cosign.pub --insecure-ignore-tlog \
		--type "$type" --digest "$manifest" --digestAlg sha256 --check-claims=true >/dev/null 2>&1 ||
		{ echo "FAIL: cosign refused $f" >&2; "$cosign" verify-blob-attestation --bundle "$f" --key cosign.pub --insecure-ignore-tlog --type "$type" --digest "$manifest" --digestAlg sha256; exit 1; }
	# and cosign refuses it for another digest
	if "$cosign" verify-blob-attestation --bundle "$f" --key cosign.pub --insecure-ignore-tlog \
		--type "$type" --digest "$(printf x | sha256sum | cut -d' ' -f1)" --digestAlg sha256 >/dev/null 2>&1; then
		echo "FAIL: cosign accepted $f for another digest" >&2
		exit 1
	fi
	n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: nothing exported" >&2; exit 1; }
echo "cosign verified $n bundle(s) exported by vordr: OK"

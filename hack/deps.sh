#!/usr/bin/env bash
# Installs the pinned toolchain vordr needs: containerd, ctr and the runc shim from
# the Go module proxy, runc with seccomp, and Debian packages. Idempotent: each
# piece is skipped when the pinned version is already present, so a second run
# takes seconds. Binaries are cached outside the work tree (VORDR_CACHE) so fresh
# clones on the same machine reuse them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

cache=${VORDR_CACHE:-/var/cache/vordr}
bindir="$cache/bin"
mkdir -p "$bindir"

log() { printf 'deps: %s\n' "$*" >&2; }

install_debs() {
	local missing=()
	for p in $DEB_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "installing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# stamp NAME VERSION: true when $bindir/NAME was built at VERSION.
stamped() { [ -x "$bindir/$1" ] && [ "$(cat "$bindir/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$bindir/.$1.version"; }

install_containerd() {
	local need=()
	for b in containerd ctr containerd-shim-runc-v2; do
		stamped "$b" "$CONTAINERD_VERSION" || need+=("$b")
	done
	[ ${#need[@]} -eq 0 ] && return 0
	log "building containerd $CONTAINERD_VERSION: ${need[*]} (~2 min cold)"
	local pkgs=()
	for b in "${need[@]}"; do pkgs+=("github.com/containerd/containerd/v2/cmd/$b@$CONTAINERD_VERSION"); done
	GOBIN="$bindir" GOFLAGS=-buildvcs=false go install "${pkgs[@]}"
	for b in "${need[@]}"; do stamp "$b" "$CONTAINERD_VERSION"; done
}

install_runc() {
	stamped runc "$RUNC_VERSION" && return 0
	log "building runc $RUNC_VERSION with seccomp"
	GOBIN="$bindir" GOFLAGS=-buildvcs=false go install -tags "seccomp urfave_cli_no_docs" \
		"github.com/opencontainers/runc@$RUNC_VERSION"
	stamp runc "$RUNC_VERSION"
}

# The distribution registry, for the pull-time verification test
# (integration/verifier_test.go: a real transfer-service pull on loopback).
install_registry() {
	stamped registry "$REGISTRY_VERSION" && return 0
	log "building the distribution registry $REGISTRY_VERSION (~3 min cold)"
	GOBIN="$bindir" GOFLAGS=-buildvcs=false go install \
		"github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
	stamp registry "$REGISTRY_VERSION"
}

install_debs
install_containerd
install_runc
install_registry
log "toolchain ready in $bindir"

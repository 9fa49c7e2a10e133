#!/usr/bin/env bash
# The demo: `make demo` builds the binaries, then runs hack/demo on a private containerd.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./hack/demo -bin bin "$@"

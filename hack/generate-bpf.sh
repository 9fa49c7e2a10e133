#!/usr/bin/env bash
# Regenerates bpf/vordr_bpfel.{go,o} from bpf/vordr.c with bpf2go. The output is
# committed so `go build` needs no clang; run this after editing bpf/vordr.c.
# VMLINUX=1 also refreshes bpf/vmlinux.h from the running kernel's BTF.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v "${BPF_CLANG:-clang}" >/dev/null || { echo "generate-bpf: clang not found; run hack/deps.sh or apt-get install -y clang llvm libbpf-dev" >&2; exit 1; }
if [ "${VMLINUX:-0}" = 1 ]; then
	bpftool btf dump file /sys/kernel/btf/vmlinux format c >bpf/vmlinux.h
fi
export BPF2GO_CC="${BPF_CLANG:-clang}"
cd bpf && go generate ./...

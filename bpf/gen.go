// Package bpf holds vordr's eBPF programs (vordr.c) and their bpf2go output.
//
// The generated vordr_bpfel.go and vordr_bpfel.o are committed so that
// `go build` needs no clang; `make generate` (hack/generate-bpf.sh) rebuilds
// them and is byte-reproducible. vmlinux.h comes from this machine kind's
// kernel BTF (bpftool btf dump); the programs are CO-RE, so the object loads
// on other BTF kernels as long as the fields they read exist.
//
// This package only loads nothing by itself: package monitor owns the node-wide
// program set's lifecycle (pinning, locking, attaching).
package bpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -cflags "-O2 -g -Wall -Werror" -type vordr_event -type vordr_container -type vordr_allow_key -type vordr_ring_owner vordr vordr.c -- -I.

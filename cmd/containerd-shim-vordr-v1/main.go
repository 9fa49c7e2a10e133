//go:build linux

// Command containerd-shim-vordr-v1 is the io.containerd.vordr.v1 runtime: the
// runc shim of containerd with vordr's verification gate and eBPF guard hooked
// around the task lifecycle.
package main

import (
	"context"

	"github.com/containerd/containerd/v2/pkg/shim"

	// Hooks run in the order their packages initialise (lexical by path):
	// the verification gate, then the guard.
	_ "github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/gate" // the verification gate hook
	_ "github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/guard"
	"github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/manager"
	_ "github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/task" // registers the task service
)

func main() {
	shim.RunShim(context.Background(), manager.New(manager.RuntimeName))
}

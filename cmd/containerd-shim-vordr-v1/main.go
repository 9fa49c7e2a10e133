//go:build linux

// Command containerd-shim-vordr-v1 is the io.containerd.vordr.v1 runtime: the
// runc shim of containerd with vordr's verification gate and eBPF guard hooked
// around the task lifecycle.
package main

import (
	"context"
	"os"

	"github.com/containerd/containerd/v2/pkg/shim"

	// Hooks run in the order their packages initialise (lexical by path):
	// the verification gate, then the guard.
	_ "github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/gate" // the verification gate hook
	_ "github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/guard"
	"github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/manager"
	_ "github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/task" // registers the task service
	"github.com/vordr-project/vordr/monitor"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == monitor.PidnsSysctlArg {
		// A helper the guard starts inside a container's pid namespace.
		os.Exit(monitor.PidnsSysctlMain(os.Args[2:]))
	}
	shim.RunShim(context.Background(), manager.New(manager.RuntimeName))
}

//go:build linux

package task

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vordr-project/vordr/internal/helper"
)

// Hook is one of vordr's additions to the runc task lifecycle: the
// verification gate, the profile that shapes the spec, the eBPF guard. The
// service calls every hook at each point, in registration order; a hook that
// has nothing to do at a point embeds NopHook.
//
// Calls for one container are serialised; calls for different containers of
// one shim (a Kubernetes pod) may run concurrently.
type Hook interface {
	// Name identifies the hook in logs and errors.
	Name() string
	// PreCreate runs before runc create. It may refuse the task, or change
	// c.Spec; the service writes a changed spec back to the bundle's
	// config.json before runc reads it.
	PreCreate(ctx context.Context, c *Container) error
	// PostCreate runs after runc create and before Create returns: the init
	// process exists, in its cgroup (c.Pid, c.CgroupID are set), but has not
	// run a single instruction of the container's program. An error here
	// fails Create and the container is deleted again.
	PostCreate(ctx context.Context, c *Container) error
	// PreStart runs before the init process is started.
	PreStart(ctx context.Context, c *Container) error
	// PreExec runs before an exec process is started in the container. It may
	// refuse it or change p (the process spec sent by the client).
	PreExec(ctx context.Context, c *Container, execID string, p *specs.Process) error
	// Deleted runs once the container is gone, or when Create failed after this
	// hook's PreCreate succeeded. It must release everything the hook holds for
	// c; it cannot fail the deletion, so it reports problems itself.
	Deleted(ctx context.Context, c *Container)
}

// NopHook implements every Hook method as a no-op, for embedding.
type NopHook struct{}

// PreCreate implements Hook.
func (NopHook) PreCreate(context.Context, *Container) error { return nil }

// PostCreate implements Hook.
func (NopHook) PostCreate(context.Context, *Container) error { return nil }

// PreStart implements Hook.
func (NopHook) PreStart(context.Context, *Container) error { return nil }

// PreExec implements Hook.
func (NopHook) PreExec(context.Context, *Container, string, *specs.Process) error { return nil }

// Deleted implements Hook.
func (NopHook) Deleted(context.Context, *Container) {}

// call runs one hook point and turns a panic into an error for this request
// alone: a bug in vordr must not take down the shim and every task it serves
// (all of a pod's).
func call(ctx context.Context, h Hook, point string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			log.G(ctx).WithFields(log.Fields{"hook": h.Name(), "point": point, "panic": r, "stack": string(debug.Stack())}).
				Error("vordr: a hook panicked; this request fails, the shim and its other tasks go on")
			err = fmt.Errorf("vordr %s hook, %s: internal error (panic: %v), please report it with the shim log: %w", h.Name(), point, r, errdefs.ErrInternal)
		}
	}()
	return f()
}

// RunReaped runs a helper process under the shim's reaper, which collects
// every child of the shim: exec.Cmd's own wait would race it and lose the
// exit status.
func RunReaped(cmd *exec.Cmd) error {
	ec, err := reaper.Default.Start(cmd)
	if err != nil {
		return err
	}
	status, err := reaper.Default.Wait(cmd, ec)
	if err != nil {
		return err
	}
	if status != 0 {
		return fmt.Errorf("exit status %d", status)
	}
	return nil
}

// HelperPath finds vordr-verifier, the shim's helper (internal/helper),
// beside this shim or in the install layout relative to it. Empty when
// absent.
func HelperPath() string {
	self, _ := os.Executable()
	return helper.Find(self)
}

//go:build linux

package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// TestShimVersionAndInfo: `-v` and `-info` (containerd's RuntimeInfo) work
// as for runc.v2, with either kind of runtime options.
func TestShimVersionAndInfo(t *testing.T) {
	out, err := exec.Command(filepath.Join(shimDir, "containerd-shim-vordr-v1"), "-v").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "containerd-shim-vordr-v1") {
		t.Errorf("-v: %v %q", err, out)
	}
	e := newEnv(t, shared, runtimes[0])
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			info, err := e.c.RuntimeInfo(e.ctx, rt.runtime, rt.options(shared))
			if err != nil {
				t.Fatal(err)
			}
			if info.Name != rt.runtime {
				t.Errorf("name %q, want %q", info.Name, rt.runtime)
			}
			if info.Features == nil {
				t.Error("no runc features in the runtime info")
			}
			o, ok := info.Options.(*options.Options)
			if !ok || o.Root != shared.RuncRoot {
				t.Errorf("options %#v, want runc options with Root %s", info.Options, shared.RuncRoot)
			}
		})
	}
}

// TestOOMEvent: a container that exceeds its memory limit is killed and
// containerd publishes /tasks/oom, as with runc.v2.
func TestOOMEvent(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt runtimeCase) {
		e := newEnv(t, shared, rt)
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		evs, errs := e.c.EventService().Subscribe(ctx, `topic=="/tasks/oom"`)
		id := uniqueID(t)
		ctr := e.container(id, []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"},
			oci.WithMemoryLimit(32<<20), oci.WithMemorySwap(32<<20))
		task, err := ctr.NewTask(e.ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		ch, _ := task.Wait(e.ctx)
		if err := task.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		st := <-ch
		if code, _, _ := st.Result(); code != 137 {
			t.Errorf("exit %d, want 137 (OOM kill)", code)
		}
		deadline := time.After(10 * time.Second)
	wait:
		for {
			select {
			case env := <-evs:
				if strings.Contains(string(env.Event.GetValue()), id) {
					break wait
				}
			case err := <-errs:
				t.Fatal(err)
			case <-deadline:
				t.Fatal("no /tasks/oom event")
			}
		}
		if _, err := task.Delete(e.ctx); err != nil {
			t.Fatal(err)
		}
	})
}

//go:build linux

package integration

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRunToCompletion(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt runtimeCase) {
		e := newEnv(t, shared, rt)
		code, out := e.run("echo", "hello from "+rt.name)
		if code != 0 {
			t.Errorf("exit code %d, want 0 (stderr %q)", code, out.stderr.String())
		}
		if got, want := out.stdout.String(), "hello from "+rt.name+"\n"; got != want {
			t.Errorf("stdout %q, want %q", got, want)
		}

		code, out = e.run("sh", "-c", "echo oops >&2; exit 3")
		if code != 3 {
			t.Errorf("exit code %d, want 3", code)
		}
		if got := out.stderr.String(); got != "oops\n" {
			t.Errorf("stderr %q, want %q", got, "oops\n")
		}
	})
}

func TestDetachedExecKillWaitDelete(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt runtimeCase) {
		e := newEnv(t, shared, rt)
		ctr := e.container(uniqueID(t), []string{"sleep", "300"})
		task, err := ctr.NewTask(e.ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		exitCh, err := task.Wait(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		if st, err := task.Status(e.ctx); err != nil || st.Status != containerd.Running {
			t.Fatalf("status %v (%v), want running", st.Status, err)
		}

		// An exec process has its own output and exit code.
		code, out := e.exec(ctr, task, "exec-1", "sh", "-c", "echo in-exec; echo exec-err >&2; exit 5")
		if code != 5 {
			t.Errorf("exec exit code %d, want 5", code)
		}
		if out.stdout.String() != "in-exec\n" || out.stderr.String() != "exec-err\n" {
			t.Errorf("exec output %q / %q", out.stdout.String(), out.stderr.String())
		}

		// Kill, wait, delete.
		if err := task.Kill(e.ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case st := <-exitCh:
			if code, _, _ := st.Result(); code != 128+9 {
				t.Errorf("exit code after SIGKILL %d, want 137", code)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("task did not exit after SIGKILL")
		}
		ds, err := task.Delete(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ds.ExitCode() != 137 {
			t.Errorf("delete reports exit %d, want 137", ds.ExitCode())
		}
	})
}

func TestPauseResumeStatsUpdate(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt runtimeCase) {
		e := newEnv(t, shared, rt)
		ctr := e.container(uniqueID(t), []string{"sleep", "300"})
		task, err := ctr.NewTask(e.ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		if err := task.Pause(e.ctx); err != nil {
			t.Fatal(err)
		}
		if st, _ := task.Status(e.ctx); st.Status != containerd.Paused {
			t.Errorf("status after pause %q", st.Status)
		}
		if err := task.Resume(e.ctx); err != nil {
			t.Fatal(err)
		}
		if st, _ := task.Status(e.ctx); st.Status != containerd.Running {
			t.Errorf("status after resume %q", st.Status)
		}

		usage, _ := memoryLimit(t, e.ctx, task)
		if usage == 0 {
			t.Error("metrics report zero memory usage for a running container")
		}
		const limit = 64 << 20
		lim := int64(limit)
		if err := task.Update(e.ctx, containerd.WithResources(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &lim}})); err != nil {
			t.Fatal(err)
		}
		if _, got := memoryLimit(t, e.ctx, task); got != limit {
			t.Errorf("memory limit after update %d, want %d", got, limit)
		}
	})
}

func TestTTY(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt runtimeCase) {
		e := newEnv(t, shared, rt)
		ctr := e.container(uniqueID(t), []string{"sh", "-c", "tty; [ -t 1 ] && echo is-a-tty"}, oci.WithTTY)
		out := &output{}
		task, err := ctr.NewTask(e.ctx, e.ioCreator(out, cio.WithTerminal))
		if err != nil {
			t.Fatal(err)
		}
		ch, err := task.Wait(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		st := <-ch
		if code, _, _ := st.Result(); code != 0 {
			t.Errorf("exit %d", code)
		}
		task.IO().Wait()
		got := out.stdout.String()
		if !strings.Contains(got, "/dev/pts/") || !strings.Contains(got, "is-a-tty") {
			t.Errorf("tty output %q, want a /dev/pts device and is-a-tty", got)
		}
		if _, err := task.Delete(e.ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTenConcurrentContainers(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt runtimeCase) {
		e := newEnv(t, shared, rt)
		const n = 10
		var wg sync.WaitGroup
		errs := make(chan error, n)
		ctrs := make([]containerd.Container, n)
		for i := range ctrs {
			ctrs[i] = e.container(uniqueID(t), []string{"sh", "-c", "echo ready"})
		}
		for i := range ctrs {
			wg.Add(1)
			go func(ctr containerd.Container) {
				defer wg.Done()
				out := &output{}
				task, err := ctr.NewTask(e.ctx, e.ioCreator(out))
				if err != nil {
					errs <- err
					return
				}
				ch, err := task.Wait(e.ctx)
				if err != nil {
					errs <- err
					return
				}
				if err := task.Start(e.ctx); err != nil {
					errs <- err
					return
				}
				st := <-ch
				task.IO().Wait()
				if code, _, _ := st.Result(); code != 0 || out.stdout.String() != "ready\n" {
					errs <- fmt.Errorf("container %s: exit %d, stdout %q; want 0 and \"ready\\n\"", ctr.ID(), code, out.stdout.String())
					return
				}
				if _, err := task.Delete(e.ctx); err != nil {
					errs <- err
				}
			}(ctrs[i])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestExecMinimalProcessSpec: an exec whose process spec has no
// capabilities (valid OCI; containerd clients send it) runs under every
// profile as under runc.v2; it used to crash the shim under balanced.
func TestExecMinimalProcessSpec(t *testing.T) {
	for _, rt := range append(slices.Clone(runtimes), profileRuntime("balanced"), profileRuntime("strict"), profileRuntime("dev")) {
		t.Run(rt.name, func(t *testing.T) {
			e := newEnv(t, shared, rt)
			ctr := e.container(uniqueID(t), []string{"sleep", "300"})
			task, err := ctr.NewTask(e.ctx, cio.NullIO)
			if err != nil {
				t.Fatal(err)
			}
			if err := task.Start(e.ctx); err != nil {
				t.Fatal(err)
			}
			p := &specs.Process{Args: []string{"sh", "-c", "echo minimal"}, Cwd: "/", Env: []string{"PATH=/bin:/usr/bin"}}
			out := &output{}
			proc, err := task.Exec(e.ctx, "minimal", p, e.ioCreator(out))
			if err != nil {
				t.Fatal(err)
			}
			ch, _ := proc.Wait(e.ctx)
			if err := proc.Start(e.ctx); err != nil {
				t.Fatal(err)
			}
			st := <-ch
			proc.IO().Wait()
			if code, _, _ := st.Result(); code != 0 || out.stdout.String() != "minimal\n" {
				t.Errorf("exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
			}
			proc.Delete(e.ctx)
			// The shim (and with it the container) is still alive.
			if s, err := task.Status(e.ctx); err != nil || s.Status != containerd.Running {
				t.Errorf("after the exec: %v %v, want running", s.Status, err)
			}
			task.Delete(e.ctx, containerd.WithProcessKill)
		})
	}
}

// TestDefaultProfileTransparent: the default profile gives the container
// exactly what runc.v2 gives it: capabilities, no_new_privileges, seccomp
// (here: none, as `ctr run` asks).
func TestDefaultProfileTransparent(t *testing.T) {
	status := []string{"sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"}
	_, _, ref, err := attempt(t, runcV2, status)
	if err != nil {
		t.Fatal(err)
	}
	_, _, got, err := attempt(t, configRuntime("default", ""), status)
	if err != nil {
		t.Fatal(err)
	}
	if ref.stdout.String() == "" || got.stdout.String() != ref.stdout.String() {
		t.Errorf("default profile:\n%s\nrunc.v2:\n%s", got.stdout.String(), ref.stdout.String())
	}
}

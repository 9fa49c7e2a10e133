//go:build linux

package integration

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"github.com/vordr-project/vordr/internal/daemon"
)

// Lifecycle parity with io.containerd.runc.v2 (issue 11): each test runs the
// same steps under runc.v2 and vordr, records what a client observes, and
// requires vordr to observe the same. runc.v2 runs first: its record is the
// reference.

// observation is what a client sees of one run, step by step.
type observation []string

func (o *observation) add(format string, args ...any) { *o = append(*o, fmt.Sprintf(format, args...)) }

// errClass names an error by its containerd kind, which is what clients act
// on (messages differ between runtimes and versions).
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errdefs.IsNotFound(err):
		return "not-found"
	case errdefs.IsFailedPrecondition(err):
		return "failed-precondition"
	case errdefs.IsInvalidArgument(err):
		return "invalid-argument"
	case errdefs.IsAlreadyExists(err):
		return "already-exists"
	case errdefs.IsNotImplemented(err):
		return "not-implemented"
	case errdefs.IsUnavailable(err):
		return "unavailable"
	default:
		return "error"
	}
}

// parityRuntimes are the two runtimes compared, with the client options
// opts gives each (nil: the suite's usual runc options).
func parity(t *testing.T, opts func(d *daemon.Daemon) any, steps func(t *testing.T, e *env) observation) {
	t.Helper()
	if opts == nil {
		opts = runcOptions
	}
	var ref observation
	for _, rt := range []runtimeCase{{"runc.v2", runcRuntime, opts}, {"vordr", vordrRuntime, opts}} {
		var got observation
		t.Run(rt.name, func(t *testing.T) {
			got = steps(t, newEnv(t, shared, rt))
			t.Logf("observed: %s", strings.Join(got, " | "))
		})
		if rt.runtime == runcRuntime {
			ref = got
			continue
		}
		if !t.Failed() && !reflect.DeepEqual(ref, got) {
			t.Errorf("vordr differs from runc.v2:\n runc.v2: %s\n vordr:   %s", strings.Join(ref, " | "), strings.Join(got, " | "))
		}
	}
}

// startTask creates and starts ctr's task (no I/O), with its exit channel.
func startTask(t *testing.T, e *env, ctr containerd.Container) (containerd.Task, <-chan containerd.ExitStatus) {
	t.Helper()
	task, err := ctr.NewTask(e.ctx, cio.NullIO)
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
	return task, ch
}

// waitExit waits for an exit status with a deadline.
func waitExit(t *testing.T, ch <-chan containerd.ExitStatus) uint32 {
	t.Helper()
	select {
	case st := <-ch:
		code, _, _ := st.Result()
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("no exit status within 30s")
		return 0
	}
}

// killingRunc is a runc that kills the container's init the moment `runc
// create` has made it: the shim gets a pid that is already dead (a process
// killed or OOM-killed right after create) and already reaped.
// Deterministic, unlike a race with an outside kill.
func killingRunc(t *testing.T) string {
	t.Helper()
	real, err := daemon.Binary("runc")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "runc-kill-at-create")
	body := `#!/bin/sh
"` + real + `" "$@"
rc=$?
if [ $rc -eq 0 ]; then
	prev=""; pidfile=""; create=0
	for a in "$@"; do
		[ "$a" = create ] && create=1
		[ "$prev" = --pid-file ] && pidfile="$a"
		prev="$a"
	done
	if [ $create = 1 ] && [ -n "$pidfile" ]; then
		pid="$(cat "$pidfile")"
		kill -9 "$pid"
		# Until the shim has reaped it: the pid it reads is gone.
		while [ -e "/proc/$pid" ]; do sleep 0.01; done
	fi
fi
exit $rc
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script
}

// TestParityInitKilledAtCreate: the init process dies between runc create and
// the end of Create. runc.v2 returns the task, which then reports its exit;
// vordr must too (and not fail Create reading a vanished process), and the
// task must never run.
func TestParityInitKilledAtCreate(t *testing.T) {
	runc := killingRunc(t)
	opts := func(d *daemon.Daemon) any { return &options.Options{Root: d.RuncRoot, BinaryName: runc} }
	parity(t, opts, func(t *testing.T, e *env) observation {
		var o observation
		ctr := e.container(uniqueID(t), []string{"sh", "-c", "echo ran > /dev/termination-log; sleep 300"})
		task, err := ctr.NewTask(e.ctx, cio.NullIO)
		o.add("create:%s", errClass(err))
		if err != nil {
			t.Logf("create: %v", err)
			return o
		}
		ch, err := task.Wait(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		err = task.Start(e.ctx)
		o.add("start:%s", errClass(err))
		o.add("exit:%d", waitExit(t, ch))
		st, err := task.Status(e.ctx)
		o.add("status:%s/%s", st.Status, errClass(err))
		ds, err := task.Delete(e.ctx)
		o.add("delete:%s", errClass(err))
		if err == nil {
			o.add("delete-exit:%d", ds.ExitCode())
		}
		return o
	})
}

// TestParityInitKilledBeforeStart: the init process is killed after Create
// returned and before Start.
func TestParityInitKilledBeforeStart(t *testing.T) {
	parity(t, nil, func(t *testing.T, e *env) observation {
		var o observation
		ctr := e.container(uniqueID(t), []string{"sleep", "300"})
		task, err := ctr.NewTask(e.ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := task.Wait(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(int(task.Pid()), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		o.add("exit:%d", waitExit(t, ch))
		err = task.Start(e.ctx)
		o.add("start:%s", errClass(err))
		st, err := task.Status(e.ctx)
		o.add("status:%s/%s", st.Status, errClass(err))
		ds, err := task.Delete(e.ctx)
		o.add("delete:%s", errClass(err))
		if err == nil {
			o.add("delete-exit:%d", ds.ExitCode())
		}
		return o
	})
}

// TestParityDeleteAfterExit: a task whose init already exited is deleted
// (twice: the second finds nothing), and its exit status survives.
func TestParityDeleteAfterExit(t *testing.T) {
	parity(t, nil, func(t *testing.T, e *env) observation {
		var o observation
		ctr := e.container(uniqueID(t), []string{"sh", "-c", "exit 7"})
		task, ch := startTask(t, e, ctr)
		o.add("exit:%d", waitExit(t, ch))
		st, err := task.Status(e.ctx)
		o.add("status:%s/%s/%d", st.Status, errClass(err), st.ExitStatus)
		err = task.Kill(e.ctx, syscall.SIGTERM)
		o.add("kill-exited:%s", errClass(err))
		ds, err := task.Delete(e.ctx)
		o.add("delete:%s/%d", errClass(err), ds.ExitCode())
		_, err = task.Delete(e.ctx)
		o.add("delete-again:%s", errClass(err))
		return o
	})
}

// TestParityExecKillRace: execs started while the task is being killed.
// Which exec wins is a race; what must hold is the same end state, a shim
// that keeps serving, and no exec left running.
func TestParityExecKillRace(t *testing.T) {
	parity(t, nil, func(t *testing.T, e *env) observation {
		var o observation
		ctr := e.container(uniqueID(t), []string{"sleep", "300"})
		task, ch := startTask(t, e, ctr)
		spec, err := ctr.Spec(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 8)
		for i := 0; i < 8; i++ {
			go func(i int) {
				p := *spec.Process
				p.Args = []string{"sleep", "300"}
				proc, err := task.Exec(e.ctx, fmt.Sprintf("race-%d", i), &p, cio.NullIO)
				if err == nil {
					err = proc.Start(e.ctx)
				}
				done <- err
			}(i)
		}
		if err := task.Kill(e.ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil {
			t.Fatal(err)
		}
		o.add("exit:%d", waitExit(t, ch))
		for i := 0; i < 8; i++ {
			<-done // either outcome is allowed; the shim must answer
		}
		ds, err := task.Delete(e.ctx, containerd.WithProcessKill)
		o.add("delete:%s/%d", errClass(err), ds.ExitCode())
		// The shim still serves: a new task in a new container runs.
		code, _ := e.run("true")
		o.add("next-run:%d", code)
		return o
	})
}

// TestParityStdinClosedEarly: a task reading stdin whose stdin is closed at
// once sees EOF and exits; output and status match.
func TestParityStdinClosedEarly(t *testing.T) {
	parity(t, nil, func(t *testing.T, e *env) observation {
		var o observation
		ctr := e.container(uniqueID(t), []string{"sh", "-c", "cat; echo after-eof"})
		out := &output{}
		task, err := ctr.NewTask(e.ctx, e.ioCreator(out, cio.WithStreams(io.MultiReader(), &out.stdout, &out.stderr)))
		if err != nil {
			t.Fatal(err)
		}
		ch, _ := task.Wait(e.ctx)
		if err := task.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		if err := task.CloseIO(e.ctx, containerd.WithStdinCloser); err != nil {
			o.add("closeio:%s", errClass(err))
		}
		o.add("exit:%d", waitExit(t, ch))
		task.IO().Wait()
		o.add("stdout:%q", out.stdout.String())
		_, err = task.Delete(e.ctx)
		o.add("delete:%s", errClass(err))
		return o
	})
}

// TestParityCheckpoint: checkpoint where runc can (it needs criu). Without
// criu both runtimes must fail the same way and leave the task running.
func TestParityCheckpoint(t *testing.T) {
	parity(t, nil, func(t *testing.T, e *env) observation {
		var o observation
		ctr := e.container(uniqueID(t), []string{"sleep", "300"})
		task, err := ctr.NewTask(e.ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		_, err = task.Checkpoint(e.ctx)
		o.add("checkpoint:%s", errClass(err))
		if err != nil {
			t.Logf("checkpoint: %v", err)
		}
		st, err := task.Status(e.ctx)
		o.add("status:%s/%s", st.Status, errClass(err))
		return o
	})
}

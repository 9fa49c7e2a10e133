//go:build linux

package integration

import (
	"context"
	"errors"
	"fmt"
	"github.com/vordr-project/vordr/monitor"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/vordr-project/vordr/internal/daemon"
)

// TestContainerdRestart: containerd restarts while a task runs; afterwards
// the task is still listed, can be exec'd into, killed and deleted.
func TestContainerdRestart(t *testing.T) {
	d, err := startDaemon(context.Background(), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if leaks := d.Stop(); len(leaks) > 0 {
			t.Errorf("leaked: %v", leaks)
		}
	})
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			e := newEnv(t, d, rt)
			id := uniqueID(t)
			ctr := e.container(id, []string{"sleep", "300"})
			task, err := ctr.NewTask(e.ctx, cio.NullIO)
			if err != nil {
				t.Fatal(err)
			}
			if err := task.Start(e.ctx); err != nil {
				t.Fatal(err)
			}
			pid := task.Pid()

			if err := d.Restart(context.Background()); err != nil {
				t.Fatal(err)
			}
			e = newEnv(t, d, rt) // a new client: the old connection died with containerd
			ctr, err = e.c.LoadContainer(e.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			task, err = ctr.Task(e.ctx, nil)
			if err != nil {
				t.Fatalf("task not found after restart: %v", err)
			}
			if task.Pid() != pid {
				t.Errorf("pid after restart %d, want %d", task.Pid(), pid)
			}
			st, err := task.Status(e.ctx)
			if err != nil || st.Status != containerd.Running {
				t.Fatalf("status after restart %v (%v)", st.Status, err)
			}
			tasks, err := e.c.TaskService().List(e.ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			listed := false
			for _, ti := range tasks.Tasks {
				listed = listed || ti.ID == id
			}
			if !listed {
				t.Error("task not listed after restart")
			}

			if _, out := e.exec(ctr, task, "after", "sh", "-c", "echo after-restart"); out.stdout.String() != "after-restart\n" {
				t.Errorf("exec after restart printed %q", out.stdout.String())
			}

			ch, err := task.Wait(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := task.Kill(e.ctx, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-ch
			if _, err := task.Delete(e.ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestShimKilled: the shim dies by SIGKILL; containerd notices, cleans up
// with `shim delete`, and nothing of the container is left: no process, no
// rootfs mount, no runc state, no cgroup.
func TestShimKilled(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, rt runtimeCase) {
		e := newEnv(t, shared, rt)
		id := uniqueID(t)
		ctr := e.container(id, []string{"sleep", "300"})
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
		initPid := int(task.Pid())
		shim := shimPidOf(shared, id)
		if shim == 0 {
			t.Fatal("no shim process found for the container")
		}
		if err := unix.Kill(shim, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case st := <-ch:
			// The shim held the exit status; with it gone, containerd tells
			// waiters UnknownExitStatus (255), for runc.v2 as for vordr.
			if code, _, _ := st.Result(); code != containerd.UnknownExitStatus {
				t.Errorf("exit code after shim kill %d, want %d", code, containerd.UnknownExitStatus)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no exit after the shim was killed")
		}
		if _, err := task.Delete(e.ctx); err != nil && !errdefs.IsNotFound(err) {
			t.Fatal(err)
		}
		bundle := filepath.Join(shared.Dir, "state", "io.containerd.runtime.v2.task", shared.Namespace, id)
		eventually(t, 10*time.Second, func() error {
			if unix.Kill(initPid, 0) == nil {
				if data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", initPid)); len(data) > 0 && string(data[:5]) == "sleep" {
					return fmt.Errorf("container process %d still alive", initPid)
				}
			}
			if m := daemon.MountsUnder(bundle); len(m) > 0 {
				return fmt.Errorf("mounts left: %v", m)
			}
			if _, err := os.Stat(filepath.Join(shared.RuncRoot, shared.Namespace, id)); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("runc state of %s left (%v)", id, err)
			}
			for _, root := range daemon.CgroupRoots() {
				if _, err := os.Stat(filepath.Join(root, shared.Namespace, id)); err == nil {
					return fmt.Errorf("cgroup %s left", filepath.Join(root, shared.Namespace, id))
				}
			}
			return nil
		})
		if rt.runtime == vordrRuntime {
			// The dead shim's guard entry (and its ring buffer) goes with
			// `shim delete`, which runs while the killed shim is a zombie.
			// `shim delete` removes it right after runc's cleanup (a few
			// ms); before the liveness check knew zombies, it stayed until
			// some later attach collected it (10-20 s here).
			eventually(t, 3*time.Second, func() error {
				if n := guardedContainers(t, shim); n != 0 {
					return fmt.Errorf("%d guard entries of the killed shim %d left in the node's BPF maps", n, shim)
				}
				return nil
			})
			// …and the container's event log says the guard was lost,
			// instead of just stopping.
			if !hasEvent(events(t, shared, id), func(e monitor.Event) bool {
				return alertRule(monitor.RuleGuardDegraded)(e) && strings.Contains(e.Alert.Message, "guard lost")
			}) {
				t.Error("no guard-lost record in the event log of the container whose shim was killed")
			}
		}
	})
}

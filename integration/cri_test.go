//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vordr-project/vordr/internal/daemon"
)

// TestCRIPod drives containerd's CRI plugin the way kubelet does: a pod
// sandbox with runtime handler → io.containerd.vordr.v1, two containers,
// ExecSync, stop and remove. The pod's sandbox and containers share one shim.
func TestCRIPod(t *testing.T) {
	dir, err := os.MkdirTemp("", "vordr-cri-")
	if err != nil {
		t.Fatal(err)
	}
	runcRoot := filepath.Join(dir, "runc")
	// The handler without an options table gets no runtime options from CRI;
	// the shim then reads the daemon's VORDR_CONFIG, which keeps runc's state
	// private.
	extra := fmt.Sprintf(`
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = %q
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.vordr]
  runtime_type = "io.containerd.vordr.v1"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.vordr-opts]
  runtime_type = "io.containerd.vordr.v1"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.vordr-opts.options.runc]
  Root = %q
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.vordr-opts.options.events]
  dir = %q
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  Root = %q
`, pauseImage, runcRoot, filepath.Join(dir, "events"), runcRoot)
	d, err := startDaemon(context.Background(), daemon.Options{
		Dir: dir, CRI: true, ExtraConfig: extra,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if leaks := d.Stop(); len(leaks) > 0 {
			t.Errorf("leaked: %v", leaks)
		}
	})
	for _, archive := range []string{busyboxArchive, pauseArchive} {
		if err := importArchive(d, "k8s.io", archive); err != nil {
			t.Fatal(err)
		}
	}

	rs := criRuntime(t, d)

	for _, handler := range []string{"vordr", "vordr-opts", "runc"} {
		t.Run(handler, func(t *testing.T) {
			criPod(t, d, rs, handler)
		})
	}
}

func criPod(t *testing.T, d *daemon.Daemon, rs runtimeapi.RuntimeServiceClient, handler string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logDir := t.TempDir()
	sandboxCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "pod-" + handler, Uid: "uid-" + handler, Namespace: "default"},
		LogDirectory: logDir,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			// Under the daemon's own cgroup parent, so Stop can prove nothing is left.
			CgroupParent: "/" + d.Namespace,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	pod, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxCfg, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	podID := pod.PodSandboxId
	defer func() {
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Errorf("StopPodSandbox: %v", err)
		}
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
		eventually(t, 15*time.Second, func() error {
			if pids := d.ShimPids(); len(pids) > 0 {
				return fmt.Errorf("shims still running after the pod was removed: %v", pids)
			}
			return nil
		})
	}()

	var ids []string
	for _, name := range []string{"one", "two"} {
		c, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
			PodSandboxId: podID,
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: name},
				Image:    &runtimeapi.ImageSpec{Image: testImage},
				Command:  []string{"sleep", "300"},
				LogPath:  name + ".log",
				Linux:    &runtimeapi.LinuxContainerConfig{},
			},
			SandboxConfig: sandboxCfg,
		})
		if err != nil {
			t.Fatalf("CreateContainer %s: %v", name, err)
		}
		if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			t.Fatalf("StartContainer %s: %v", name, err)
		}
		ids = append(ids, c.ContainerId)
	}
	defer func() {
		for _, id := range ids {
			if _, err := rs.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 2}); err != nil {
				t.Errorf("StopContainer: %v", err)
			}
			if _, err := rs.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
				t.Errorf("RemoveContainer: %v", err)
			}
		}
	}()

	for i, id := range ids {
		r, err := rs.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", fmt.Sprintf("echo exec-%d; exit %d", i, i+3)}, Timeout: 20})
		if err != nil {
			t.Fatalf("ExecSync: %v", err)
		}
		if got, want := string(r.Stdout), fmt.Sprintf("exec-%d\n", i); got != want || r.ExitCode != int32(i+3) {
			t.Errorf("ExecSync: stdout %q exit %d, want %q exit %d", got, r.ExitCode, want, i+3)
		}
	}

	// One shim process serves the sandbox and both containers, and it is the
	// runtime the handler names.
	shims := d.ShimPids()
	if len(shims) != 1 {
		t.Fatalf("%d shim processes for one pod, want 1: %v", len(shims), shims)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", shims[0]))
	wantShim := "containerd-shim-vordr-v1"
	if handler == "runc" {
		wantShim = "containerd-shim-runc-v2"
	}
	if filepath.Base(exe) != wantShim {
		t.Errorf("shim binary %s, want %s", exe, wantShim)
	}
	for _, id := range append([]string{podID}, ids...) {
		st, err := rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
		if id == podID {
			continue // the sandbox has no container status; its task is checked via the shim count
		}
		if err != nil {
			t.Fatal(err)
		}
		if st.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("container %s state %v", id, st.Status.State)
		}
		pid := pidFromInfo(st.Info["info"])
		if pid == 0 {
			t.Errorf("no pid in container status info of %s", id)
			continue
		}
		if ppid := parentPid(pid); ppid != shims[0] {
			t.Errorf("container %s (pid %d) has parent %d, want the pod's shim %d", id, pid, ppid, shims[0])
		}
	}
}

func pidFromInfo(info string) int {
	// The verbose info is JSON with a top-level "pid".
	i := strings.Index(info, `"pid":`)
	if i < 0 {
		return 0
	}
	var pid int
	fmt.Sscanf(strings.TrimSpace(info[i+6:]), "%d", &pid)
	return pid
}

func parentPid(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			var p int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &p)
			return p
		}
	}
	return 0
}

// criRuntime is a CRI runtime client of d, as the kubelet has; the
// connection closes when the test ends.
func criRuntime(t *testing.T, d *daemon.Daemon) runtimeapi.RuntimeServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+d.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn)
}

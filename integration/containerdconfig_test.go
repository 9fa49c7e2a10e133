//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/vordr-project/vordr/internal/daemon"
)

// TestContainerdConfigDropIn: `vordr config containerd --write` produces a
// drop-in containerd merges (imports), idempotently; a CRI pod runs under the
// handler it defines; and CRI takes the kubelet's cgroup driver from the
// handler's SystemdCgroup, which the earlier advice (runtime_type
// io.containerd.vordr.v1 with SystemdCgroup in its options) did not: CRI
// then ignores the handler and reports cgroupfs while vordr's runc was told
// systemd. A pod with systemd cgroups cannot run here (no systemd on this
// machine kind): the driver containerd reports is what the test checks.
func TestContainerdConfigDropIn(t *testing.T) {
	bin := vordrBinary(t)
	shimDir, err := filepath.Abs("../bin")
	if err != nil {
		t.Fatal(err)
	}
	// The drop-in and runc's state live outside the daemons' directories,
	// which each Stop removes.
	keep := t.TempDir()
	runcRoot := filepath.Join(keep, "runc")
	dropIn := filepath.Join(keep, "conf.d", "vordr.toml")
	write := func(extra ...string) string {
		args := append([]string{"config", "containerd", "--write", dropIn, "--bin-dir", shimDir, "--runc-root", runcRoot, "--snapshotter=false", "--verifier-dir", ""}, extra...)
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("vordr %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := write(); !strings.Contains(out, "wrote") {
		t.Fatalf("first write: %s", out)
	}
	before, _ := os.ReadFile(dropIn)
	if out := write(); !strings.Contains(out, "is current") {
		t.Errorf("second write of the same fragment: %s (want no change)", out)
	}
	if after, _ := os.ReadFile(dropIn); string(after) != string(before) {
		t.Error("an idempotent write changed the file")
	}

	// The handler under test is the default one, so it is the handler CRI
	// asks first for the cgroup driver; "old" is the earlier advice.
	extra := fmt.Sprintf(`
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = %q
[plugins."io.containerd.cri.v1.runtime".containerd]
  default_runtime_name = %%q
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.old]
  runtime_type = "io.containerd.vordr.v1"
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.old.options]
  SystemdCgroup = true
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.old.options.runc]
  Root = %q
`, pauseImage, runcRoot)
	start := func(defaultHandler string) (*daemon.Daemon, runtimeapi.RuntimeServiceClient) {
		dir, err := os.MkdirTemp("", "vordr-cc-")
		if err != nil {
			t.Fatal(err)
		}
		d, err := startDaemon(context.Background(), daemon.Options{
			Dir: dir, CRI: true, Imports: []string{dropIn}, ExtraConfig: fmt.Sprintf(extra, defaultHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		return d, criRuntime(t, d)
	}
	driver := func(rs runtimeapi.RuntimeServiceClient) runtimeapi.CgroupDriver {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := rs.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
		if err != nil {
			t.Fatalf("RuntimeConfig: %v", err)
		}
		return resp.GetLinux().GetCgroupDriver()
	}

	var d *daemon.Daemon
	stop := func() {
		if d != nil {
			if leaks := d.Stop(); len(leaks) > 0 {
				t.Errorf("leaked: %v", leaks)
			}
			d = nil
		}
	}
	t.Cleanup(stop)
	d, rs := start("vordr")
	for _, archive := range []string{busyboxArchive, pauseArchive} {
		if err := importArchive(d, "k8s.io", archive); err != nil {
			t.Fatal(err)
		}
	}
	if got := driver(rs); got != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("cgroup driver with SystemdCgroup = false: %v, want CGROUPFS", got)
	}
	t.Run("pod", func(t *testing.T) { criPod(t, d, rs, "vordr") })
	stop()

	// SystemdCgroup = true: containerd must tell the kubelet systemd.
	if out := write("--systemd-cgroup"); !strings.Contains(out, "wrote") {
		t.Fatalf("rewrite: %s", out)
	}
	d, rs = start("vordr")
	if got := driver(rs); got != runtimeapi.CgroupDriver_SYSTEMD {
		t.Errorf("cgroup driver with the drop-in's SystemdCgroup = true: %v, want SYSTEMD", got)
	}
	stop()
	// The earlier advice: CRI cannot read SystemdCgroup from a vordr-typed
	// handler and reports cgroupfs, disagreeing with vordr's runc.
	d, rs = start("old")
	if got := driver(rs); got == runtimeapi.CgroupDriver_SYSTEMD {
		t.Logf("note: the vordr-typed handler now reports SYSTEMD too (containerd changed?)")
	} else {
		t.Logf("control: the vordr-typed handler with SystemdCgroup = true reports %v (the mismatch the drop-in avoids)", got)
	}
	stop()

}

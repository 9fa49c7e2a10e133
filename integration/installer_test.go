//go:build linux

package integration

import (
	"bytes"
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

// TestNodeInstaller runs the Kubernetes node installer
// (packaging/kubernetes/vordr-node.sh) against a private containerd the way
// the vordr-deploy DaemonSet runs it on a node, every node path redirected
// into a temporary tree: after install a CRI pod with handler "vordr" runs
// through the kubelet's API; a second install changes nothing and does not
// restart containerd; after uninstall the handler is gone, the binaries and
// the drop-in are removed, /etc/vordr is kept, and containerd's config.toml
// is byte-identical to before.
func TestNodeInstaller(t *testing.T) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	node := t.TempDir()
	src := filepath.Join(node, "src") // what the installer image ships
	for _, b := range []string{"containerd-shim-vordr-v1", "vordr", "vordr-snapshotter", "vordr-verifier"} {
		data, err := os.ReadFile(filepath.Join(repo, "bin", b))
		if err != nil {
			t.Fatalf("%v (run make build)", err)
		}
		os.MkdirAll(filepath.Join(src, "bin"), 0o755)
		if err := os.WriteFile(filepath.Join(src, "bin", b), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-r", filepath.Join(repo, "packaging/etc"), src).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	confd := filepath.Join(node, "etc/containerd/conf.d")
	os.MkdirAll(confd, 0o755)
	restarts := filepath.Join(node, "restarts")
	env := append(os.Environ(),
		"HOST_ROOT=", // run "on the node": every path below is absolute
		"SRC_DIR="+src,
		"BIN_DIR="+filepath.Join(node, "usr/local/bin"),
		"VERIFIER_DIR="+filepath.Join(node, "usr/local/libexec/vordr/image-verifier"),
		"ETC_VORDR="+filepath.Join(node, "etc/vordr"),
		"CONFD="+confd,
		"STATE_DIR="+filepath.Join(node, "var/lib/vordr"),
		"SYSTEMD_CGROUP=false",
		"CONFIG_ARGS=--runc-root "+filepath.Join(node, "runc")+" --snapshotter=false",
		// The test restarts its containerd itself; the script records that
		// it asked to.
		"RESTART_CONTAINERD=echo restart >>"+restarts,
	)
	script := func(verb string) string {
		cmd := exec.Command(filepath.Join(repo, "packaging/kubernetes/vordr-node.sh"), verb)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("vordr-node.sh %s: %v\n%s", verb, err, out)
		}
		return string(out)
	}
	countRestarts := func() int {
		b, _ := os.ReadFile(restarts)
		return strings.Count(string(b), "restart")
	}

	extra := fmt.Sprintf("[plugins.\"io.containerd.cri.v1.images\".pinned_images]\n  sandbox = %q\n", pauseImage)
	dir, err := os.MkdirTemp("", "vordr-node-")
	if err != nil {
		t.Fatal(err)
	}
	d, err := startDaemon(context.Background(), daemon.Options{
		Dir: dir, CRI: true, ExtraConfig: extra,
		Imports: []string{filepath.Join(confd, "*.toml")}, // as containerd 2.x reads conf.d
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if leaks := d.Stop(); len(leaks) > 0 {
			t.Errorf("leaked: %v", leaks)
		}
	})
	mainConfig := filepath.Join(d.Dir, "config.toml")
	before, err := os.ReadFile(mainConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, archive := range []string{busyboxArchive, pauseArchive} {
		if err := importArchive(d, "k8s.io", archive); err != nil {
			t.Fatal(err)
		}
	}
	rs := criRuntime(t, d)
	handlers := func() []string {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := rs.Status(ctx, &runtimeapi.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var hs []string
		for _, h := range st.GetRuntimeHandlers() {
			hs = append(hs, h.GetName())
		}
		return hs
	}
	has := func(hs []string, h string) bool {
		for _, x := range hs {
			if x == h {
				return true
			}
		}
		return false
	}
	if has(handlers(), "vordr") {
		t.Fatal("handler vordr before the install")
	}

	out := script("install")
	if countRestarts() != 1 {
		t.Fatalf("install did not restart containerd once:\n%s", out)
	}
	if err := d.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !has(handlers(), "vordr") {
		t.Fatalf("handler vordr missing after the install:\n%s", out)
	}
	t.Run("pod", func(t *testing.T) { criPod(t, d, rs, "vordr") })

	// Idempotent: nothing changes, no restart.
	if out := script("install"); countRestarts() != 1 || !strings.Contains(out, "is current") {
		t.Errorf("a second install restarted containerd or rewrote the drop-in:\n%s", out)
	}

	script("uninstall")
	if countRestarts() != 2 {
		t.Error("uninstall did not restart containerd")
	}
	if err := d.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	if has(handlers(), "vordr") {
		t.Error("handler vordr still present after the uninstall")
	}
	if after, _ := os.ReadFile(mainConfig); !bytes.Equal(before, after) {
		t.Error("containerd's config.toml changed")
	}
	for _, p := range []string{"usr/local/bin/containerd-shim-vordr-v1", "usr/local/bin/vordr", "usr/local/libexec/vordr/image-verifier/vordr-verifier", "etc/containerd/conf.d/vordr.toml", "var/lib/vordr/installed"} {
		if _, err := os.Stat(filepath.Join(node, p)); !os.IsNotExist(err) {
			t.Errorf("uninstall left %s", p)
		}
	}
	if _, err := os.Stat(filepath.Join(node, "etc/vordr/runtime.toml")); err != nil {
		t.Errorf("uninstall removed the operator's /etc/vordr: %v", err)
	}
}

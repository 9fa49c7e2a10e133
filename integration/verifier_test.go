//go:build linux

package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	transferimage "github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/containerd/containerd/v2/core/transfer/registry"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/plugin"
	"github.com/vordr-project/vordr/plugin/verifier"
)

// startRegistry runs the distribution registry (hack/deps.sh builds it) on a
// loopback port with its storage under a test directory; it is stopped when
// the test ends. It returns host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := daemon.Binary("registry")
	if err != nil {
		t.Fatalf("%v (the pull-time verification test needs the distribution registry v3)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	body := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var logb syncBuffer
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = &logb, &logb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("registry did not exit on SIGTERM")
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("registry log:\n%s", tail(logb.String(), 30))
		}
	})
	eventually(t, 15*time.Second, func() error {
		select {
		case <-exited:
			t.Fatalf("registry exited:\n%s", logb.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("registry /v2/: %s", resp.Status)
		}
		return nil
	})
	return addr
}

func (e *env) transferPush(local, remote string) {
	e.t.Helper()
	reg, err := registry.NewOCIRegistry(e.ctx, remote, registry.WithDefaultScheme("http"))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.c.Transfer(e.ctx, transferimage.NewStore(local), reg); err != nil {
		e.t.Fatalf("push %s to %s through the transfer service: %v", local, remote, err)
	}
}

func (e *env) transferPull(remote string) error {
	e.t.Helper()
	reg, err := registry.NewOCIRegistry(e.ctx, remote, registry.WithDefaultScheme("http"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = e.c.ImageService().Delete(context.WithoutCancel(e.ctx), remote) })
	return e.c.Transfer(e.ctx, reg, transferimage.NewStore(remote, transferimage.WithUnpack(platforms.DefaultSpec(), "overlayfs")))
}

// TestVerifierPull: containerd's transfer service pulls from a registry on
// loopback with vordr-verifier in the bindir image verifier; only images with
// a valid attestation bundle (imported into containerd, or a .ctp in the
// verifier's bundle directory) are pulled.
func TestVerifierPull(t *testing.T) {
	k := testKeys(t)
	regAddr := startRegistry(t)

	bundles := filepath.Join(t.TempDir(), "bundles")
	if err := os.MkdirAll(bundles, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startVerifyingDaemon(t, func(ddir string) string {
		return fmt.Sprintf("policy = %q\ncontainerd_address = %q\nbundle_dirs = [%q]\n", k.policies[policy.Strict], filepath.Join(ddir, "c.sock"), bundles)
	})
	blocked := func(err error, what string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: pulled", what)
		}
		if !strings.Contains(err.Error(), "blocked pull") || !strings.Contains(err.Error(), "vordr (strict)") {
			t.Fatalf("%s: want a pull blocked by vordr-verifier, got %v", what, err)
		}
		t.Logf("%s: %v", what, err)
	}

	// Evidence imported into containerd: `vordr import` of a signed bundle,
	// pushed, pulled back under the registry's name.
	t.Run("ImportedEvidence", func(t *testing.T) {
		e := newEnv(t, d, runtimes[2])
		res, err := plugin.Import(e.ctx, e.c, makeBundle(t, bundleOpts{ref: "docker.io/vordr/pull-signed:1", marker: "pull-signed", sign: true}),
			k.policy(t, policy.Strict), plugin.ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		remote := regAddr + "/vordr/signed:1"
		e.transferPush(res.Image.Name, remote)
		if err := e.transferPull(remote); err != nil {
			t.Fatalf("pull of a verified image: %v\ncontainerd log:\n%s", err, tail(d.Log(), 20))
		}
		img, err := e.c.ImageService().Get(e.ctx, remote)
		if err != nil || img.Target.Digest != res.Image.Target.Digest {
			t.Fatalf("pulled image %+v: %v", img, err)
		}
		if !strings.Contains(d.Log(), "Image verifier allowed pull") {
			t.Errorf("containerd did not log the verifier's judgement")
		}
	})

	// No evidence anywhere: the pull is blocked and nothing of it is
	// recorded.
	t.Run("UnverifiedBlocked", func(t *testing.T) {
		e := newEnv(t, d, runtimes[2])
		local := "docker.io/vordr/pull-plain:1"
		importPlainInto(t, e, local, "pull-plain", "overlayfs")
		remote := regAddr + "/vordr/plain:1"
		e.transferPush(local, remote)
		blocked(e.transferPull(remote), "unsigned image")
		if _, err := e.c.ImageService().Get(e.ctx, remote); !errdefs.IsNotFound(err) {
			t.Fatalf("blocked image recorded: %v", err)
		}
	})

	// A .ctp in the verifier's bundle directory is evidence too: blocked
	// before the bundle is there, pulled after.
	t.Run("BundleDirectory", func(t *testing.T) {
		e := newEnv(t, d, runtimes[2])
		local := "docker.io/vordr/pull-bundle:1"
		img, err := testimage.Busybox(testimage.Options{Name: local, Files: []testimage.File{{Path: "/etc/marker", Content: []byte("pull-bundle\n")}}})
		if err != nil {
			t.Fatal(err)
		}
		var archive bytes.Buffer
		if err := img.WriteArchive(&archive); err != nil {
			t.Fatal(err)
		}
		archivePath := filepath.Join(t.TempDir(), "image.tar")
		if err := os.WriteFile(archivePath, archive.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.Import(e.ctx, &archive); err != nil {
			t.Fatal(err)
		}
		removeImage(e, local)
		remote := regAddr + "/vordr/bundle:1"
		e.transferPush(local, remote)
		blocked(e.transferPull(remote), "before the bundle is in the directory")

		_, err = ctp.Pack(context.Background(), archivePath, filepath.Join(bundles, "bundle.ctp"), ctp.PackOptions{
			Name: "bundle", Version: "1", ImageRef: local, Created: time.Unix(1700000000, 0).UTC(), Signers: []*keys.Signer{k.signer}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.transferPull(remote); err != nil {
			t.Fatalf("pull with the signed bundle in the directory: %v", err)
		}
	})
}

// startVerifyingDaemon starts a private containerd whose image-verifier
// bindir holds vordr-verifier, configured by the TOML body returns (given
// the daemon's directory, for containerd_address), and stops it when the
// test ends.
func startVerifyingDaemon(t *testing.T, body func(ddir string) string) *daemon.Daemon {
	t.Helper()
	work := t.TempDir()
	binDir := filepath.Join(work, "verifiers")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := runGo("build", "-o", filepath.Join(binDir, "vordr-verifier"), "../cmd/vordr-verifier"); err != nil {
		t.Fatalf("build vordr-verifier: %v\n%s", err, out)
	}
	ddir, err := os.MkdirTemp("", "vordr-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(work, "verifier.toml")
	if err := os.WriteFile(cfg, []byte(body(ddir)), 0o644); err != nil {
		_ = os.RemoveAll(ddir)
		t.Fatal(err)
	}
	d, err := startDaemon(context.Background(), daemon.Options{
		Dir:         ddir,
		ExtraConfig: fmt.Sprintf("[plugins.\"io.containerd.image-verifier.v1.bindir\"]\n  bin_dir = %q\n  max_verifiers = 1\n  per_verifier_timeout = \"20s\"\n", binDir),
		Env:         []string{verifier.EnvConfig + "=" + cfg},
	})
	if err != nil {
		_ = os.RemoveAll(ddir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if leaks := d.Stop(); len(leaks) > 0 {
			t.Errorf("containerd had to clean up by force: %v", leaks)
		}
	})
	return d
}

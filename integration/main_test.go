//go:build linux

// Package integration runs vordr against a real containerd, runc and kernel.
// Every test that exercises the runtime runs against io.containerd.vordr.v1
// and, as a control, io.containerd.runc.v2: vordr must behave like runc.v2
// wherever it adds nothing.
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"

	vbpf "github.com/vordr-project/vordr/bpf"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/monitor"
)

const (
	vordrRuntime = "io.containerd.vordr.v1"
	runcRuntime  = "io.containerd.runc.v2"
	testImage    = "docker.io/vordr/busybox:test"
	pauseImage   = "docker.io/vordr/pause:test"
)

var (
	// shimDir holds the freshly built containerd-shim-vordr-v1.
	shimDir string
	// busyboxArchive and pauseArchive are OCI archives of the test images.
	busyboxArchive, pauseArchive string
	// shared is the daemon most tests use; tests that restart containerd or
	// need CRI start their own.
	shared *daemon.Daemon
)

// pinnedSet is where the guard pins its node-wide eBPF programs and maps.
var pinnedSet = filepath.Join("/sys/fs/bpf/vordr", vbpf.Version())

var hostPaths = []string{"/run/containerd", "/etc/containerd", "/var/lib/containerd", "/var/log/vordr", "/var/lib/vordr"}

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Println("integration: SKIP: these tests start containerd, runc and eBPF programs and must run as root (sudo make test)")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	work, err := os.MkdirTemp("", "vordr-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)

	shimDir = filepath.Join(work, "bin")
	if err := buildShim(shimDir); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	if busyboxArchive, pauseArchive, err = buildImages(filepath.Join(work, "images")); err != nil {
		fmt.Fprintln(os.Stderr, "integration: build test images:", err)
		return 1
	}
	ctx := context.Background()
	shared, err = startDaemon(ctx, daemon.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	// Everything must stay private: nothing may appear under the host's
	// containerd directories.
	var before []bool
	for _, p := range hostPaths {
		_, err := os.Stat(p)
		before = append(before, err == nil)
	}
	_, pinnedErr := os.Stat(pinnedSet)
	pinnedBefore := pinnedErr == nil
	code := m.Run()
	if leaks := shared.Stop(); len(leaks) > 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "integration: the shared containerd had to clean up by force: %v\n", leaks)
		code = 1
	}
	// The guard keeps its node-wide program set pinned while idle (the next
	// container starts faster); the tests loaded it, so they unload it, and
	// an entry still in it is a leak.
	if !pinnedBefore {
		if n, err := monitor.Collect(monitor.Options{UnloadWhenIdle: true}); err != nil || n > 0 {
			fmt.Fprintf(os.Stderr, "integration: stale guard entries of dead shims: %d (%v)\n", n, err)
			code = 1
		}
		if _, err := os.Stat(pinnedSet); err == nil {
			fmt.Fprintf(os.Stderr, "integration: the pinned eBPF set %s is still in use after every container was deleted\n", pinnedSet)
			code = 1
		}
	}
	for i, p := range hostPaths {
		if _, err := os.Stat(p); err == nil && !before[i] {
			fmt.Fprintf(os.Stderr, "integration: the tests wrote %s; every path must stay under the private daemon's directory\n", p)
			code = 1
		}
	}
	return code
}

// buildShim compiles the shim under test: tests run the code of this tree, not
// an installed binary.
func buildShim(dir string) error {
	if bin := os.Getenv("VORDR_SHIM"); bin != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.Symlink(bin, filepath.Join(dir, "containerd-shim-vordr-v1"))
	}
	// vordr-verifier goes beside the shim, as an install puts it: the gate
	// runs it to check sigstore evidence.
	for _, name := range []string{"containerd-shim-vordr-v1", "vordr-verifier"} {
		// The Makefile's tags: tests run the binaries make builds.
		cmd := exec.Command("go", "build", "-tags", "grpcnotrace", "-o", filepath.Join(dir, name), "../cmd/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
	}
	return nil
}

// startDaemon starts a private containerd with the shim under test on its
// PATH and the test image imported.
func startDaemon(ctx context.Context, opts daemon.Options) (*daemon.Daemon, error) {
	opts.BinDirs = append([]string{shimDir}, opts.BinDirs...)
	d, err := daemon.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := importArchive(d, d.Namespace, busyboxArchive); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

func importArchive(d *daemon.Daemon, ns, archive string) error {
	ctx, cancel := context.WithTimeout(d.Context(context.Background()), time.Minute)
	defer cancel()
	c, err := d.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	imgs, err := c.Import(withNS(ctx, ns), f)
	if err != nil {
		return fmt.Errorf("import %s: %w", archive, err)
	}
	for _, img := range imgs {
		if err := containerd.NewImage(c, img).Unpack(withNS(ctx, ns), "overlayfs"); err != nil {
			return fmt.Errorf("unpack %s: %w", img.Name, err)
		}
	}
	return nil
}

// runtimeCase is one way to run a container: a runtime name and the options
// the client sends with it.
type runtimeCase struct {
	name    string
	runtime string
	options func(d *daemon.Daemon) any
}

func runcOptions(d *daemon.Daemon) any { return &options.Options{Root: d.RuncRoot} }

// vordrTOML is a vordr runtime config as CRI or `ctr --runtime-config-path`
// send it: runtimeoptions.v1.Options with a TOML body.
func vordrTOML(d *daemon.Daemon) any {
	return &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(""))}
}

var runtimes = []runtimeCase{
	{"vordr", vordrRuntime, runcOptions},
	{"vordr-toml", vordrRuntime, vordrTOML},
	{"runc.v2", runcRuntime, runcOptions},
}

// forEachRuntime runs f once per runtime case against the shared daemon.
func forEachRuntime(t *testing.T, f func(t *testing.T, rt runtimeCase)) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) { f(t, rt) })
	}
}

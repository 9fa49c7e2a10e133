//go:build linux

// Package benchutil holds what the benchmark commands and the demo share.
package benchutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	vbpf "github.com/vordr-project/vordr/bpf"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/monitor"
)

// UnloadGuardSetAfter returns a function that unloads the node's pinned
// guard program set if it was not there when UnloadGuardSetAfter was
// called: a benchmark must leave the node as it found it (vordr shims keep
// the set pinned between containers).
func UnloadGuardSetAfter() func() {
	pinned := filepath.Join("/sys/fs/bpf/vordr", vbpf.Version())
	_, err := os.Stat(pinned)
	before := err == nil
	return func() {
		if !before {
			_, _ = monitor.Collect(monitor.Options{UnloadWhenIdle: true})
			os.Remove(filepath.Dir(pinned)) // only when empty
		}
	}
}

// ImportBusybox imports the busybox test image as ref, with files added,
// into the daemon's namespace and unpacks it into overlayfs.
func ImportBusybox(ctx context.Context, d *daemon.Daemon, ref string, files ...testimage.File) error {
	img, err := testimage.Busybox(testimage.Options{Name: ref, Files: files})
	if err != nil {
		return err
	}
	path := filepath.Join(d.Dir, "busybox.tar")
	if err := img.WriteArchiveFile(path); err != nil {
		return err
	}
	c, err := d.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx = d.Context(ctx)
	imgs, err := c.Import(ctx, f)
	if err != nil {
		return err
	}
	for _, i := range imgs {
		if err := containerd.NewImage(c, i).Unpack(ctx, "overlayfs"); err != nil {
			return err
		}
	}
	return nil
}

// AttackTool builds the test workload (integration/testdata/attack) for the
// image at /bin/vordr-attack: benchmarks run its storms inside containers.
func AttackTool(dir string) (testimage.File, error) {
	tool := filepath.Join(dir, "vordr-attack")
	build := exec.Command("go", "build", "-trimpath", "-o", tool, "./integration/testdata/attack")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if b, err := build.CombinedOutput(); err != nil {
		return testimage.File{}, fmt.Errorf("build the attack workload: %v: %s", err, b)
	}
	bin, err := os.ReadFile(tool)
	if err != nil {
		return testimage.File{}, err
	}
	return testimage.File{Path: "/bin/vordr-attack", Mode: 0o755, Content: bin}, nil
}

// RunScript runs sh -c script in a new container of image under runtime
// (with its options and extra spec options), waits for it (5 minutes at
// most) and returns its output; a non-zero exit is an error. The container
// and its task are removed.
func RunScript(ctx context.Context, client *containerd.Client, image containerd.Image, id, runtime string, opts any, script string, spec ...oci.SpecOpts) (string, error) {
	c, err := client.NewContainer(ctx, id, containerd.WithImage(image), containerd.WithNewSnapshot(id, image),
		containerd.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(image), oci.WithProcessArgs("sh", "-c", script)}, spec...)...),
		containerd.WithRuntime(runtime, opts))
	if err != nil {
		return "", err
	}
	defer c.Delete(ctx, containerd.WithSnapshotCleanup)
	var out strings.Builder
	t, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &out)))
	if err != nil {
		return "", err
	}
	defer t.Delete(ctx, containerd.WithProcessKill) // after a timeout; NotFound otherwise
	ch, err := t.Wait(ctx)
	if err != nil {
		return "", err
	}
	if err := t.Start(ctx); err != nil {
		return "", err
	}
	select {
	case st := <-ch:
		if code := st.ExitCode(); code != 0 {
			t.IO().Wait()
			return out.String(), fmt.Errorf("exit %d: %s", code, out.String())
		}
	case <-time.After(5 * time.Minute):
		return "", fmt.Errorf("timed out")
	}
	t.IO().Wait()
	if _, err := t.Delete(ctx); err != nil {
		return "", err
	}
	return out.String(), nil
}

// PairedRatios divides each run by the control's run of the same round and
// sorts the ratios. Rounds run every variant back to back, so a ratio
// cancels the machine's drift between rounds; their median is the steadiest
// figure a noisy machine gives.
func PairedRatios(runs, control []float64) []float64 {
	rs := make([]float64, 0, len(runs))
	for i := range runs {
		rs = append(rs, runs[i]/control[i])
	}
	sort.Float64s(rs)
	return rs
}

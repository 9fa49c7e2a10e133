//go:build linux

// Package benchutil holds what the benchmark commands and the demo share.
package benchutil

import (
	"context"
	"os"
	"path/filepath"

	containerd "github.com/containerd/containerd/v2/client"

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

// ImportBusybox imports the busybox test image as ref into the daemon's
// namespace and unpacks it into overlayfs.
func ImportBusybox(ctx context.Context, d *daemon.Daemon, ref string) error {
	img, err := testimage.Busybox(testimage.Options{Name: ref})
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

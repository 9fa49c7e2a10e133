//go:build linux

package integration

import (
	"context"
	"os"
	"path/filepath"

	"github.com/vordr-project/vordr/internal/testimage"
)

// buildImages writes the busybox and pause test images as OCI archives.
func buildImages(dir string) (busybox, pause string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	bb, err := testimage.Busybox(testimage.Options{Name: testImage})
	if err != nil {
		return "", "", err
	}
	busybox = filepath.Join(dir, "busybox.tar")
	if err := bb.WriteArchiveFile(busybox); err != nil {
		return "", "", err
	}
	p, err := testimage.Pause(context.Background(), testimage.Options{Name: pauseImage})
	if err != nil {
		return "", "", err
	}
	pause = filepath.Join(dir, "pause.tar")
	if err := p.WriteArchiveFile(pause); err != nil {
		return "", "", err
	}
	return busybox, pause, nil
}

//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/vordr-project/vordr/internal/testimage"
)

// buildImages writes the busybox and pause test images as OCI archives.
func buildImages(dir string) (busybox, pause string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	attack, err := buildAttack(dir)
	if err != nil {
		return "", "", err
	}
	bb, err := testimage.Busybox(testimage.Options{Name: testImage, Files: []testimage.File{{Path: "/bin/vordr-attack", Mode: 0o755, Content: attack}}})
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

// attackBin is the built attack workload on the host (a binary that is in
// the shared test image but in none of the signed gate images).
var attackBin string

// buildAttack compiles testdata/attack, the workload that tries what an
// attacker would from inside a container; it ships in the test image.
func buildAttack(dir string) ([]byte, error) {
	out := filepath.Join(dir, "vordr-attack")
	attackBin = out
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./testdata/attack")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the attack workload: %v\n%s", err, b)
	}
	return os.ReadFile(out)
}

//go:build linux

package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vordr-project/vordr/internal/testimage"
)

// TestRun writes both output forms and refuses bad arguments.
func TestRun(t *testing.T) {
	if _, err := os.Stat(testimage.DefaultBusyboxPath); err != nil {
		t.Fatalf("run `make deps` (hack/deps.sh installs busybox-static): %v", err)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "busybox.tar")
	layout := filepath.Join(dir, "layout")
	if err := run([]string{"busybox", "-name", "example.com/bb:1", "-o", archive, "-layout", layout}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{archive, filepath.Join(layout, "index.json"), filepath.Join(layout, "oci-layout")} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	for _, bad := range [][]string{nil, {"alpine", "-o", archive}, {"busybox"}, {"busybox", "-name", "Bad Name", "-o", archive}} {
		if err := run(bad); err == nil {
			t.Errorf("run(%q) succeeded", bad)
		}
	}
}

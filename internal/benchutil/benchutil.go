//go:build linux

// Package benchutil holds what the benchmark commands and the demo share.
package benchutil

import (
	"os"
	"path/filepath"

	vbpf "github.com/vordr-project/vordr/bpf"
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

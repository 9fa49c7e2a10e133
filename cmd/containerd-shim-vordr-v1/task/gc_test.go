//go:build linux

package task

import (
	"runtime/debug"
	"sync"
	"testing"
)

// Collection is held off from the shim's start to its first Create's answer,
// then back at the shim library's setting; later calls change nothing.
func TestDeferGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	gcOnce = sync.Once{} // a fresh shim's state, so the test can run again
	DeferGC()
	if got := debug.SetGCPercent(-1); got != HeldGCPercent {
		t.Fatalf("after DeferGC: GOGC %d, want %d (held off)", got, HeldGCPercent)
	}
	ResumeGC()
	if got := debug.SetGCPercent(77); got != shimGCPercent {
		t.Fatalf("after ResumeGC: GOGC %d, want %d", got, shimGCPercent)
	}
	ResumeGC() // once only: the operator's or the library's later setting stays
	if got := debug.SetGCPercent(100); got != 77 {
		t.Fatalf("a second ResumeGC changed GOGC to %d", got)
	}
}

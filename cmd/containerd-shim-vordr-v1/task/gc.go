//go:build linux

package task

import (
	"runtime/debug"
	"sync"
	"time"
)

// shimGCPercent is what containerd's shim library sets (pkg/shim
// setRuntime): a small heap for a long-lived process.
const shimGCPercent = 40

// A shim allocates about 2.2 MiB between its start and the end of its first
// Create (plugin set-up, the runtime config, the OCI spec, the guard's
// bookkeeping), 7.4 MiB for the node's first container, whose shim loads the
// eBPF set; with the shim's GOGC of 40 (a 1.6 MiB first heap goal) that was
// 3 collections, or 7, measured at 0.7 ms and 2.5 ms of stop-the-world
// pauses plus their marking, all while containerd waits for Create. So collection waits until a second after the first Create has answered (or a few
// seconds, if none comes), then the shim's setting applies again and the
// guard hands the garbage back to the OS (guard.go: FreeOSMemory).
var gcOnce sync.Once

// HeldGCPercent holds collection off in effect: no cycle starts until the
// heap grows ten thousand times. Not -1 (off): turning collection off waits
// for a cycle already marking to finish (runtime.setGCPercent), measured at
// 0.5 ms at the shim's start, where the heap of package initialisation has
// just started one.
const HeldGCPercent = 1_000_000

// DeferGC holds collection off until ResumeGC.
func DeferGC() {
	debug.SetGCPercent(HeldGCPercent)
	time.AfterFunc(5*time.Second, ResumeGC)
}

// resumeGCDelay is how long after the first Create collection resumes: a
// cycle started as Create answers (the heap is well past the shim's goal
// by then) would compete for the CPU with containerd finishing the Create
// and with the Start that follows, measured at 1.3 ms more between the
// shim's answer and the client's.
const resumeGCDelay = time.Second

var resumeSoonOnce sync.Once

func resumeGCSoon() {
	resumeSoonOnce.Do(func() { time.AfterFunc(resumeGCDelay, ResumeGC) })
}

// ResumeGC restores the shim's collection setting; only the first call does
// anything.
func ResumeGC() {
	gcOnce.Do(func() {
		debug.SetGCPercent(shimGCPercent)
	})
}

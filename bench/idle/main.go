//go:build linux

// Command idle measures what an idle container's shim costs the node, for
// io.containerd.runc.v2 and io.containerd.vordr.v1 (balanced and strict) in
// the same run: context switches (wake-ups) per second and CPU time per
// second of the shim process while the container sleeps.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/vordr-project/vordr/internal/benchutil"
	"github.com/vordr-project/vordr/internal/daemon"
)

const ref = "docker.io/vordr/bench-idle:1"

func main() {
	// The guard polls an idle container's counters every 30 s (a tick
	// costs the Go runtime ~20 context switches); a 30 s window holds one
	// tick, so the rate is the steady state's, not 0 or 2.5 by luck.
	window := flag.Duration("window", 30*time.Second, "measurement window per runtime")
	hostN := flag.Int("host-containers", 50, "idle containers per runtime for the host fork+exec measurement (0: skip)")
	shimDir := flag.String("shim-dir", "bin", "directory holding containerd-shim-vordr-v1")
	flag.Parse()
	if err := run(*window, *shimDir, *hostN); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(window time.Duration, shimDir string, hostN int) error {
	shimDir, _ = filepath.Abs(shimDir)
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Options{BinDirs: []string{shimDir}, LogLevel: "warn"})
	if err != nil {
		return err
	}
	defer benchutil.UnloadGuardSetAfter()() // runs after d.Stop: the shims are gone
	defer d.Stop()
	c, err := d.Client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx = d.Context(ctx)
	if err := benchutil.ImportBusybox(ctx, d, ref); err != nil {
		return err
	}
	image, err := c.GetImage(ctx, ref)
	if err != nil {
		return err
	}
	variants := []struct {
		name, runtime string
		opts          any
	}{
		{"runc.v2", "io.containerd.runc.v2", &options.Options{Root: d.RuncRoot}},
		{"vordr balanced", "io.containerd.vordr.v1", &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(`profile = "balanced"`))}},
		{"vordr strict", "io.containerd.vordr.v1", &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(`profile = "strict"`))}},
	}
	fmt.Printf("idle container (sleep), shim cost over %s\n%-16s %14s %14s\n", window, "runtime", "ctx switches/s", "CPU ms/s")
	for i, v := range variants {
		id := fmt.Sprintf("idle-%d", i)
		ctr, err := c.NewContainer(ctx, id, containerd.WithImage(image), containerd.WithNewSnapshot(id, image),
			containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "3600")), containerd.WithRuntime(v.runtime, v.opts))
		if err != nil {
			return err
		}
		t, err := ctr.NewTask(ctx, cio.NullIO)
		if err != nil {
			return err
		}
		if err := t.Start(ctx); err != nil {
			return err
		}
		shim := parent(int(t.Pid()))
		// Settle: attach, FreeOSMemory, and the guard's fast polls, which
		// back off to the idle interval after 2 quiet seconds.
		time.Sleep(6 * time.Second)
		s0, c0 := switches(shim), cpu(shim)
		time.Sleep(window)
		s1, c1 := switches(shim), cpu(shim)
		sec := window.Seconds()
		fmt.Printf("%-16s %14.1f %14.2f\n", v.name, float64(s1-s0)/sec, float64(c1-c0)*10/sec)
		t.Delete(ctx, containerd.WithProcessKill)
		ctr.Delete(ctx, containerd.WithSnapshotCleanup)
	}
	if hostN > 0 {
		return hostStorm(ctx, c, image, hostN, variants[0].runtime, variants[0].opts, variants[1].runtime, variants[1].opts)
	}
	return nil
}

// hostStorm measures what idle guarded containers cost the rest of the
// node: fork+exec of /bin/true on the host while n idle containers run
// under runc.v2, then while n run under vordr (the node-wide exec, fork and
// exit programs are attached and hold n entries), then under runc.v2 again;
// the ratio is vordr's time over the mean of the two runc.v2 runs.
func hostStorm(ctx context.Context, c *containerd.Client, image containerd.Image, n int, rtA string, optsA any, rtB string, optsB any) error {
	const execs = 2000
	storm := func() float64 {
		best := 0.0
		for r := 0; r < 3; r++ { // the fastest of 3: the least disturbed
			start := time.Now()
			for i := 0; i < execs; i++ {
				if err := exec.Command("/bin/true").Run(); err != nil {
					return 0
				}
			}
			if ms := float64(time.Since(start).Microseconds()) / 1000; best == 0 || ms < best {
				best = ms
			}
		}
		return best
	}
	with := func(tag, rt string, opts any) (float64, error) {
		var cleanup []func()
		defer func() {
			for _, f := range cleanup {
				f()
			}
		}()
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("host-%s-%d", tag, i)
			ctr, err := c.NewContainer(ctx, id, containerd.WithImage(image), containerd.WithNewSnapshot(id, image),
				containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "3600")), containerd.WithRuntime(rt, opts))
			if err != nil {
				return 0, err
			}
			t, err := ctr.NewTask(ctx, cio.NullIO)
			if err != nil {
				ctr.Delete(ctx, containerd.WithSnapshotCleanup)
				return 0, err
			}
			cleanup = append(cleanup, func() {
				t.Delete(ctx, containerd.WithProcessKill)
				ctr.Delete(ctx, containerd.WithSnapshotCleanup)
			})
			if err := t.Start(ctx); err != nil {
				return 0, err
			}
		}
		time.Sleep(3 * time.Second) // settle
		return storm(), nil
	}
	a1, err := with("a1", rtA, optsA)
	if err != nil {
		return err
	}
	b, err := with("b", rtB, optsB)
	if err != nil {
		return err
	}
	a2, err := with("a2", rtA, optsA)
	if err != nil {
		return err
	}
	fmt.Printf("host fork+exec of /bin/true ×%d (fastest of 3) with %d idle containers: runc.v2 %.1f / %.1f ms, vordr %.1f ms; ratio vordr / runc.v2: %.3f\n",
		execs, n, a1, a2, b, b/((a1+a2)/2))
	return nil
}

func parent(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	p, _ := strconv.Atoi(f[1])
	return p
}

// switches sums the context switches of every thread of pid.
func switches(pid int) int64 {
	var n int64
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
				x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += x
			}
			if v, ok := strings.CutPrefix(l, "nonvoluntary_ctxt_switches:"); ok {
				x, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += x
			}
		}
	}
	return n
}

// cpu is utime+stime of pid in clock ticks (10 ms).
func cpu(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

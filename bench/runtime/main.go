//go:build linux

// Command runtime benchmarks io.containerd.vordr.v1 against io.containerd.runc.v2
// in the same run, on a private containerd: `ctr run --rm IMAGE ID /bin/true`
// latency (runs interleaved, so drift and noise hit both alike) and the
// resident memory of one shim serving one container.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vordr-project/vordr/internal/benchutil"
	"github.com/vordr-project/vordr/internal/daemon"
)

const image = "docker.io/vordr/busybox:bench"

type result struct {
	Runtime  string    `json:"runtime"`
	Runs     int       `json:"runs"`
	MinMS    float64   `json:"min_ms"`
	MedianMS float64   `json:"median_ms"`
	P90MS    float64   `json:"p90_ms"`
	ShimRSS  int64     `json:"shim_rss_kib"`
	Samples  []float64 `json:"samples_ms"`
	// PairedRatio is the median, over rounds, of this variant's run
	// divided by the control's run of the same round.
	PairedRatio float64 `json:"paired_ratio,omitempty"`
}

func main() {
	runs := flag.Int("runs", 30, "ctr run --rm iterations per runtime")
	shimDir := flag.String("shim-dir", "bin", "directory holding containerd-shim-vordr-v1")
	out := flag.String("json", "", "also write results as JSON to this file")
	flag.Parse()
	if err := run(*runs, *shimDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(runs int, shimDir, jsonOut string) error {
	shimDir, err := filepath.Abs(shimDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(shimDir, "containerd-shim-vordr-v1")); err != nil {
		return fmt.Errorf("no shim in %s: run `make build` first", shimDir)
	}
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Options{BinDirs: []string{shimDir}, LogLevel: "warn"})
	if err != nil {
		return err
	}
	defer benchutil.UnloadGuardSetAfter()() // runs after d.Stop: the shims are gone
	defer d.Stop()
	if err := benchutil.ImportBusybox(ctx, d, image); err != nil {
		return err
	}
	ctrBin, err := daemon.Binary("ctr")
	if err != nil {
		return err
	}
	// The control, then vordr with the dev profile (guard attached, spec as
	// given: the wrapper's own cost), with the default profile (balanced:
	// spec as given, guard with fanotify observation marks) and with strict.
	devCfg := filepath.Join(d.Dir, "vordr-dev.toml")
	if err := os.WriteFile(devCfg, []byte(d.VordrTOML(`profile = "dev"`)), 0o600); err != nil {
		return err
	}
	strictCfg := filepath.Join(d.Dir, "vordr-strict.toml")
	if err := os.WriteFile(strictCfg, []byte(d.VordrTOML(`profile = "strict"`)), 0o600); err != nil {
		return err
	}
	// ctr run gives runc.v2 no seccomp filter and the default profile
	// leaves the spec as given: both run with the same (no) filter. strict
	// adds a filter and more, for information.
	variants := []variant{
		{"io.containerd.runc.v2", []string{"--runtime", "io.containerd.runc.v2", "--runc-root", d.RuncRoot}},
		{"vordr.v1 (dev)", []string{"--runtime", "io.containerd.vordr.v1", "--runtime-config-path", devCfg}},
		{"vordr.v1 (default)", []string{"--runtime", "io.containerd.vordr.v1"}},
		{"vordr.v1 (strict)", []string{"--runtime", "io.containerd.vordr.v1", "--runtime-config-path", strictCfg}},
	}
	samples := map[string][]float64{}
	n := len(variants)
	// Warm every path (page cache, first shim exec) before measuring.
	for i := 0; i < n*(runs+1); i++ {
		v := variants[i%n]
		start := time.Now()
		args := append([]string{"--address", d.Address, "--namespace", d.Namespace, "run", "--rm", "--fifo-dir", d.FifoDir}, v.args...)
		cmd := exec.Command(ctrBin, append(args, image, fmt.Sprintf("b%d", i), "/bin/true")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ctr run under %s: %v: %s", v.name, err, out)
		}
		if i >= n {
			samples[v.name] = append(samples[v.name], float64(time.Since(start).Microseconds())/1000)
		}
	}
	var results []result
	for i, v := range variants {
		rss, err := shimRSS(ctx, d, fmt.Sprintf("rss-%d", i), v.args)
		if err != nil {
			return err
		}
		s := append([]float64(nil), samples[v.name]...)
		sort.Float64s(s)
		results = append(results, result{Runtime: v.name, Runs: len(s), MinMS: s[0], MedianMS: pct(s, 50), P90MS: pct(s, 90), ShimRSS: rss, Samples: samples[v.name]})
	}
	fmt.Printf("ctr run --rm /bin/true, %d interleaved runs each\n", runs)
	fmt.Printf("%-24s %9s %9s %9s %12s\n", "runtime", "min ms", "median", "p90", "shim RSS KiB")
	for _, r := range results {
		fmt.Printf("%-24s %9.1f %9.1f %9.1f %12d\n", r.Runtime, r.MinMS, r.MedianMS, r.P90MS, r.ShimRSS)
	}
	base := results[0]
	for i, v := range results[1:] {
		paired := benchutil.PairedRatios(v.Samples, base.Samples)
		results[i+1].PairedRatio = pct(paired, 50)
		fmt.Printf("ratio %s / runc.v2: paired median %.3f (IQR %.3f–%.3f); median %.3f, min %.3f, p90 %.3f; shim RSS %+d KiB\n",
			v.Runtime, pct(paired, 50), pct(paired, 25), pct(paired, 75), v.MedianMS/base.MedianMS, v.MinMS/base.MinMS, v.P90MS/base.P90MS, v.ShimRSS-base.ShimRSS)
	}
	if jsonOut != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(jsonOut, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func pct(sorted []float64, p int) float64 {
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[i]
}

type variant struct {
	name string
	args []string // ctr run flags selecting the runtime and its options
}

// shimRSS runs one detached container with the given ctr flags and reads
// its shim's VmRSS.
func shimRSS(ctx context.Context, d *daemon.Daemon, id string, rtArgs []string) (int64, error) {
	ctrBin, _ := daemon.Binary("ctr")
	base := []string{"--address", d.Address, "--namespace", d.Namespace}
	args := append(append(append([]string{}, base...), "run", "-d", "--fifo-dir", d.FifoDir), rtArgs...)
	cmd := exec.Command(ctrBin, append(args, image, id, "sleep", "60")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("ctr run -d: %v: %s", err, out)
	}
	defer func() {
		_ = exec.Command(ctrBin, append(base, "task", "kill", "-s", "SIGKILL", id)...).Run()
		time.Sleep(200 * time.Millisecond)
		_ = exec.Command(ctrBin, append(base, "task", "delete", id)...).Run()
		_ = exec.Command(ctrBin, append(base, "container", "delete", id)...).Run()
	}()
	time.Sleep(2 * time.Second) // steady state: let the shim settle after start
	for _, pid := range d.ShimPids() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !strings.Contains(string(cmdline), "\x00"+id+"\x00") {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				var kib int64
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kib)
				return kib, nil
			}
		}
	}
	return 0, fmt.Errorf("no shim found for %s", id)
}

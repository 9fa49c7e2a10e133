//go:build linux

// Command events benchmarks what the guard's event pipeline costs a busy
// container under the default profile, against io.containerd.runc.v2 in the
// same run on a private containerd: a fork+exec storm (every exec is an
// event) and a loopback connect storm (every connect is an event), inside the
// container. Runs are interleaved; medians and ratios are printed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/containerd/api/types/runc/options"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/vordr-project/vordr/internal/benchutil"
	"github.com/vordr-project/vordr/internal/daemon"
)

const ref = "docker.io/vordr/events-bench:1"

func main() {
	runs := flag.Int("runs", 9, "runs per runtime")
	execs := flag.Int("execs", 2000, "fork+exec per storm")
	conns := flag.Int("connects", 20000, "connects per storm")
	shimDir := flag.String("shim-dir", "bin", "directory holding containerd-shim-vordr-v1")
	out := flag.String("json", "", "also write results as JSON to this file")
	flag.Parse()
	if err := run(*runs, *execs, *conns, *shimDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type row struct {
	Runtime   string  `json:"runtime"`
	ExecMS    float64 `json:"exec_storm_ms"`
	ConnectMS float64 `json:"connect_storm_ms"`
	// Medians of the per-round ratios to runc.v2.
	PairedExec    float64 `json:"paired_exec_ratio,omitempty"`
	PairedConnect float64 `json:"paired_connect_ratio,omitempty"`
}

func run(runs, execs, conns int, shimDir, jsonOut string) error {
	shimDir, err := filepath.Abs(shimDir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Options{BinDirs: []string{shimDir}, LogLevel: "warn"})
	if err != nil {
		return err
	}
	defer benchutil.UnloadGuardSetAfter()()
	defer d.Stop()
	tool, err := benchutil.AttackTool(d.Dir)
	if err != nil {
		return err
	}
	if err := benchutil.ImportBusybox(ctx, d, ref, tool); err != nil {
		return err
	}
	client, err := d.Client()
	if err != nil {
		return err
	}
	defer client.Close()
	ctx = d.Context(ctx)
	image, err := client.GetImage(ctx, ref)
	if err != nil {
		return err
	}
	both := fmt.Sprintf("vordr-attack storm %d /bin/true && vordr-attack connstorm %d", execs, conns)
	variants := []struct {
		name, runtime string
		opts          any
		script        string
	}{
		{"runc.v2", "io.containerd.runc.v2", &options.Options{Root: d.RuncRoot}, both},
		{"vordr (default profile)", "io.containerd.vordr.v1", &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(""))}, both},
		{"vordr dev", "io.containerd.vordr.v1", &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(`profile = "dev"`))}, both},
		// For information: strict denies connects that are not allow-listed.
		{"vordr strict (execs only)", "io.containerd.vordr.v1", &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(`profile = "strict"`))},
			fmt.Sprintf("vordr-attack storm %d /bin/true && echo CONNSTORM -1", execs)},
	}
	type sample struct{ exec, conn float64 }
	res := map[string][]sample{}
	for i := 0; i < (runs+1)*len(variants); i++ {
		v := variants[i%len(variants)]
		out, err := benchutil.RunScript(ctx, client, image, fmt.Sprintf("ev%d", i), v.runtime, v.opts, v.script)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		var s sample
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 2 {
				x, _ := strconv.ParseFloat(f[1], 64)
				switch f[0] {
				case "STORM":
					s.exec = x
				case "CONNSTORM":
					s.conn = x
				}
			}
		}
		if s.exec == 0 || s.conn == 0 {
			return fmt.Errorf("%s: unexpected output %q", v.name, out)
		}
		if i >= len(variants) { // the first round warms caches
			res[v.name] = append(res[v.name], s)
		}
	}
	med := func(ss []sample, f func(sample) float64) float64 {
		xs := make([]float64, len(ss))
		for i, s := range ss {
			xs[i] = f(s)
		}
		sort.Float64s(xs)
		return xs[len(xs)/2]
	}
	fmt.Printf("in-container storms, %d interleaved runs per runtime (medians)\n", runs)
	fmt.Printf("%-26s %16s %18s\n", "runtime", fmt.Sprintf("%d execs ms", execs), fmt.Sprintf("%d connects ms", conns))
	execOf := func(s sample) float64 { return s.exec }
	connOf := func(s sample) float64 { return s.conn }
	var rows []row
	for _, v := range variants {
		r := row{Runtime: v.name, ExecMS: med(res[v.name], execOf), ConnectMS: med(res[v.name], connOf)}
		rows = append(rows, r)
		fmt.Printf("%-26s %16.1f %18.1f\n", r.Runtime, r.ExecMS, r.ConnectMS)
	}
	// The median of the per-round ratios to runc.v2 (benchutil.PairedRatios).
	paired := func(name string, f func(sample) float64) float64 {
		var own, base []float64
		for i, s := range res[name] {
			own, base = append(own, f(s)), append(base, f(res[variants[0].name][i]))
		}
		rs := benchutil.PairedRatios(own, base)
		return rs[len(rs)/2]
	}
	for i, r := range rows[1:] {
		rows[i+1].PairedExec = paired(r.Runtime, execOf)
		if r.ConnectMS < 0 {
			fmt.Printf("ratio %s / runc.v2: exec storm %.3f (paired median %.3f)\n", r.Runtime, r.ExecMS/rows[0].ExecMS, rows[i+1].PairedExec)
			continue
		}
		rows[i+1].PairedConnect = paired(r.Runtime, connOf)
		fmt.Printf("ratio %s / runc.v2: exec storm %.3f (paired median %.3f), connect storm %.3f (paired median %.3f)\n",
			r.Runtime, r.ExecMS/rows[0].ExecMS, rows[i+1].PairedExec, r.ConnectMS/rows[0].ConnectMS, rows[i+1].PairedConnect)
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		return os.WriteFile(jsonOut, b, 0o644)
	}
	return nil
}

//go:build linux

// Command import benchmarks vordr's containerd integration on a private
// containerd, each figure against a baseline measured in the same run:
//
//   - `vordr import app.ctp` (verify, write, unpack, label) against
//     `ctr image import` of the OCI archive the bundle was packed from, runs
//     interleaved, content and snapshots garbage-collected between runs;
//   - task Create latency under io.containerd.vordr.v1 with no policy (the
//     gate only warns) against a strict policy (the gate verifies; every
//     container has its own shim, so every check is uncached), interleaved,
//     with io.containerd.runc.v2 as reference;
//   - the gate's check in-process against the same containerd, uncached and
//     cached.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/log"
	cplugin "github.com/containerd/plugin"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/gate"
	"github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/task"
	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/internal/benchutil"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/internal/testimage"
)

const (
	ctrRef = "docker.io/vordr/bench-ctr:1"
	ctpRef = "docker.io/vordr/bench-ctp:1"
)

type stats struct {
	Name     string    `json:"name"`
	Runs     int       `json:"runs"`
	MinMS    float64   `json:"min_ms"`
	MedianMS float64   `json:"median_ms"`
	P90MS    float64   `json:"p90_ms"`
	Samples  []float64 `json:"samples_ms"`
}

func summarize(name string, s []float64) stats {
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	return stats{Name: name, Runs: len(c), MinMS: c[0], MedianMS: c[len(c)/2], P90MS: c[len(c)*9/10], Samples: s}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func main() {
	runs := flag.Int("runs", 10, "iterations per variant")
	binDir := flag.String("bin", "bin", "directory holding containerd-shim-vordr-v1 and vordr")
	sizeMB := flag.Int("size-mb", 64, "incompressible payload added to the image, MiB")
	out := flag.String("json", "", "also write results as JSON to this file")
	baseline := flag.String("baseline-shim", "", "another containerd-shim-vordr-v1 binary (e.g. built from an earlier commit) measured in the same run as \"vordr @baseline\"")
	flag.Parse()
	_ = log.SetLevel("warn") // the in-process gate logs every check at info
	if err := run(*runs, *binDir, *sizeMB, *out, *baseline); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(runs int, binDir string, sizeMB int, jsonOut, baseline string) error {
	binDir, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	for _, b := range []string{"containerd-shim-vordr-v1", "vordr"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return fmt.Errorf("no %s in %s: run `make build` first", b, binDir)
		}
	}
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Options{BinDirs: []string{binDir}, LogLevel: "warn"})
	if err != nil {
		return err
	}
	defer benchutil.UnloadGuardSetAfter()() // runs after d.Stop: the shims are gone
	defer d.Stop()
	client, err := d.Client()
	if err != nil {
		return err
	}
	defer client.Close()
	ctx = d.Context(ctx)
	work := filepath.Join(d.Dir, "bench")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}

	// The image, its OCI archive, a signed bundle of it, a strict policy.
	payload := make([]byte, sizeMB<<20)
	_, _ = rand.Read(payload)
	img, err := testimage.Busybox(testimage.Options{Name: ctrRef, Files: []testimage.File{{Path: "/payload", Content: payload}}})
	if err != nil {
		return err
	}
	archive := filepath.Join(work, "image.tar")
	if err := img.WriteArchiveFile(archive); err != nil {
		return err
	}
	priv, pub, err := keys.Generate(keys.Ed25519, nil)
	if err != nil {
		return err
	}
	signer, err := keys.ParsePrivateKey(priv, nil)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "release.pub"), pub, 0o644); err != nil {
		return err
	}
	policyPath := filepath.Join(work, "strict.toml")
	if err := os.WriteFile(policyPath, []byte("version = 1\nmode = \"strict\"\n[[signers]]\nkey = \"release.pub\"\n"), 0o644); err != nil {
		return err
	}
	bundle := filepath.Join(work, "app.ctp")
	if _, err := ctp.Pack(ctx, archive, bundle, ctp.PackOptions{Name: "bench", Version: "1", ImageRef: ctpRef, Signers: []*keys.Signer{signer}}); err != nil {
		return err
	}
	fi, _ := os.Stat(bundle)
	ai, _ := os.Stat(archive)
	fmt.Printf("image: busybox + %d MiB; OCI archive %.1f MiB, bundle %.1f MiB\n", sizeMB, float64(ai.Size())/(1<<20), float64(fi.Size())/(1<<20))

	ctrBin, err := daemon.Binary("ctr")
	if err != nil {
		return err
	}
	base := []string{"--address", d.Address, "--namespace", d.Namespace}
	var results []stats

	// 1. import vs ctr image import.
	remove := func(ref string) error {
		if err := client.ImageService().Delete(ctx, ref, images.SynchronousDelete()); err != nil {
			return err
		}
		return syncGC(ctx, client)
	}
	imp := map[string][]float64{}
	for i := 0; i < 2*runs+2; i++ {
		var cmd *exec.Cmd
		name, ref := "ctr image import", ctrRef
		if i%2 == 1 {
			name, ref = "vordr import", ctpRef
			cmd = exec.Command(filepath.Join(binDir, "vordr"), append(append([]string{"import"}, base...), "--progress", "never", "--policy", policyPath, bundle)...)
		} else {
			cmd = exec.Command(ctrBin, append(base, "images", "import", archive)...)
		}
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", name, err, out)
		}
		el := time.Since(start)
		if err := remove(ref); err != nil {
			return err
		}
		if i >= 2 { // the first pair warms the page cache
			imp[name] = append(imp[name], ms(el))
		}
	}
	ci, vi := summarize("ctr image import", imp["ctr image import"]), summarize("vordr import", imp["vordr import"])
	results = append(results, ci, vi)
	fmt.Printf("\nimport (median of %d, interleaved):\n  ctr image import  %8.1f ms\n  vordr import      %8.1f ms\n  ratio             %8.2fx\n", runs, ci.MedianMS, vi.MedianMS, vi.MedianMS/ci.MedianMS)

	// 2. Create latency: the shim's Create under vordr without a policy and
	// with a strict one (every container its own shim: uncached checks).
	if out, err := exec.Command(filepath.Join(binDir, "vordr"), append(append([]string{"import"}, base...), "--progress", "never", "--policy", policyPath, bundle)...).CombinedOutput(); err != nil {
		return fmt.Errorf("vordr import: %v: %s", err, out)
	}
	image, err := client.GetImage(ctx, ctpRef)
	if err != nil {
		return err
	}
	cacheDir := filepath.Join(d.Dir, "gate-cache")
	noPolicy := fmt.Sprintf("[runc]\nRoot = %q\n[events]\ndir = %q\n", d.RuncRoot, filepath.Join(d.Dir, "events"))
	strictOld := fmt.Sprintf("default_policy = \"strict\"\n[policies]\nstrict = %q\n", policyPath) + noPolicy
	strict := strictOld + fmt.Sprintf("[gate]\ncache_dir = %q\n", cacheDir)
	noPolicy += fmt.Sprintf("[gate]\ncache_dir = %q\n", cacheDir)
	variants := []struct {
		name, runtime string
		opts          any
	}{
		{"runc.v2", "io.containerd.runc.v2", nil},
		{"vordr, no policy", "io.containerd.vordr.v1", &runtimeoptions.Options{ConfigBody: []byte(noPolicy)}},
		{"vordr, strict policy", "io.containerd.vordr.v1", &runtimeoptions.Options{ConfigBody: []byte(strict)}},
	}
	if baseline != "" {
		// containerd runs a shim given by absolute path; the baseline's
		// config has no [gate] table (an older shim refuses unknown keys).
		abs, err := filepath.Abs(baseline)
		if err != nil {
			return err
		}
		variants = append(variants, struct {
			name, runtime string
			opts          any
		}{"vordr @baseline, strict", abs, &runtimeoptions.Options{ConfigBody: []byte(strictOld)}})
	}
	create := map[string][]float64{}
	for i := 0; i < len(variants)*(runs+1); i++ {
		v := variants[i%len(variants)]
		id := fmt.Sprintf("create-%d", i)
		opts := []containerd.NewContainerOpts{containerd.WithNewSnapshot(id, image), containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("true"))}
		if v.opts != nil {
			opts = append(opts, containerd.WithRuntime(v.runtime, v.opts))
		} else {
			opts = append(opts, containerd.WithRuntime(v.runtime, runcOpts(d)))
		}
		c, err := client.NewContainer(ctx, id, opts...)
		if err != nil {
			return err
		}
		start := time.Now()
		t, err := c.NewTask(ctx, cio.NullIO)
		el := time.Since(start)
		if err != nil {
			c.Delete(ctx, containerd.WithSnapshotCleanup)
			return fmt.Errorf("create under %s: %w", v.name, err)
		}
		if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil {
			return err
		}
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			return err
		}
		if i >= len(variants) {
			create[v.name] = append(create[v.name], ms(el))
		}
	}
	fmt.Printf("\ntask Create latency (NewTask: shim start + Create, median of %d, interleaved):\n", runs)
	var ref float64
	for i, v := range variants {
		s := summarize("create: "+v.name, create[v.name])
		results = append(results, s)
		if i == 0 {
			ref = s.MedianMS
		}
		fmt.Printf("  %-26s %7.1f ms  (p90 %.1f)  %.3fx runc.v2\n", v.name, s.MedianMS, s.P90MS, s.MedianMS/ref)
	}

	// 3. The gate's check in-process: a container record of the verified
	// image, checked by a fresh gate (uncached) and by a warm one (cached).
	id := "gate-check"
	c, err := client.NewContainer(ctx, id, containerd.WithNewSnapshot(id, image), containerd.WithNewSpec(oci.WithImageConfig(image)))
	if err != nil {
		return err
	}
	defer c.Delete(ctx, containerd.WithSnapshotCleanup)
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	mounts, err := client.SnapshotService(info.Snapshotter).Mounts(ctx, info.SnapshotKey)
	if err != nil {
		return err
	}
	ic := &cplugin.InitContext{Properties: map[string]string{plugins.PropertyGRPCAddress: d.Address}}
	cfg := &config.Config{Policies: map[string]string{"strict": policyPath}, DefaultPolicy: "strict", Source: "bench", Gate: config.Gate{CacheDir: cacheDir}}
	sel, err := cfg.Select(nil)
	if err != nil {
		return err
	}
	tc := &task.Container{ID: id, Namespace: d.Namespace, Spec: &specs.Spec{}, Config: cfg, Selection: sel, Mounts: mount.ToProto(mounts)}
	var cold, uncached, cached []float64
	warm, err := gate.New(ic, nil)
	if err != nil {
		return err
	}
	for i := 0; i < 20*runs; i++ {
		if i < runs {
			g, _ := gate.New(ic, nil)
			g.PreCreate(ctx, tc) // connect and load the policy once, outside the timing
			// A node that never ran this image: no layer manifest, no verdict.
			if err := os.RemoveAll(cacheDir); err != nil {
				return err
			}
			g2, _ := gate.New(ic, nil)
			start := time.Now()
			if err := g2.PreCreate(ctx, tc); err != nil {
				return fmt.Errorf("gate check: %w", err)
			}
			cold = append(cold, ms(time.Since(start)))
			g3, _ := gate.New(ic, nil)
			start = time.Now()
			if err := g3.PreCreate(ctx, tc); err != nil {
				return fmt.Errorf("gate check: %w", err)
			}
			uncached = append(uncached, ms(time.Since(start)))
		}
		start := time.Now()
		if err := warm.PreCreate(ctx, tc); err != nil {
			return fmt.Errorf("gate check: %w", err)
		}
		if i > 0 {
			cached = append(cached, ms(time.Since(start)))
		}
	}
	co := summarize("gate check, first container of the image on the node (layer content derived and every file hashed)", cold)
	results = append(results, co)
	fmt.Printf("\ngate check in-process (median):\n  first on node          %6.2f ms  (p90 %.2f)\n", co.MedianMS, co.P90MS)
	u, ca := summarize("gate check uncached (new gate: connect, policy load, verify, content verdicts from the node cache)", uncached), summarize("gate check cached", cached)
	results = append(results, u, ca)
	fmt.Printf("  uncached (fresh gate)  %6.2f ms  (p90 %.2f)\n  cached                 %6.2f ms  (p90 %.2f)\n", u.MedianMS, u.P90MS, ca.MedianMS, ca.P90MS)

	if jsonOut != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(jsonOut, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func runcOpts(d *daemon.Daemon) any { return &options.Options{Root: d.RuncRoot} }

func syncGC(ctx context.Context, client *containerd.Client) error {
	l, err := client.LeasesService().Create(ctx, leases.WithRandomID())
	if err != nil {
		return err
	}
	return client.LeasesService().Delete(ctx, l, leases.SynchronousDelete)
}

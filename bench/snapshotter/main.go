//go:build linux

// Command snapshotter benchmarks vordr-snapshotter against containerd's
// built-in overlayfs snapshotter, in one private containerd and one run,
// iterations interleaved. The same signed bundle is imported into every
// snapshotter; each iteration prepares a container snapshot on the image's
// top layer, asks for its mounts (as task creation does), mounts and
// unmounts it, and removes it — all through containerd's snapshots API, as
// a client sees it. Variants:
//
//   - overlayfs: containerd's built-in snapshotter (baseline);
//   - vordr-audit: the proxy with no policy (the proxy hop alone);
//   - vordr-strict: strict policy, cached verdicts (the steady state);
//   - vordr-uncached: strict policy, every check re-verifies the stored
//     attestations through containerd (--cache-ttl 0).
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
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/plugin"
)

type stats struct {
	Name     string    `json:"name"`
	Op       string    `json:"op"`
	Runs     int       `json:"runs"`
	MedianUS float64   `json:"median_us"`
	P90US    float64   `json:"p90_us"`
	Ratio    float64   `json:"ratio_vs_overlayfs"`
	Samples  []float64 `json:"samples_us"`
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func median(s []float64) (float64, float64) {
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	return c[len(c)/2], c[len(c)*9/10]
}

type variant struct {
	name, sn, policy string
	cacheTTL         string
	proc             *exec.Cmd
	exited           chan struct{}
}

func main() {
	runs := flag.Int("runs", 200, "iterations per variant")
	out := flag.String("json", "", "also write results as JSON to this file")
	flag.Parse()
	_ = log.SetLevel("warn")
	if err := run(*runs, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(runs int, out string) (retErr error) {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (containerd, overlayfs mounts)")
	}
	work, err := os.MkdirTemp("", "vsb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "vordr-snapshotter")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/vordr-snapshotter").CombinedOutput(); err != nil {
		return fmt.Errorf("build vordr-snapshotter (run from the repository root): %v\n%s", err, out)
	}

	// A signing key, a strict policy trusting it, and a signed bundle.
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
	polFile := filepath.Join(work, "strict.toml")
	if err := os.WriteFile(polFile, []byte(fmt.Sprintf("version = 1\nmode = \"strict\"\nrequired_predicates = [%q]\n[[signers]]\nname = \"release\"\nkey = \"release.pub\"\n", ctp.PredicateSLSA)), 0o644); err != nil {
		return err
	}
	pol, err := policy.Load(polFile)
	if err != nil {
		return err
	}
	img, err := testimage.Busybox(testimage.Options{Name: "docker.io/vordr/bench-sn:1"})
	if err != nil {
		return err
	}
	archive := filepath.Join(work, "image.tar")
	if err := img.WriteArchiveFile(archive); err != nil {
		return err
	}
	bundle := filepath.Join(work, "app.ctp")
	if _, err := ctp.Pack(context.Background(), archive, bundle, ctp.PackOptions{Name: "bench", Version: "1", ImageRef: img.Name,
		Created: time.Unix(1700000000, 0).UTC(), Signers: []*keys.Signer{signer}}); err != nil {
		return err
	}

	ddir, err := os.MkdirTemp("", "vordr-ctrd-")
	if err != nil {
		return err
	}
	ctrdAddr := filepath.Join(ddir, "c.sock")
	variants := []*variant{
		{name: "overlayfs", sn: "overlayfs"},
		{name: "vordr-audit", sn: "vordr-audit"},
		{name: "vordr-strict", sn: "vordr-strict", policy: polFile, cacheTTL: "5m"},
		{name: "vordr-uncached", sn: "vordr-uncached", policy: polFile, cacheTTL: "0"},
	}
	var extra string
	for _, v := range variants[1:] {
		sock := filepath.Join(work, v.name+".sock")
		args := []string{"--root", filepath.Join(work, v.name), "--address", sock, "--containerd-address", ctrdAddr, "--log-level", "warn"}
		if v.policy != "" {
			args = append(args, "--policy", v.policy, "--cache-ttl", v.cacheTTL)
		}
		v.proc = exec.Command(bin, args...)
		v.proc.Stderr = os.Stderr
		v.proc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := v.proc.Start(); err != nil {
			return err
		}
		v.exited = make(chan struct{})
		go func(v *variant) { _ = v.proc.Wait(); close(v.exited) }(v)
		defer func(v *variant) {
			_ = v.proc.Process.Signal(syscall.SIGTERM)
			select {
			case <-v.exited:
			case <-time.After(10 * time.Second):
				_ = v.proc.Process.Kill()
				<-v.exited
			}
		}(v)
		for i := 0; ; i++ {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			if i > 500 {
				return fmt.Errorf("%s did not start", v.name)
			}
			time.Sleep(10 * time.Millisecond)
		}
		extra += fmt.Sprintf("[proxy_plugins.%q]\n  type = \"snapshot\"\n  address = %q\n", v.sn, sock)
	}
	d, err := daemon.Start(context.Background(), daemon.Options{Dir: ddir, ExtraConfig: extra, LogLevel: "warn"})
	if err != nil {
		return err
	}
	defer func() {
		if leaks := d.Stop(); len(leaks) > 0 && retErr == nil {
			retErr = fmt.Errorf("containerd had to clean up by force: %v", leaks)
		}
	}()
	client, err := d.Client()
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := d.Context(context.Background())

	var chain string
	for _, v := range variants {
		res, err := plugin.Import(ctx, client, bundle, pol, plugin.ImportOptions{Name: "docker.io/vordr/bench-sn-" + v.name + ":1", Snapshotter: v.sn})
		if err != nil {
			return fmt.Errorf("import into %s: %w", v.sn, err)
		}
		chain = res.ChainID.String()
	}

	// Snapshots without a lease are garbage the collector may take at once.
	lease, err := client.LeasesService().Create(ctx, leases.WithRandomID(), leases.WithExpiration(time.Hour))
	if err != nil {
		return err
	}
	defer client.LeasesService().Delete(context.WithoutCancel(ctx), lease) //nolint:errcheck
	ctx = leases.WithLease(ctx, lease.ID)

	mnt := filepath.Join(work, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	type sample struct{ prepare, mounts, mountUnmount, total []float64 }
	samples := map[string]*sample{}
	for _, v := range variants {
		samples[v.name] = &sample{}
	}
	iter := func(v *variant, i int, record bool) error {
		sn := client.SnapshotService(v.sn)
		key := fmt.Sprintf("bench-%s-%d", v.name, i)
		t0 := time.Now()
		if _, err := sn.Prepare(ctx, key, chain); err != nil {
			return fmt.Errorf("%s: prepare: %w", v.name, err)
		}
		t1 := time.Now()
		m, err := sn.Mounts(ctx, key)
		if err != nil {
			return fmt.Errorf("%s: mounts: %w", v.name, err)
		}
		t2 := time.Now()
		if err := mount.All(m, mnt); err != nil {
			return fmt.Errorf("%s: mount: %w", v.name, err)
		}
		if err := mount.UnmountAll(mnt, 0); err != nil {
			return fmt.Errorf("%s: unmount: %w", v.name, err)
		}
		t3 := time.Now()
		if err := sn.Remove(ctx, key); err != nil {
			return fmt.Errorf("%s: remove: %w", v.name, err)
		}
		if record {
			s := samples[v.name]
			s.prepare = append(s.prepare, us(t1.Sub(t0)))
			s.mounts = append(s.mounts, us(t2.Sub(t1)))
			s.mountUnmount = append(s.mountUnmount, us(t3.Sub(t2)))
			s.total = append(s.total, us(t3.Sub(t0)))
		}
		return nil
	}
	// Warm up (first connection, first verification), then interleave.
	for _, v := range variants {
		if err := iter(v, -1, false); err != nil {
			return err
		}
	}
	for i := 0; i < runs; i++ {
		for _, v := range variants {
			if err := iter(v, i, true); err != nil {
				return err
			}
		}
	}

	var all []stats
	base := map[string]float64{}
	fmt.Printf("%-15s %-24s %10s %10s %8s\n", "snapshotter", "op (through containerd)", "median µs", "p90 µs", "ratio")
	for _, op := range []string{"prepare", "mounts", "prepare+mounts", "mount+unmount", "total"} {
		for _, v := range variants {
			s := samples[v.name]
			var xs []float64
			switch op {
			case "prepare":
				xs = s.prepare
			case "mounts":
				xs = s.mounts
			case "prepare+mounts":
				for i := range s.prepare {
					xs = append(xs, s.prepare[i]+s.mounts[i])
				}
			case "mount+unmount":
				xs = s.mountUnmount
			case "total":
				xs = s.total
			}
			med, p90 := median(xs)
			if v.name == "overlayfs" {
				base[op] = med
			}
			st := stats{Name: v.name, Op: op, Runs: len(xs), MedianUS: med, P90US: p90, Ratio: med / base[op], Samples: xs}
			all = append(all, st)
			fmt.Printf("%-15s %-24s %10.1f %10.1f %7.2fx\n", v.name, op, med, p90, st.Ratio)
		}
	}
	if out != "" {
		data, err := json.MarshalIndent(all, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

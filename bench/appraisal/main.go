//go:build linux

// Command appraisal benchmarks strict's exec appraisal against
// io.containerd.runc.v2 in the same run, on a private containerd, with a
// signed image imported through vordr's verified import:
//
//   - exec storm: 2,000 fork+exec of /bin/true (a busybox applet) inside the
//     container — every exec is a fanotify permission round trip to the
//     shim, answered from the verdict cache after the first;
//   - first exec of a file that was never appraised (hashed on the spot),
//     against its second exec (cached), per MiB of file;
//   - open/close storm: 20,000 open+close of /etc/passwd (no permission
//     event: the guard marks exec on mounts and opens only on sensitive
//     files).
//
// Runs are interleaved so drift and noise hit both runtimes alike; medians
// and ratios are printed.
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
	"strconv"
	"strings"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/benchutil"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/plugin"
)

const ref = "docker.io/vordr/bench-appraisal:1"

func main() {
	runs := flag.Int("runs", 5, "runs per runtime")
	shimDir := flag.String("shim-dir", "bin", "directory holding containerd-shim-vordr-v1")
	out := flag.String("json", "", "also write results as JSON to this file")
	flag.Parse()
	if err := run(*runs, *shimDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type sample struct {
	storm, open    float64 // ms
	first, second  float64 // µs
	firstFileBytes int
}

func run(runs int, shimDir, jsonOut string) error {
	shimDir, err := filepath.Abs(shimDir)
	if err != nil {
		return err
	}
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Options{BinDirs: []string{shimDir}, LogLevel: "warn"})
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

	// The workload and 2×runs distinct 1 MiB executables (one never-run file
	// per run and runtime): the workload's bytes plus random padding.
	tool := filepath.Join(work, "vordr-attack")
	build := exec.Command("go", "build", "-trimpath", "-o", tool, "./integration/testdata/attack")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build workload: %v: %s", err, b)
	}
	bin, err := os.ReadFile(tool)
	if err != nil {
		return err
	}
	files := []testimage.File{{Path: "/bin/vordr-attack", Mode: 0o755, Content: bin}}
	const mib = 1 << 20
	size := len(bin)
	if size < mib {
		size = mib
	}
	for i := 0; i < 5*runs; i++ {
		c := make([]byte, size+4096)
		copy(c, bin)
		_, _ = rand.Read(c[len(bin):])
		files = append(files, testimage.File{Path: fmt.Sprintf("/bin/fresh%d", i), Mode: 0o755, Content: c})
	}
	img, err := testimage.Busybox(testimage.Options{Name: ref, Files: files})
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
	os.WriteFile(filepath.Join(work, "release.pub"), pub, 0o644)
	polPath := filepath.Join(work, "strict.toml")
	os.WriteFile(polPath, []byte("version = 1\nmode = \"strict\"\n[[signers]]\nkey = \"release.pub\"\n"), 0o644)
	bundle := filepath.Join(work, "app.ctp")
	if _, err := ctp.Pack(ctx, archive, bundle, ctp.PackOptions{Name: "bench", Version: "1", ImageRef: ref, Signers: []*keys.Signer{signer}}); err != nil {
		return err
	}
	pol, err := policy.Load(polPath)
	if err != nil {
		return err
	}
	if _, err := plugin.Import(ctx, client, bundle, pol, plugin.ImportOptions{}); err != nil {
		return err
	}
	image, err := client.GetImage(ctx, ref)
	if err != nil {
		return err
	}
	strict := fmt.Sprintf("profile = \"strict\"\ndefault_policy = \"strict\"\n[policies]\nstrict = %q\n", polPath) + d.VordrTOML("")
	// runc.v2 as ctr runs it (no seccomp filter) and as CRI, nerdctl and
	// docker run it (containerd's default seccomp profile): strict always
	// has a filter, which every syscall pays for.
	variants := []struct {
		name, runtime string
		opts          any
		spec          []oci.SpecOpts
	}{
		{"runc.v2", "io.containerd.runc.v2", &options.Options{Root: d.RuncRoot}, nil},
		{"runc.v2 + default seccomp", "io.containerd.runc.v2", &options.Options{Root: d.RuncRoot}, []oci.SpecOpts{seccomp.WithDefaultProfile()}},
		{"vordr strict (appraisal)", "io.containerd.vordr.v1", &runtimeoptions.Options{ConfigBody: []byte(strict)}, nil},
		// The same guard without a verified image: fanotify exec marks with
		// the ctime rule; the difference to the row above is appraisal's.
		{"vordr strict, no policy", "io.containerd.vordr.v1", &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(`profile = "strict"`))}, nil},
		{"vordr balanced", "io.containerd.vordr.v1", &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(`profile = "balanced"`))}, nil},
	}
	res := map[string][]sample{}
	fresh := 0
	for i := 0; i < runs*len(variants); i++ {
		v := variants[i%len(variants)]
		script := fmt.Sprintf("vordr-attack storm 2000 /bin/true && vordr-attack firstexec /bin/fresh%d && vordr-attack openstorm 20000 /etc/passwd", fresh)
		fresh++
		out, err := benchutil.RunScript(ctx, client, image, fmt.Sprintf("a%d", i), v.runtime, v.opts, script, v.spec...)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		s, err := parse(out)
		if err != nil {
			return fmt.Errorf("%s: %w: %q", v.name, err, out)
		}
		s.firstFileBytes = size + 4096
		res[v.name] = append(res[v.name], s)
	}
	base := med(res[variants[0].name])
	fmt.Printf("exec appraisal, %d interleaved runs per runtime (medians)\n", runs)
	fmt.Printf("%-26s %12s %14s %14s %14s\n", "runtime", "storm ms", "1st exec µs", "2nd exec µs", "open storm ms")
	type row struct {
		Runtime                                 string
		StormMS, FirstUS, SecondUS, OpenStormMS float64
	}
	var rows []row
	for _, v := range variants {
		m := med(res[v.name])
		rows = append(rows, row{v.name, m.storm, m.first, m.second, m.open})
		fmt.Printf("%-26s %12.1f %14.0f %14.0f %14.1f\n", v.name, m.storm, m.first, m.second, m.open)
	}
	m := med(res[variants[2].name])
	sc := med(res[variants[1].name])
	mibs := float64(size+4096) / mib
	fmt.Printf("ratio exec storm (2000 fork+exec, cached verdicts): %.3f× runc.v2, %.3f× runc.v2 + default seccomp\n", m.storm/base.storm, m.storm/sc.storm)
	fmt.Printf("first exec of a never-appraised %.1f MiB file: +%.2f ms over runc.v2's first exec (%.2f ms/MiB); second exec: %.3f×\n",
		mibs, (m.first-base.first)/1000, (m.first-base.first)/1000/mibs, m.second/base.second)
	fmt.Printf("ratio open/close storm (20000): %.3f× runc.v2, %.3f× runc.v2 + default seccomp\n", m.open/base.open, m.open/sc.open)
	np, bal := med(res[variants[3].name]), med(res[variants[4].name])
	fmt.Printf("exec storm: strict without appraisal %.3f×, balanced %.3f× runc.v2: appraisal itself adds %.1f µs per exec\n",
		np.storm/base.storm, bal.storm/base.storm, (m.storm-np.storm)/2)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		return os.WriteFile(jsonOut, b, 0o644)
	}
	return nil
}

func parse(out string) (sample, error) {
	var s sample
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v }
		switch f[0] {
		case "STORM":
			s.storm = num(1)
		case "FIRSTEXEC":
			s.first, s.second = num(1), num(2)
		case "OPENSTORM":
			s.open = num(1)
		}
	}
	if s.storm == 0 || s.open == 0 || s.first == 0 {
		return s, fmt.Errorf("missing figures")
	}
	return s, nil
}

func med(ss []sample) sample {
	pick := func(f func(sample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return sample{
		storm:  pick(func(s sample) float64 { return s.storm }),
		open:   pick(func(s sample) float64 { return s.open }),
		first:  pick(func(s sample) float64 { return s.first }),
		second: pick(func(s sample) float64 { return s.second }),
	}
}

// Command shimab compares two builds of the vordr shim with runc.v2 in one
// interleaved run: each lifecycle (create, start, wait for /bin/true, delete)
// through containerd's Go client, median per runtime and ratio to runc.v2.
// It is how a change to the shim's start-up is measured on a noisy machine,
// where runs minutes apart differ more than the change:
//
//	git stash; go build -o /tmp/old/containerd-shim-vordr-v1 ./cmd/containerd-shim-vordr-v1; git stash pop
//	make build && go run ./bench/shimab -old /tmp/old/containerd-shim-vordr-v1 -new $PWD/bin/containerd-shim-vordr-v1
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/vordr-project/vordr/internal/benchutil"
	"github.com/vordr-project/vordr/internal/daemon"
)

func main() {
	n := flag.Int("n", 30, "task lifecycles per runtime")
	old := flag.String("old", "", "a containerd-shim-vordr-v1 binary to compare (absolute path)")
	new := flag.String("new", "", "another one (absolute path), e.g. bin/containerd-shim-vordr-v1")
	flag.Parse()
	if *old == "" || *new == "" || !filepath.IsAbs(*old) || !filepath.IsAbs(*new) {
		fmt.Fprintln(os.Stderr, "shimab: -old and -new must be absolute paths of vordr shim binaries (containerd runs a runtime given as an absolute path)")
		os.Exit(2)
	}
	rts := []string{"io.containerd.runc.v2", *old, *new}
	ctx := context.Background()
	shimDir, _ := filepath.Abs("bin")
	d, err := daemon.Start(ctx, daemon.Options{BinDirs: []string{shimDir}, LogLevel: "warn"})
	if err != nil {
		panic(err)
	}
	defer benchutil.UnloadGuardSetAfter()()
	defer d.Stop()
	ref := "docker.io/vordr/busybox:shimab"
	if err := benchutil.ImportBusybox(ctx, d, ref); err != nil {
		panic(err)
	}
	c, _ := d.Client()
	ctx = d.Context(ctx)
	img, _ := c.GetImage(ctx, ref)
	res := map[string][]float64{}
	// Per phase too: which of create, start, exit and delete differs is
	// where to look.
	phases := []string{"create", "start", "exit", "delete"}
	ph := map[string]map[string][]float64{}
	for _, rt := range rts {
		ph[rt] = map[string][]float64{}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for i := 0; i < *n; i++ {
		for j, rt := range rts {
			id := fmt.Sprintf("p%d-%d", i, j)
			ctr, err := c.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithNewSnapshot(id, img),
				containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("/bin/true")), containerd.WithRuntime(rt, nil))
			if err != nil {
				panic(err)
			}
			t := time.Now()
			task, err := ctr.NewTask(ctx, cio.NullIO)
			if err != nil {
				panic(err)
			}
			t1 := time.Now()
			ch, _ := task.Wait(ctx)
			if err := task.Start(ctx); err != nil {
				panic(err)
			}
			t2 := time.Now()
			<-ch
			t3 := time.Now()
			if _, err := task.Delete(ctx); err != nil {
				panic(err)
			}
			t4 := time.Now()
			res[rt] = append(res[rt], ms(t4.Sub(t)))
			for k, d := range []time.Duration{t1.Sub(t), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3)} {
				ph[rt][phases[k]] = append(ph[rt][phases[k]], ms(d))
			}
			ctr.Delete(ctx, containerd.WithSnapshotCleanup)
		}
	}
	median := func(v []float64) float64 {
		s := append([]float64(nil), v[1:]...) // the first run of each warms caches
		sort.Float64s(s)
		return s[len(s)/2]
	}
	base := 0.0
	for _, rt := range rts {
		med := median(res[rt])
		if base == 0 {
			base = med
		}
		fmt.Printf("%-40s median %.1f ms  ratio %.3f ", rt, med, med/base)
		for _, p := range phases {
			fmt.Printf(" %s %.1f", p, median(ph[rt][p]))
		}
		fmt.Println()
	}
}

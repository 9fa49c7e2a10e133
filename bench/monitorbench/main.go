//go:build linux

// Command monitorbench measures what the per-container guard costs, against
// a baseline measured in the same run (ratios; absolute numbers on a noisy
// 2-core VM mean little). Every workload runs in its own cgroup v2 directory
// and its own mount namespace, the shape of a runc container after create;
// guarded runs attach a monitor.Guard exactly like the shim does. It needs
// root. Results: a table on stdout, JSON with -json.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vordr-project/vordr/monitor"
)

var (
	reps     = flag.Int("reps", 7, "repetitions of every configuration (median reported)")
	getpidN  = flag.Int("getpid", 2_000_000, "getpid calls per run")
	openN    = flag.Int("open", 200_000, "open/close pairs per run")
	tarFiles = flag.Int("tar-files", 2000, "files in the extracted tarball")
	jsonOut  = flag.String("json", "", "write results as JSON to this file")
	counts   = flag.String("containers", "1,10,50", "monitored-container counts for the flatness check")
	pinDir   = flag.String("pin-dir", "/sys/fs/bpf/vordr-bench", "private pin directory (keeps the node's shims out of the numbers)")
)

type result struct {
	Name     string  `json:"name"`
	Baseline float64 `json:"baseline_ns_per_op"`
	Measured float64 `json:"measured_ns_per_op"`
	Ratio    float64 `json:"ratio"`
	Target   float64 `json:"target,omitempty"`
	Note     string  `json:"note,omitempty"`
}

type throughput struct {
	Name      string  `json:"name"`
	TargetHz  int     `json:"target_events_per_s"`
	Achieved  float64 `json:"achieved_events_per_s"`
	Seen      uint64  `json:"seen"`
	Dropped   uint64  `json:"dropped"`
	Delivered uint64  `json:"delivered"`
	Lost      uint64  `json:"lost"`
	LossPct   float64 `json:"loss_pct"`
}

func main() {
	if w := os.Getenv("VORDR_BENCH_WORKER"); w != "" {
		os.Exit(worker(w, os.Args[1:]))
	}
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "monitorbench: needs root (cgroups, eBPF, fanotify)")
		os.Exit(2)
	}
	b := &bench{opts: monitor.Options{PinDir: *pinDir, LockPath: filepath.Join(os.TempDir(), "vordr-bench.lock"), UnloadWhenIdle: true}}
	var results []result
	balanced, _ := monitor.LoadProfile("balanced")
	strict, _ := monitor.LoadProfile("strict")
	counting, _ := monitor.ParseProfile([]byte("name = \"balanced+counting\"\n[anomaly]\nsyscall_counting = true\n"))

	tarball := makeTar(*tarFiles)
	tarPath := filepath.Join(os.TempDir(), "vordr-bench.tar")
	os.WriteFile(tarPath, tarball, 0o600)
	defer os.Remove(tarPath)

	loops := []struct {
		name   string
		args   []string
		target float64
	}{
		{"getpid storm", []string{"getpid", strconv.Itoa(*getpidN)}, 1.02},
		{"open/close storm", []string{"open", strconv.Itoa(*openN)}, 1.10},
		{"tar extract (" + strconv.Itoa(*tarFiles) + " files, tmpfs)", []string{"tar", tarPath}, 1.02},
	}
	for _, l := range loops {
		for _, prof := range []*monitor.Profile{balanced, strict} {
			base, meas := b.compare(l.args, nil, prof)
			results = append(results, result{Name: l.name + ", inside, " + prof.Name, Baseline: base, Measured: meas, Ratio: meas / base, Target: l.target})
		}
	}
	// Host processes while containers are guarded.
	for _, l := range loops[:2] {
		base, meas := b.compareHost(l.args, 10, balanced)
		results = append(results, result{Name: l.name + ", host, 10 guarded containers", Baseline: base, Measured: meas, Ratio: meas / base, Target: 1.02})
	}
	// Flatness: the open/close storm inside one guarded container while
	// N-1 others are guarded too.
	for _, s := range strings.Split(*counts, ",") {
		n, _ := strconv.Atoi(s)
		if n < 1 {
			continue
		}
		base, meas := b.compareCrowd(loops[1].args, n, balanced)
		results = append(results, result{Name: fmt.Sprintf("open/close storm, inside, %d guarded containers", n), Baseline: base, Measured: meas, Ratio: meas / base, Target: 1.10})
	}
	// Opt-in syscall counting: inside the counted container and on the host.
	base, meas := b.compare(loops[0].args, nil, counting)
	results = append(results, result{Name: "getpid storm, inside, syscall counting ON (opt-in)", Baseline: base, Measured: meas, Ratio: meas / base, Note: "opt-in; attaches raw_tp/sys_enter"})
	base, meas = b.compareHost(loops[0].args, 1, counting)
	results = append(results, result{Name: "getpid storm, host, while 1 container counts syscalls", Baseline: base, Measured: meas, Ratio: meas / base, Note: "the host-wide price of opt-in counting"})

	var tps []throughput
	for _, hz := range []int{100_000, 1_000_000} {
		tps = append(tps, b.throughput(balanced, hz))
	}

	fmt.Printf("\n%-62s %12s %12s %7s %7s\n", "benchmark (median of "+strconv.Itoa(*reps)+")", "baseline", "guarded", "ratio", "target")
	for _, r := range results {
		tgt := ""
		if r.Target > 0 {
			tgt = fmt.Sprintf("≤%.2f", r.Target)
		}
		fmt.Printf("%-62s %10.0fns %10.0fns %7.3f %7s\n", r.Name, r.Baseline, r.Measured, r.Ratio, tgt)
	}
	fmt.Printf("\n%-44s %10s %10s %9s %9s %9s %7s\n", "event throughput (UDP connect events)", "target/s", "achieved/s", "seen", "dropped", "lost", "loss%")
	for _, t := range tps {
		fmt.Printf("%-44s %10d %10.0f %9d %9d %9d %6.2f%%\n", t.Name, t.TargetHz, t.Achieved, t.Seen, t.Dropped, t.Lost, t.LossPct)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"ratios": results, "throughput": tps}, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

type bench struct{ opts monitor.Options }

type cgroup struct {
	path string
	fd   int
}

func newCgroup() *cgroup {
	dir, err := os.MkdirTemp("/sys/fs/cgroup/unified", "vordr-bench-")
	must(err)
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(err)
	return &cgroup{dir, fd}
}

func (c *cgroup) remove() {
	unix.Close(c.fd)
	os.WriteFile(filepath.Join(c.path, "cgroup.kill"), []byte("1"), 0)
	for i := 0; i < 100 && os.Remove(c.path) != nil; i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// proc is a worker that waits for "go" on stdin, so a guard can attach to it
// between creation and start, like the shim between runc create and start.
type proc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bytes.Buffer
}

func startWorker(cg *cgroup, args []string) *proc {
	self, _ := os.Executable()
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "VORDR_BENCH_WORKER=1")
	attr := &syscall.SysProcAttr{Unshareflags: unix.CLONE_NEWNS}
	if cg != nil {
		attr.UseCgroupFD, attr.CgroupFD = true, cg.fd
	}
	cmd.SysProcAttr = attr
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	in, _ := cmd.StdinPipe()
	must(cmd.Start())
	return &proc{cmd, in, out}
}

func (p *proc) run() float64 {
	p.in.Write([]byte("go\n"))
	p.in.Close()
	if err := p.cmd.Wait(); err != nil {
		panic(fmt.Sprintf("worker: %v: %s", err, p.out))
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(p.out.String()), 64)
	must(err)
	return v
}

func (b *bench) guard(cg *cgroup, pid int, p *monitor.Profile) (*monitor.Guard, chan struct{}) {
	g, err := monitor.Attach(context.Background(), monitor.Target{ContainerID: filepath.Base(cg.path), CgroupPath: cg.path, InitPID: pid}, p, b.opts)
	must(err)
	done := make(chan struct{})
	go func() {
		for range g.Events() {
		}
		close(done)
	}()
	return g, done
}

// compare runs the workload alternately unguarded and guarded (same process
// shape, same cgroup depth) and returns the medians.
func (b *bench) compare(args []string, _ []string, p *monitor.Profile) (float64, float64) {
	var base, meas []float64
	for i := 0; i < *reps; i++ {
		cg := newCgroup()
		w := startWorker(cg, args)
		base = append(base, w.run())
		cg.remove()

		cg = newCgroup()
		w = startWorker(cg, args)
		g, done := b.guard(cg, w.cmd.Process.Pid, p)
		meas = append(meas, w.run())
		g.Close()
		<-done
		cg.remove()
	}
	return median(base), median(meas)
}

// compareHost runs the workload outside any guarded cgroup, without and with
// n guarded containers on the node.
func (b *bench) compareHost(args []string, n int, p *monitor.Profile) (float64, float64) {
	var base, meas []float64
	for i := 0; i < *reps; i++ {
		base = append(base, startWorker(nil, args).run())
		var cgs []*cgroup
		var gs []*monitor.Guard
		var dones []chan struct{}
		for j := 0; j < n; j++ {
			cg := newCgroup()
			g, d := b.guard(cg, 0, p)
			cgs, gs, dones = append(cgs, cg), append(gs, g), append(dones, d)
		}
		meas = append(meas, startWorker(nil, args).run())
		for j := range gs {
			gs[j].Close()
			<-dones[j]
			cgs[j].remove()
		}
	}
	return median(base), median(meas)
}

// compareCrowd runs the workload inside one guarded container while n-1
// other containers are guarded, against the same workload unguarded.
func (b *bench) compareCrowd(args []string, n int, p *monitor.Profile) (float64, float64) {
	var base, meas []float64
	for i := 0; i < *reps; i++ {
		cg := newCgroup()
		base = append(base, startWorker(cg, args).run())
		cg.remove()

		var cgs []*cgroup
		var gs []*monitor.Guard
		var dones []chan struct{}
		for j := 0; j < n-1; j++ {
			c := newCgroup()
			g, d := b.guard(c, 0, p)
			cgs, gs, dones = append(cgs, c), append(gs, g), append(dones, d)
		}
		cg = newCgroup()
		w := startWorker(cg, args)
		g, d := b.guard(cg, w.cmd.Process.Pid, p)
		cgs, gs, dones = append(cgs, cg), append(gs, g), append(dones, d)
		meas = append(meas, w.run())
		for j := range gs {
			gs[j].Close()
			<-dones[j]
			cgs[j].remove()
		}
	}
	return median(base), median(meas)
}

// throughput drives UDP connect() calls (one event each, no packets) at a
// target rate inside a guarded container and reports what the kernel saw,
// dropped and the consumer received.
func (b *bench) throughput(p *monitor.Profile, hz int) throughput {
	cg := newCgroup()
	defer cg.remove()
	const seconds = 2
	w := startWorker(cg, []string{"udpconnect", strconv.Itoa(hz), strconv.Itoa(seconds)})
	g, err := monitor.Attach(context.Background(), monitor.Target{ContainerID: "tp", CgroupPath: cg.path}, p, b.opts)
	must(err)
	var got uint64
	done := make(chan struct{})
	go func() {
		for e := range g.Events() {
			if e.Kind == monitor.KindConnect {
				got++
			}
		}
		close(done)
	}()
	rate := w.run()
	time.Sleep(200 * time.Millisecond)
	s := g.Stats()
	g.Close()
	<-done
	_ = rate // the worker's own call rate; the kernel's count is authoritative
	t := throughput{Name: fmt.Sprintf("balanced, target %d/s for %ds", hz, seconds), TargetHz: hz, Achieved: float64(s.Seen+s.Dropped) / seconds,
		Seen: s.Seen, Dropped: s.Dropped, Delivered: got, Lost: s.Lost}
	if total := s.Seen + s.Dropped; total > 0 {
		t.LossPct = 100 * float64(s.Dropped+s.Lost) / float64(total)
	}
	return t
}

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "monitorbench:", err)
		os.Exit(1)
	}
}

func makeTar(n int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := bytes.Repeat([]byte("x"), 512)
	for i := 0; i < n; i++ {
		dir := fmt.Sprintf("d%02d/", i%50)
		if i < 50 {
			tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755})
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%sf%05d", dir, i), Mode: 0o644, Size: int64(len(body))})
		tw.Write(body)
	}
	tw.Close()
	return buf.Bytes()
}

// worker runs one loop after "go" arrives on stdin and prints ns per op
// (or, for udpconnect, the achieved rate per second).
func worker(_ string, args []string) int {
	bufio.NewReader(os.Stdin).ReadString('\n')
	switch args[0] {
	case "getpid":
		n, _ := strconv.Atoi(args[1])
		t := time.Now()
		for i := 0; i < n; i++ {
			syscall.Getpid()
		}
		fmt.Println(float64(time.Since(t).Nanoseconds()) / float64(n))
	case "open":
		n, _ := strconv.Atoi(args[1])
		f, _ := os.CreateTemp("", "vordr-bench-open-")
		f.Close()
		defer os.Remove(f.Name())
		name := f.Name()
		t := time.Now()
		for i := 0; i < n; i++ {
			fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return 1
			}
			unix.Close(fd)
		}
		fmt.Println(float64(time.Since(t).Nanoseconds()) / float64(n))
	case "tar":
		dir, _ := os.MkdirTemp("", "vordr-bench-tar-")
		defer os.RemoveAll(dir)
		// A tmpfs private to the worker's mount namespace: the disk's
		// journal flushes would otherwise dominate the variance.
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err == nil {
			defer unix.Unmount(dir, unix.MNT_DETACH)
		}
		data, _ := os.ReadFile(args[1])
		t := time.Now()
		tr := tar.NewReader(bytes.NewReader(data))
		files := 0
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			p := filepath.Join(dir, h.Name)
			if h.Typeflag == tar.TypeDir {
				os.MkdirAll(p, 0o755)
				continue
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return 1
			}
			io.Copy(f, tr)
			f.Close()
			files++
		}
		fmt.Println(float64(time.Since(t).Nanoseconds()) / float64(files))
	case "udpconnect":
		hz, _ := strconv.Atoi(args[1])
		secs, _ := strconv.Atoi(args[2])
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return 1
		}
		sa := &unix.SockaddrInet4{Port: 9, Addr: [4]byte{127, 0, 0, 1}}
		start := time.Now()
		end := start.Add(time.Duration(secs) * time.Second)
		n := 0
		for now := start; now.Before(end); now = time.Now() {
			// Pace in batches of 100 to keep clock reads out of the way.
			want := int(now.Sub(start).Seconds() * float64(hz))
			for ; n < want; n++ {
				unix.Connect(fd, sa)
			}
		}
		fmt.Println(float64(n) / time.Since(start).Seconds())
	}
	return 0
}

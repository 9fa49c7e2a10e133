//go:build linux

package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cgroupsv1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cgroupsv2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"

	"github.com/vordr-project/vordr/internal/daemon"
)

func withNS(ctx context.Context, ns string) context.Context {
	return namespaces.WithNamespace(ctx, ns)
}

// env is what one test works with: a daemon, a client, a context in the
// daemon's namespace, and the runtime under test.
type env struct {
	t   *testing.T
	d   *daemon.Daemon
	c   *containerd.Client
	ctx context.Context
	rt  runtimeCase
}

func newEnv(t *testing.T, d *daemon.Daemon, rt runtimeCase) *env {
	t.Helper()
	c, err := d.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(d.Context(context.Background()), 2*time.Minute)
	t.Cleanup(func() { cancel(); c.Close() })
	return &env{t: t, d: d, c: c, ctx: ctx, rt: rt}
}

// uniqueID names a container after the test, so logs can be read back.
var idSeq struct {
	sync.Mutex
	n int
}

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

func uniqueID(t *testing.T) string {
	idSeq.Lock()
	idSeq.n++
	n := idSeq.n
	idSeq.Unlock()
	name := nonAlnum.ReplaceAllString(strings.ToLower(t.Name()), "-")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("%s-%d", strings.Trim(name, "-"), n)
}

// container creates a container of the test image running args under the
// env's runtime; it is deleted (task killed) when the test ends.
func (e *env) container(id string, args []string, opts ...oci.SpecOpts) containerd.Container {
	e.t.Helper()
	return e.imageContainer(testImage, id, args, opts...)
}

// imageContainer is container for any imported image ref. The container
// record names its image, as ctr's and CRI's do (the gate reads it).
func (e *env) imageContainer(ref, id string, args []string, opts ...oci.SpecOpts) containerd.Container {
	e.t.Helper()
	img, err := e.c.GetImage(e.ctx, ref)
	if err != nil {
		e.t.Fatal(err)
	}
	specOpts := append([]oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(args...)}, opts...)
	ctr, err := e.c.NewContainer(e.ctx, id,
		containerd.WithImage(img),
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(specOpts...),
		containerd.WithRuntime(e.rt.runtime, e.rt.options(e.d)),
	)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(e.d.Context(context.Background()), 30*time.Second)
		defer cancel()
		if task, err := ctr.Task(ctx, nil); err == nil {
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
		}
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			e.t.Errorf("delete container %s: %v", id, err)
		}
	})
	return ctr
}

// exec runs args as exec process execID in a running task, to completion,
// with the container's process spec otherwise, and deletes it.
func (e *env) exec(ctr containerd.Container, task containerd.Task, execID string, args ...string) (uint32, *output) {
	e.t.Helper()
	spec, err := ctr.Spec(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	p := *spec.Process
	p.Args = args
	out := &output{}
	proc, err := task.Exec(e.ctx, execID, &p, e.ioCreator(out))
	if err != nil {
		e.t.Fatal(err)
	}
	ch, err := proc.Wait(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := proc.Start(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	st := <-ch
	code, _, err := st.Result()
	if err != nil {
		e.t.Fatal(err)
	}
	proc.IO().Wait()
	if _, err := proc.Delete(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	return code, out
}

// output collects a process's stdout and stderr.
type output struct {
	stdout, stderr syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (e *env) ioCreator(out *output, opts ...cio.Opt) cio.Creator {
	return cio.NewCreator(append([]cio.Opt{cio.WithStreams(nil, &out.stdout, &out.stderr), cio.WithFIFODir(e.d.FifoDir)}, opts...)...)
}

// run starts args to completion and returns its exit code and output.
func (e *env) run(args ...string) (uint32, *output) {
	e.t.Helper()
	return e.runTask(e.container(uniqueID(e.t), args))
}

// runTask runs a created container's task to completion.
func (e *env) runTask(ctr containerd.Container) (uint32, *output) {
	e.t.Helper()
	out := &output{}
	task, err := ctr.NewTask(e.ctx, e.ioCreator(out))
	if err != nil {
		e.t.Fatalf("create task: %v", err)
	}
	return e.complete(task), out
}

// complete starts a created task, waits for its exit and its output, deletes
// it and returns its exit code.
func (e *env) complete(task containerd.Task) uint32 {
	e.t.Helper()
	ch, err := task.Wait(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := task.Start(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	st := <-ch
	code, _, err := st.Result()
	if err != nil {
		e.t.Fatal(err)
	}
	// Wait until the IO has been copied before reading it.
	task.CloseIO(e.ctx, containerd.WithStdinCloser)
	if io := task.IO(); io != nil {
		io.Wait()
	}
	if _, err := task.Delete(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	return code
}

// memoryLimit reads the memory limit from a task's metrics, cgroup v1 or v2.
func memoryLimit(t *testing.T, ctx context.Context, task containerd.Task) (usage, limit uint64) {
	t.Helper()
	m, err := task.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	switch s := v.(type) {
	case *cgroupsv1.Metrics:
		if s.Memory == nil || s.Memory.Usage == nil {
			t.Fatalf("cgroup v1 metrics without memory: %v", s)
		}
		return s.Memory.Usage.Usage, s.Memory.Usage.Limit
	case *cgroupsv2.Metrics:
		if s.Memory == nil {
			t.Fatalf("cgroup v2 metrics without memory: %v", s)
		}
		return s.Memory.Usage, s.Memory.UsageLimit
	default:
		t.Fatalf("unexpected metrics type %T", v)
	}
	return 0, 0
}

// shimPidOf finds the shim process serving container id of daemon d.
func shimPidOf(d *daemon.Daemon, id string) int {
	for _, pid := range d.ShimPids() {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "cmdline"))
		args := strings.Split(string(cmdline), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-id" && args[i+1] == id {
				return pid
			}
		}
	}
	return 0
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runHost runs a command on the host, ignoring its output.
func runHost(args ...string) error {
	return exec.Command(args[0], args[1:]...).Run()
}

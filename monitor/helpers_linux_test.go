//go:build linux

package monitor

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the workload: with VORDR_TEST_HELPER set it
// runs one small job (connect, exec burst, getpid storm) and exits, so tests
// need no tools beyond the kernel.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == PidnsSysctlArg {
		os.Exit(PidnsSysctlMain(os.Args[2:]))
	}
	if h := os.Getenv("VORDR_TEST_HELPER"); h != "" {
		os.Exit(helper(h, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func helper(mode string, args []string) int {
	switch mode {
	case "connect":
		c, err := net.DialTimeout("tcp", args[0], 2*time.Second)
		if err != nil {
			fmt.Println(err)
			if strings.Contains(err.Error(), "operation not permitted") {
				return 13
			}
			return 1
		}
		c.Close()
		return 0
	case "fanout":
		// connect to n closed loopback ports: refused at once, but each is
		// a connect the guard sees.
		n, _ := strconv.Atoi(args[0])
		for i := 0; i < n; i++ {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(40000+i), time.Second)
			if err == nil {
				c.Close()
			}
		}
		return 0
	case "execs":
		n, _ := strconv.Atoi(args[0])
		for i := 0; i < n; i++ {
			if err := exec.Command("/bin/true").Run(); err != nil {
				return 1
			}
		}
		return 0
	case "memfd-exec":
		// Fileless execution: a program copied into a memfd and run from it.
		fd, err := unix.MemfdCreate("x", 0)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		src, err := os.ReadFile("/bin/true")
		if err != nil {
			fmt.Println(err)
			return 1
		}
		unix.Write(fd, src)
		err = unix.Exec("/proc/self/fd/"+strconv.Itoa(fd), []string{"true"}, nil)
		fmt.Println(err)
		return 1
	case "guard":
		// A stand-in shim: guards the cgroup args[2] with the set at
		// args[0] (lock args[1]), says so, and waits to be killed.
		p, err := LoadProfile("balanced")
		if err != nil {
			fmt.Println(err)
			return 1
		}
		o := Options{PinDir: args[0], LockPath: args[1]}
		if _, err := Attach(context.Background(), Target{ContainerID: "helper", CgroupPath: args[2]}, p, o); err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("attached")
		select {}
	case "getpid":
		n, _ := strconv.Atoi(args[0])
		for i := 0; i < n; i++ {
			syscall.Getpid()
		}
		return 0
	}
	return 2
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to load eBPF programs, create cgroups and use fanotify (run go test as root)")
	}
}

type testCgroup struct {
	path string
	id   uint64
	fd   int
}

// newCgroup creates a private cgroup v2 directory; cleanup kills what runs
// in it and removes it.
func newCgroup(t testing.TB) *testCgroup {
	t.Helper()
	root := "/sys/fs/cgroup/unified"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		root = "/sys/fs/cgroup"
	}
	dir, err := os.MkdirTemp(root, "vordr-test-")
	if err != nil {
		t.Fatalf("create test cgroup: %v", err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(dir)
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	cg := &testCgroup{path: dir, id: st.Ino, fd: fd}
	t.Cleanup(func() {
		unix.Close(fd)
		os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		for i := 0; i < 100; i++ {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("could not remove test cgroup %s", dir)
	})
	return cg
}

// cmd returns a command that starts inside the cgroup (clone3 CLONE_INTO_CGROUP),
// so its very first exec is already attributed to the cgroup.
func (cg *testCgroup) cmd(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	return c
}

func (cg *testCgroup) helper(mode string, args ...string) *exec.Cmd {
	c := cg.cmd(os.Args[0], args...)
	c.Env = append(os.Environ(), "VORDR_TEST_HELPER="+mode)
	return c
}

// testOptions pins a private program set so tests neither see nor disturb a
// vordr shim running on the same machine; cleanup checks it was unloaded.
func testOptions(t testing.TB) Options {
	t.Helper()
	pin := fmt.Sprintf("/sys/fs/bpf/vordr-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
	self, _ := os.Executable()
	o := Options{PinDir: pin, LockPath: filepath.Join(t.TempDir(), "bpf.lock"), PollInterval: 50 * time.Millisecond, UnloadWhenIdle: true, SysctlHelper: self}
	t.Cleanup(func() {
		if ents, err := os.ReadDir(pin); err == nil {
			t.Errorf("program set not unloaded: %s still holds %d entries", pin, len(ents))
			os.RemoveAll(pin)
		}
	})
	return o
}

// collector gathers a guard's events.
type collector struct {
	mu   sync.Mutex
	evs  []Event
	done chan struct{}
}

func collect(g *Guard) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for e := range g.Events() {
			c.mu.Lock()
			c.evs = append(c.evs, e)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) snapshot() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Event(nil), c.evs...)
}

// waitFor returns the first event matching pred, failing after timeout.
func (c *collector) waitFor(t testing.TB, what string, pred func(Event) bool) Event {
	t.Helper()
	// Generous: on a loaded 2-core CI machine (the integration tests run
	// in parallel) events can take seconds; a passing test never waits.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range c.snapshot() {
			if pred(e) {
				return e
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s event within 20s; got %d events: %s", what, len(c.snapshot()), summarize(c.snapshot()))
	return Event{}
}

func summarize(evs []Event) string {
	var b strings.Builder
	for i, e := range evs {
		if i > 30 {
			b.WriteString(" …")
			break
		}
		fmt.Fprintf(&b, "\n  %s pid=%d cg=%d path=%s addr=%v:%d verdict=%s drift=%v ctime=%s ino=%d", e.Kind, e.PID, e.CgroupID, e.Path, e.Addr, e.Port, e.Verdict, e.Drift, e.FileCtime.Format("15:04:05.000000"), e.Inode)
		if e.Alert != nil {
			fmt.Fprintf(&b, " alert=%s(%s)", e.Alert.Rule, e.Alert.Message)
		}
	}
	return b.String()
}

func attach(t testing.TB, cg *testCgroup, p *Profile, o Options, initPID int) (*Guard, *collector) {
	t.Helper()
	g, err := Attach(context.Background(), Target{ContainerID: filepath.Base(cg.path), CgroupPath: cg.path, InitPID: initPID}, p, o)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	c := collect(g)
	t.Cleanup(func() {
		g.Close()
		<-c.done
	})
	return g, c
}

func mustProfile(t testing.TB, ref string) *Profile {
	t.Helper()
	p, err := LoadProfile(ref)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// miniStrict is strict for the mini containers of these tests, which share
// the host's pid namespace: a pid-namespace sysctl there would be the
// host's, so fileless execution is left to the runc test.
func miniStrict(t testing.TB) *Profile {
	p := mustProfile(t, "strict")
	p.Exec.Fileless = ActionAudit
	return p
}

//go:build linux

package monitor

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"syscall"

	vbpf "github.com/vordr-project/vordr/bpf"
)

func TestExecIsFirstEvent(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	g, c := attach(t, cg, mustProfile(t, "balanced"), testOptions(t), 0)
	cmd := cg.cmd("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	e := c.waitFor(t, "exec", func(e Event) bool { return e.Kind == KindExec })
	evs := c.snapshot()
	if evs[0].Kind != KindGuard || evs[0].Mechanisms["exec"] == "" {
		t.Fatalf("first event is %+v, want the guard event naming its mechanisms", evs[0])
	}
	if evs[1].Kind != KindExec {
		t.Fatalf("first container event is %s, want exec:%s", evs[1].Kind, summarize(evs))
	}
	if e.CgroupID != cg.id || e.CgroupID != g.CgroupID() {
		t.Errorf("exec cgroup id %d, want %d", e.CgroupID, cg.id)
	}
	if e.PID != cmd.Process.Pid {
		t.Errorf("exec pid %d, want %d", e.PID, cmd.Process.Pid)
	}
	if e.Path != "/bin/true" || len(e.Args) != 1 || e.Args[0] != "/bin/true" {
		t.Errorf("exec path %q args %q", e.Path, e.Args)
	}
	if e.Drift {
		t.Errorf("/bin/true reported as drift")
	}
	c.waitFor(t, "exit", func(e Event) bool { return e.Kind == KindExit && e.PID == cmd.Process.Pid && e.ExitStatus == 0 })
	f := cg.cmd("/bin/false")
	f.Run()
	c.waitFor(t, "exit status 1", func(e Event) bool { return e.Kind == KindExit && e.PID == f.Process.Pid && e.ExitStatus == 1<<8 })
	s := g.Stats()
	if s.Execs != 2 || s.Seen < 4 || s.Dropped != 0 {
		t.Errorf("stats %+v, want 2 execs, ≥4 seen, 0 dropped", s)
	}
}

func listen(t *testing.T) (*net.TCPListener, int) {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l, l.Addr().(*net.TCPAddr).Port
}

func TestConnectSeen(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	_, c := attach(t, cg, mustProfile(t, "balanced"), testOptions(t), 0)
	_, port := listen(t)
	cmd := cg.helper("connect", "127.0.0.1:"+strconv.Itoa(port))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("connect from the cgroup failed under balanced: %v %s", err, out)
	}
	e := c.waitFor(t, "connect", func(e Event) bool { return e.Kind == KindConnect })
	if e.Addr != netip.MustParseAddr("127.0.0.1") || int(e.Port) != port || e.Protocol != "tcp" || e.Verdict != Allowed {
		t.Errorf("connect event %+v, want 127.0.0.1:%d tcp allowed", e, port)
	}
	if e.PID != cmd.Process.Pid || e.CgroupID != cg.id {
		t.Errorf("connect attributed to pid %d cgroup %d, want %d %d", e.PID, e.CgroupID, cmd.Process.Pid, cg.id)
	}
}

func TestConnectDeniedUnlessAllowed(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	_, denied := listen(t)
	_, allowed := listen(t)
	p, err := ParseProfile([]byte(`name = "net"
[network]
connect = "deny"
allow = ["127.0.0.1:` + strconv.Itoa(allowed) + `/tcp"]
`))
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions(t)
	g, c := attach(t, cg, p, o, 0)

	cmd := cg.helper("connect", "127.0.0.1:"+strconv.Itoa(denied))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 13 {
		t.Fatalf("connect to a port not allow-listed: err=%v out=%s, want EPERM inside", err, out)
	}
	if out, err := cg.helper("connect", "127.0.0.1:"+strconv.Itoa(allowed)).CombinedOutput(); err != nil {
		t.Fatalf("connect to the allow-listed port failed: %v %s", err, out)
	}
	// IPv6 goes through connect6 and is denied the same way.
	out, err = cg.helper("connect", "[::1]:"+strconv.Itoa(denied)).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 13 {
		t.Fatalf("IPv6 connect: err=%v out=%s, want EPERM inside", err, out)
	}
	// Another guarded container (balanced) is unaffected.
	other := newCgroup(t)
	attach(t, other, mustProfile(t, "balanced"), o, 0)
	if out, err := other.helper("connect", "127.0.0.1:"+strconv.Itoa(denied)).CombinedOutput(); err != nil {
		t.Fatalf("another container's connect was denied: %v %s", err, out)
	}
	// The host, outside the cgroup, is unaffected.
	hc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(denied))
	if err != nil {
		t.Fatalf("host connect blocked: %v", err)
	}
	hc.Close()

	e := c.waitFor(t, "denied connect", func(e Event) bool { return e.Kind == KindConnect && e.Verdict == Denied })
	if int(e.Port) != denied {
		t.Errorf("denied port %d, want %d", e.Port, denied)
	}
	c.waitFor(t, "allowed connect", func(e Event) bool { return e.Kind == KindConnect && e.Verdict == Allowed && int(e.Port) == allowed })
	c.waitFor(t, "denied IPv6 connect", func(e Event) bool {
		return e.Kind == KindConnect && e.Verdict == Denied && e.Addr == netip.IPv6Loopback() && e.Mechanism == "bpf:cgroup/connect6"
	})
	c.waitFor(t, "connect-denied alert", func(e Event) bool { return e.Alert != nil && e.Alert.Rule == RuleConnectDenied })
	if s := g.Stats(); s.Denied != 2 {
		t.Errorf("stats.Denied = %d, want 2", s.Denied)
	}
	for _, e := range c.snapshot() {
		if e.PID == os.Getpid() {
			t.Errorf("host process reported: %+v", e)
		}
	}
}

func TestCgroupsDoNotMixAndHostIsIgnored(t *testing.T) {
	requireRoot(t)
	o := testOptions(t)
	a, b := newCgroup(t), newCgroup(t)
	_, ca := attach(t, a, mustProfile(t, "balanced"), o, 0)
	_, cb := attach(t, b, mustProfile(t, "balanced"), o, 0)
	_, port := listen(t)

	host := exec.Command("/bin/true") // the host does the same things
	host.Run()
	net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	ra, rb := a.cmd("/bin/true"), b.cmd("/bin/echo", "b")
	ra.Run()
	rb.Run()
	a.helper("connect", "127.0.0.1:"+strconv.Itoa(port)).Run()

	ca.waitFor(t, "a's connect", func(e Event) bool { return e.Kind == KindConnect })
	cb.waitFor(t, "b's exec", func(e Event) bool { return e.Kind == KindExec && e.Path == "/bin/echo" })
	time.Sleep(100 * time.Millisecond)
	for name, c := range map[string]*collector{"a": ca, "b": cb} {
		want := map[string]uint64{"a": a.id, "b": b.id}[name]
		for _, e := range c.snapshot() {
			if e.CgroupID != want {
				t.Errorf("guard %s got an event of cgroup %d: %+v", name, e.CgroupID, e)
			}
			if e.PID == host.Process.Pid || e.PID == os.Getpid() {
				t.Errorf("guard %s reported a host process: %+v", name, e)
			}
			if name == "a" && e.PID == rb.Process.Pid || name == "b" && e.PID == ra.Process.Pid {
				t.Errorf("guard %s reported the other container's process: %+v", name, e)
			}
		}
	}
}

func TestExecBurstAlert(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	// A low threshold keeps the test meaningful on a loaded CI machine,
	// where 300 execs may take seconds.
	g, c := attach(t, cg, mustProfile(t, "name = \"burst\"\n[anomaly]\nexec_burst = 10\n"), testOptions(t), 0)
	if err := cg.helper("execs", "300").Run(); err != nil {
		t.Fatal(err)
	}
	// Every /bin/true is a fork (vfork) of the helper: counted, not emitted.
	if s := g.Stats(); s.Forks < 300 || s.Execs < 301 {
		t.Errorf("stats %+v, want ≥300 forks and ≥301 execs", s)
	}
	e := c.waitFor(t, "exec-burst alert", func(e Event) bool { return e.Alert != nil && e.Alert.Rule == RuleExecBurst })
	if e.Alert.ContainerID != filepath.Base(cg.path) || e.Alert.Severity != SevMedium || e.Alert.Evidence["execs"] == "" {
		t.Errorf("alert %+v", e.Alert)
	}
}

// TestFilelessExecKilled: with exec.fileless = "deny" and no way to set
// vm.memfd_noexec (this test's workload shares the host's pid namespace),
// the BPF exec hook kills a program run from a memfd before it runs.
func TestFilelessExecKilled(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	p := mustProfile(t, "name = \"fileless\"\n[exec]\nfileless = \"deny\"\n")
	g, c := attach(t, cg, p, testOptions(t), 0)
	if m := g.Mechanisms()["exec.fileless"]; !strings.HasPrefix(m, "kill:") {
		t.Fatalf("mechanism %q, want the SIGKILL fallback", m)
	}
	cmd := cg.helper("memfd-exec")
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("memfd exec: %v, want killed", err)
	}
	e := c.waitFor(t, "fileless-exec alert", func(e Event) bool { return e.Alert != nil && e.Alert.Rule == RuleFilelessExec })
	if e.Alert.Severity != SevCritical || e.Alert.Evidence["verdict"] != string(Killed) {
		t.Errorf("alert %+v", e.Alert)
	}
	t.Run("control: audit lets it run and alerts", func(t *testing.T) {
		cg := newCgroup(t)
		_, c := attach(t, cg, mustProfile(t, "name = \"audit\"\n"), testOptions(t), 0)
		if err := cg.helper("memfd-exec").Run(); err != nil {
			t.Fatalf("memfd exec under audit: %v", err)
		}
		c.waitFor(t, "fileless-exec alert (audit)", func(e Event) bool { return e.Alert != nil && e.Alert.Rule == RuleFilelessExec })
	})
}

func TestConnectFanoutAlert(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	_, c := attach(t, cg, mustProfile(t, "balanced"), testOptions(t), 0)
	if err := cg.helper("fanout", "40").Run(); err != nil {
		t.Fatal(err)
	}
	e := c.waitFor(t, "connect-fanout alert", func(e Event) bool { return e.Alert != nil && e.Alert.Rule == RuleConnectFanout })
	if e.Alert.Evidence["destinations"] == "" {
		t.Errorf("alert without evidence: %+v", e.Alert)
	}
}

func TestSetuidExecAlert(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // the test's own temp root, for uid 65534
	p := copyExecutable(t, dir)
	if err := os.Chmod(p, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	cg := newCgroup(t)
	// The binary is older than the guard: only the set-uid matters here.
	time.Sleep(20 * time.Millisecond)
	_, c := attach(t, cg, mustProfile(t, "balanced"), testOptions(t), 0)
	cmd := cg.cmd(p)
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	e := c.waitFor(t, "setid exec", func(e Event) bool { return e.Kind == KindExec && e.Path == p })
	if !e.SetID || e.UID != 65534 || e.EUID != 0 {
		t.Errorf("exec event uid=%d euid=%d setid=%v, want 65534/0/true", e.UID, e.EUID, e.SetID)
	}
	c.waitFor(t, "privilege-change alert", func(e Event) bool { return e.Alert != nil && e.Alert.Rule == RulePrivilegeChange })
}

// copyExecutable writes a fresh copy of /bin/true: a file that did not
// exist when the guard attached, i.e. not part of the "image".
func copyExecutable(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "dropped")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDriftAlert(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	_, c := attach(t, cg, mustProfile(t, "balanced"), testOptions(t), 0)
	p := copyExecutable(t, t.TempDir())
	if err := cg.cmd(p).Run(); err != nil {
		t.Fatalf("balanced must not block: %v", err)
	}
	e := c.waitFor(t, "drift exec", func(e Event) bool { return e.Kind == KindExec && e.Path == p })
	if !e.Drift || e.Verdict != Allowed {
		t.Errorf("exec of a new file: drift=%v verdict=%s", e.Drift, e.Verdict)
	}
	c.waitFor(t, "drift alert", func(e Event) bool { return e.Alert != nil && e.Alert.Rule == RuleExecDrift })
}

// Without an init pid (no mount namespace to mark) strict falls back to
// SIGKILL from sched_process_exec: the new image never runs an instruction.
func TestDriftKilledWithoutFanotify(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	p := mustProfile(t, `name = "drift-kill"
[exec]
drift = "deny"
`)
	g, c := attach(t, cg, p, testOptions(t), 0)
	if m := g.Mechanisms()["exec.drift"]; m == "" || m[:4] != "kill" {
		t.Fatalf("exec.drift mechanism %q, want the SIGKILL fallback", m)
	}
	if err := cg.cmd("/bin/true").Run(); err != nil {
		t.Fatalf("an image file was stopped: %v", err)
	}
	err := cg.cmd(copyExecutable(t, t.TempDir())).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("exec of a new file: %v, want killed by SIGKILL", err)
	}
	c.waitFor(t, "killed exec", func(e Event) bool { return e.Kind == KindExec && e.Verdict == Killed && e.Drift })
	c.waitFor(t, "critical alert", func(e Event) bool {
		return e.Alert != nil && e.Alert.Rule == RuleExecDrift && e.Alert.Severity == SevCritical
	})
	if g.Stats().Killed != 1 {
		t.Errorf("stats %+v", g.Stats())
	}
}

func TestSyscallCountingOptIn(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	o := testOptions(t)
	p := mustProfile(t, "name = \"count\"\n[anomaly]\nsyscall_counting = true\n")
	g, _ := attach(t, cg, p, o, 0)
	pin := filepath.Join(o.PinDir, vbpf.Version(), "link_vordr_sys_enter")
	if _, err := os.Stat(pin); err != nil {
		t.Fatalf("syscall counter not attached while opted in: %v", err)
	}
	if err := cg.helper("getpid", "100000").Run(); err != nil {
		t.Fatal(err)
	}
	if s := g.Stats(); s.Syscalls < 100000 {
		t.Errorf("counted %d syscalls, want ≥ 100000", s.Syscalls)
	}
	// A second, ordinary guard does not keep the counter alive.
	cg2 := newCgroup(t)
	g2, _ := attach(t, cg2, mustProfile(t, "balanced"), o, 0)
	g.Close()
	if _, err := os.Stat(pin); !os.IsNotExist(err) {
		t.Errorf("syscall counter still attached after the last opted-in guard closed: %v", err)
	}
	g2.Close()
}

func TestAttachCloseLeavesNoTrace(t *testing.T) {
	requireRoot(t)
	o := testOptions(t)
	keep := newCgroup(t)
	// One long-lived guard keeps the shared set loaded, as on a busy node.
	gk, _ := attach(t, keep, mustProfile(t, "balanced"), o, 0)
	cg := newCgroup(t)
	p := mustProfile(t, "name = \"cycle\"\n[network]\nconnect = \"deny\"\nallow = [\"127.0.0.1:80\", \"*:53/udp\"]\n")
	fdsBefore, heapBefore := openFDs(t), heapInUse()
	for i := 0; i < 100; i++ {
		g, err := Attach(t.Context(), Target{ContainerID: "cycle", CgroupPath: cg.path}, p, o)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if _, err := Attach(t.Context(), Target{ContainerID: "dup", CgroupPath: cg.path}, p, o); !errors.Is(err, ErrAlreadyGuarded) {
			t.Fatalf("second guard on one cgroup: %v, want ErrAlreadyGuarded", err)
		}
		// The refused Attach must not have removed the first guard's entry.
		var c vbpf.Container
		if err := g.set.maps[vbpf.MapContainers].Lookup(g.cgid, &c); err != nil {
			t.Fatalf("cycle %d: a refused second Attach removed the guard's entry: %v", i, err)
		}
		if err := g.Close(); err != nil {
			t.Fatalf("cycle %d close: %v", i, err)
		}
		for range g.Events() {
		}
	}
	if fds := openFDs(t); fds > fdsBefore {
		t.Errorf("%d file descriptors leaked over 100 cycles", fds-fdsBefore)
	}
	if grown := int64(heapInUse()) - int64(heapBefore); grown > 4<<20 {
		t.Errorf("heap grew by %d bytes over 100 cycles", grown)
	}
	dir := filepath.Join(o.PinDir, vbpf.Version())
	count := func(name string, key any) int {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_"+name), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		n := 0
		var v []byte
		it := m.Iterate()
		for it.Next(key, &v) {
			n++
		}
		return n
	}
	var k uint64
	var ak vbpf.AllowKey
	if n := count(vbpf.MapContainers, &k); n != 1 {
		t.Errorf("%d container entries after 100 cycles, want 1 (the long-lived guard)", n)
	}
	// The ring pool: the long-lived guard's ring and the two rings that
	// every cycle reused, the guard's and the refused duplicate's (a guard
	// takes its ring before it finds its cgroup taken); a new ring per
	// cycle would cost an RCU wait each.
	filled, owned := ringPool(t, dir)
	if filled != 3 || owned != 1 {
		t.Errorf("ring pool after 100 cycles: %d rings, %d owned; want 3 rings, 1 owned (the long-lived guard's)", filled, owned)
	}
	if n := count(vbpf.MapAllow, &ak); n != 0 {
		t.Errorf("%d allow-list entries left, want 0", n)
	}
	f, err := os.Open(cg.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, at := range []ebpf.AttachType{ebpf.AttachCGroupInet4Connect, ebpf.AttachCGroupInet6Connect, ebpf.AttachCGroupUDP4Sendmsg, ebpf.AttachCGroupInet4Bind} {
		r, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: at})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Programs) != 0 {
			t.Errorf("%d programs still attached to the cycled cgroup (%v)", len(r.Programs), at)
		}
	}
	gk.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("program set still pinned after the last guard closed: %v", err)
	}
}

// A shim that dies cannot Close: its entries are collected by the next
// Attach on the node.
func TestDeadOwnerCollected(t *testing.T) {
	requireRoot(t)
	o := testOptions(t)
	cg := newCgroup(t)
	g, _ := attach(t, cg, mustProfile(t, "balanced"), o, 0)
	// Pretend the owner died: rewrite the entry with a pid that is gone.
	var c vbpf.Container
	m := g.set.maps[vbpf.MapContainers]
	if err := m.Lookup(cg.id, &c); err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("/bin/true")
	dead.Run()
	c.OwnerPid = uint32(dead.Process.Pid)
	if err := m.Update(cg.id, c, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	cg2 := newCgroup(t)
	attach(t, cg2, mustProfile(t, "balanced"), o, 0)
	if err := m.Lookup(cg.id, &c); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("dead owner's entry survived the next Attach: %v", err)
	}
	g3, err := Attach(t.Context(), Target{CgroupPath: cg.path}, mustProfile(t, "balanced"), o)
	if err != nil {
		t.Fatalf("cgroup of a dead owner cannot be guarded again: %v", err)
	}
	// Collect does the same without an Attach.
	if err := m.Update(cg.id, c, ebpf.UpdateExist); err != nil {
		t.Fatal(err)
	}
	if n, err := Collect(o); err != nil || n != 1 {
		t.Errorf("Collect = %d, %v; want 1 entry collected", n, err)
	}
	g3.Close()
	for range g3.Events() {
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// ringPool counts the filled and the owned slots of the pinned set in dir.
func ringPool(t *testing.T, dir string) (filled, owned int) {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_"+vbpf.MapRingOwners), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for slot := uint32(0); slot < m.MaxEntries(); slot++ {
		var o vbpf.RingOwner
		if err := m.Lookup(slot, &o); err != nil {
			t.Fatal(err)
		}
		if o.RingSize == 0 {
			continue
		}
		filled++
		if o.OwnerPid != 0 {
			owned++
		}
	}
	return filled, owned
}

// A killed shim leaves its ring slot with events nobody read. The next
// container reuses the slot (no map-of-maps update) and must see none of
// them: every record is checked against the reader's own cgroup.
func TestRingSlotOfKilledOwnerReused(t *testing.T) {
	requireRoot(t)
	o := testOptions(t)
	cg1, cg2 := newCgroup(t), newCgroup(t)
	shim := exec.Command(os.Args[0], o.PinDir, o.LockPath, cg1.path)
	shim.Env = append(os.Environ(), "VORDR_TEST_HELPER=guard")
	out, err := shim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := shim.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "attached\n" {
		shim.Process.Kill()
		shim.Wait()
		t.Fatalf("helper shim did not attach: %q %v", line, err)
	}
	// Stop the stand-in so its events stay in its ring, make some, kill it.
	shim.Process.Signal(syscall.SIGSTOP)
	waitStopped(t, shim.Process.Pid)
	stale := cg1.cmd("/bin/true")
	if err := stale.Run(); err != nil {
		t.Fatal(err)
	}
	shim.Process.Kill()
	shim.Wait()

	g, c := attach(t, cg2, mustProfile(t, "balanced"), o, 0)
	if g.slot != 0 {
		t.Errorf("the new guard took ring slot %d, want the dead owner's slot 0", g.slot)
	}
	if err := cg2.cmd("/bin/true").Run(); err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, "exec in the new container", func(e Event) bool { return e.Kind == KindExec && e.CgroupID == cg2.id })
	for _, e := range c.snapshot() {
		if e.PID == stale.Process.Pid {
			t.Errorf("the new guard delivered an event of the dead owner's container: %+v", e)
		}
	}
	filled, owned := ringPool(t, filepath.Join(o.PinDir, vbpf.Version()))
	if filled != 1 || owned != 1 {
		t.Errorf("ring pool: %d rings, %d owned; want the one ring, owned by the new guard", filled, owned)
	}
	var ce vbpf.Container
	if err := g.set.maps[vbpf.MapContainers].Lookup(cg1.id, &ce); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("the killed owner's container entry survived: %v", err)
	}
}

// waitStopped waits until every thread of pid is stopped (state T).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		stopped := len(tasks) > 0
		for _, task := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
			if i := strings.LastIndexByte(string(b), ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
				stopped = false
			}
		}
		if stopped {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d did not stop", pid)
}

// The pool keeps at most maxFreeRings unused rings: a node that ran many
// containers at once gives the memory back as they go.
func TestRingPoolShrinks(t *testing.T) {
	requireRoot(t)
	o := testOptions(t)
	attach(t, newCgroup(t), mustProfile(t, "balanced"), o, 0) // keeps the set loaded
	var gs []*Guard
	for i := 0; i < maxFreeRings+4; i++ {
		g, err := Attach(t.Context(), Target{ContainerID: fmt.Sprint("peak-", i), CgroupPath: newCgroup(t).path}, mustProfile(t, "balanced"), o)
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	dir := filepath.Join(o.PinDir, vbpf.Version())
	if filled, owned := ringPool(t, dir); filled != maxFreeRings+5 || owned != maxFreeRings+5 {
		t.Fatalf("at the peak: %d rings, %d owned; want %d of each", filled, owned, maxFreeRings+5)
	}
	for _, g := range gs {
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		for range g.Events() {
		}
	}
	if filled, owned := ringPool(t, dir); filled != maxFreeRings+1 || owned != 1 {
		t.Errorf("after the peak: %d rings, %d owned; want %d rings (the long-lived guard's and %d spare), 1 owned", filled, owned, maxFreeRings+1, maxFreeRings)
	}
}

// Aggregation must never fold an event that needs to be seen on its own
// into a count (a drift exec hidden in a storm of /bin/true), and must keep
// different commands and destinations apart.
func TestAggregateKeyKeepsFlaggedEventsApart(t *testing.T) {
	plain := Event{Kind: KindExec, Verdict: Allowed, Path: "/bin/true", Args: []string{"true"}}
	if _, ok := aggregateKey(&plain); !ok {
		t.Fatal("a plain exec is not aggregated")
	}
	for name, mutate := range map[string]func(*Event){
		"denied":   func(e *Event) { e.Verdict = Denied },
		"killed":   func(e *Event) { e.Verdict = Killed },
		"drift":    func(e *Event) { e.Drift = true },
		"fileless": func(e *Event) { e.Fileless = true },
		"set-id":   func(e *Event) { e.SetID = true },
		"digest":   func(e *Event) { e.Digest = "sha256:x" },
		"alert":    func(e *Event) { e.Alert = &Alert{Rule: "x"} },
		"open":     func(e *Event) { e.Kind = KindOpen },
		"syscall":  func(e *Event) { e.Kind = KindSyscall },
	} {
		e := plain
		mutate(&e)
		if _, ok := aggregateKey(&e); ok {
			t.Errorf("a %s event would be aggregated", name)
		}
	}
	other := plain
	other.Args = []string{"true", "--evil"}
	k1, _ := aggregateKey(&plain)
	k2, _ := aggregateKey(&other)
	if k1 == k2 {
		t.Error("execs with different arguments share a key")
	}
}

// attachPreparedSeesExec attaches pp to cg under balanced and requires the
// guard to report an exec in cg: its ring is read.
func attachPreparedSeesExec(t *testing.T, pp *Prepared, cg *testCgroup) (*Guard, *collector) {
	t.Helper()
	g, err := pp.Attach(t.Context(), Target{ContainerID: filepath.Base(cg.path), CgroupPath: cg.path}, mustProfile(t, "balanced"))
	if err != nil {
		t.Fatal(err)
	}
	c := collect(g)
	if out, err := cg.cmd("/bin/true").CombinedOutput(); err != nil {
		t.Fatalf("/bin/true in the cgroup: %v %s", err, out)
	}
	c.waitFor(t, "exec of /bin/true", func(e Event) bool { return e.Kind == KindExec && e.Path == "/bin/true" })
	return g, c
}

// A guard prepared while runc creates the container holds a ring of the
// node's pool before its container has an entry: the set must not be
// unloaded as idle under it (another container closing with UnloadWhenIdle),
// Release must give the ring back, and a Prepared is used once.
func TestPreparedHoldsRingAndSet(t *testing.T) {
	requireRoot(t)
	o := testOptions(t)
	dir := filepath.Join(o.PinDir, vbpf.Version())
	pp, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, owned := ringPool(t, dir); owned != 1 {
		t.Fatalf("after Prepare: %d rings owned, want 1", owned)
	}
	// Another container comes and goes; the prepared guard still needs the set.
	g, c := attach(t, newCgroup(t), mustProfile(t, "balanced"), o, 0)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	<-c.done
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the set was unloaded while a prepared guard held a ring of it: %v", err)
	}
	// The prepared guard attaches and works: its ring is read.
	cg := newCgroup(t)
	pg, pc := attachPreparedSeesExec(t, pp, cg)
	if _, err := pp.Attach(t.Context(), Target{ContainerID: "again", CgroupPath: cg.path}, mustProfile(t, "balanced")); err == nil {
		t.Error("a Prepared attached twice")
	}
	pp.Release() // taken over by Attach: nothing to give back
	if _, owned := ringPool(t, dir); owned != 1 {
		t.Fatalf("with the prepared guard attached: %d rings owned, want 1", owned)
	}
	if err := pg.Close(); err != nil {
		t.Fatal(err)
	}
	<-pc.done

	// Prepared and released without an Attach: nothing stays (the
	// cleanup of testOptions checks the set was unloaded).
	pp2, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, owned := ringPool(t, dir); owned != 1 {
		t.Fatalf("after the second Prepare: %d rings owned, want 1", owned)
	}
	pp2.Release()
	pp2.Release()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the last Release the set is still pinned (%v)", err)
	}
}

// A shim that opens a set another process pinned opens only the cgroup
// programs; the opt-in syscall counter's program is opened from its pin
// when a container asks for it.
func TestSyscallCountingFromPinnedSet(t *testing.T) {
	requireRoot(t)
	o := testOptions(t)
	g0, _ := attach(t, newCgroup(t), mustProfile(t, "balanced"), o, 0) // loads and pins the set
	// Forget this process's open set, as a new shim would not have it.
	dir := filepath.Join(o.PinDir, vbpf.Version())
	openSets.Lock()
	n := openSets.m[dir]
	openSets.Unlock()
	forgetSet(n)
	cg := newCgroup(t)
	g, _ := attach(t, cg, mustProfile(t, "name = \"count\"\n[anomaly]\nsyscall_counting = true\n"), o, 0)
	if g.set == n {
		t.Fatal("the set was not opened again from its pins")
	}
	if _, ok := g.set.progs["vordr_sys_enter"]; ok {
		t.Error("a set opened from its pins holds the syscall counter's program although no container had asked for it")
	}
	if _, err := os.Stat(filepath.Join(dir, "link_vordr_sys_enter")); err != nil {
		t.Fatalf("syscall counter not attached while opted in: %v", err)
	}
	if err := cg.helper("getpid", "100000").Run(); err != nil {
		t.Fatal(err)
	}
	if s := g.Stats(); s.Syscalls < 100000 {
		t.Errorf("counted %d syscalls, want ≥ 100000", s.Syscalls)
	}
	g.Close()
	g0.Close()
}

// The set a guard was prepared with must still be the node's when it
// attaches: a set unloaded in between (by hand, or by a vordr of another
// version) keeps its maps alive through the prepared guard's descriptors, but
// no exec, fork or exit program reads them any more. Another version's
// start-up must not unload a set whose ring a prepared guard holds.
func TestPreparedSetStillPinned(t *testing.T) {
	requireRoot(t)
	o := testOptions(t)
	dir := filepath.Join(o.PinDir, vbpf.Version())

	pp, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	gcOtherVersions(o.PinDir, "another-version") // sees this set as another version's
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("another version's start-up unloaded a set whose ring a prepared guard holds: %v", err)
	}
	g, c := attachPreparedSeesExec(t, pp, newCgroup(t))
	g.Close()
	<-c.done

	pp2, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil { // unloaded by hand
		t.Fatal(err)
	}
	if _, err := pp2.Attach(t.Context(), Target{ContainerID: "orphan", CgroupPath: newCgroup(t).path}, mustProfile(t, "balanced")); err == nil {
		t.Error("a guard attached to a set that is no longer pinned (its container would run without exec, fork and exit programs)")
	}
	os.Remove(o.PinDir) // what unloading the set would have removed
}

// An entry on the container's own cgroup left by a shim that died after
// the guard was prepared is replaced, not taken for a live guard.
func TestPreparedReplacesDeadOwnersEntry(t *testing.T) {
	requireRoot(t)
	o := testOptions(t)
	cg := newCgroup(t)
	pp, err := Prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("/bin/true")
	dead.Run()
	stale := vbpf.Container{OwnerPid: uint32(dead.Process.Pid), Flags: vbpf.CfDenyConnect}
	m := pp.set.maps[vbpf.MapContainers]
	if err := m.Update(cg.id, stale, ebpf.UpdateNoExist); err != nil {
		t.Fatal(err)
	}
	g, err := pp.Attach(t.Context(), Target{ContainerID: "after-dead", CgroupPath: cg.path}, mustProfile(t, "balanced"))
	if err != nil {
		t.Fatalf("the cgroup of a dead owner cannot be guarded: %v", err)
	}
	var c vbpf.Container
	if err := m.Lookup(cg.id, &c); err != nil {
		t.Fatal(err)
	}
	if c.OwnerPid != uint32(os.Getpid()) || c.Flags&vbpf.CfDenyConnect != 0 {
		t.Errorf("entry %+v: the dead owner's flags are still in force", c)
	}
	g.Close()
	for range g.Events() {
	}
}

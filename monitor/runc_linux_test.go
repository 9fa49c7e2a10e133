//go:build linux

package monitor

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func findRunc(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("VORDR_RUNC"), "/var/cache/vordr/bin/runc"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("runc"); err == nil {
		return p
	}
	t.Skip("skipping: no runc (run hack/deps.sh or set VORDR_RUNC)")
	return ""
}

// runcBundle writes a busybox bundle whose process runs script; the spec is
// shaped by the profile exactly as the shim does before runc create.
func runcBundle(t *testing.T, p *Profile, agent *SeccompAgent, script string) (bundle, cgroupsPath string) {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("skipping: needs a static /bin/busybox (apt-get install -y busybox-static)")
	}
	bundle = t.TempDir()
	root := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "dev", "sys", "tmp"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	bb, _ := os.ReadFile("/bin/busybox")
	os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755)
	os.Symlink("busybox", filepath.Join(root, "bin/sh"))
	os.WriteFile(filepath.Join(root, "etc/shadow"), []byte("root:container-secret:19000::::::\n"), 0o600)
	os.WriteFile(filepath.Join(root, "etc/dummy.ko"), []byte("not a module"), 0o644)
	// Age the image: in real life layers are unpacked long before create.
	time.Sleep(20 * time.Millisecond)

	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
	cgroupsPath = "/vordr-test-runc-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: []string{"/bin/busybox", "sh", "-c", script},
			Cwd:  "/", Env: []string{"PATH=/bin"},
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: "vordr-test",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgroupsPath,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace},
			},
			MaskedPaths:   []string{"/proc/kcore"},
			ReadonlyPaths: []string{"/proc/sys"},
		},
	}
	if err := p.ApplySpec(s, WithSeccompAgent(agent)); err != nil {
		t.Fatal(err)
	}
	// strict mounts /tmp noexec, which would stop the drift exec before
	// the guard sees it: this test is about the guard's own denial (the
	// spec hardening is tested on its own), so /tmp stays executable.
	for i := range s.Mounts {
		if s.Mounts[i].Destination == "/tmp" {
			s.Mounts[i].Options = slices.DeleteFunc(s.Mounts[i].Options, func(o string) bool { return o == "noexec" })
		}
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644)
	return bundle, cgroupsPath
}

// TestRuncContainerStrict runs a real runc container under strict the way
// the shim does: ApplySpec, runc create, Attach, runc start.
func TestRuncContainerStrict(t *testing.T) {
	requireRoot(t)
	runc := findRunc(t)
	agent, err := StartSeccompAgent(filepath.Join(t.TempDir(), "seccomp.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	script := `/bin/busybox cat /etc/shadow; echo "rc1=$?"; ` +
		`/bin/busybox cp /bin/busybox /tmp/true; /tmp/true; echo "rc2=$?"; ` +
		`/bin/busybox insmod /etc/dummy.ko; echo "rc3=$?"; ` +
		`/bin/busybox true; echo "rc4=$?"`
	bundle, _ := runcBundle(t, mustProfile(t, "strict"), agent, script)
	id := "vordr-test-" + strconv.Itoa(os.Getpid())
	state := t.TempDir()
	out, _ := os.Create(filepath.Join(t.TempDir(), "out"))
	runcCmd := func(args ...string) *exec.Cmd {
		return exec.Command(runc, append([]string{"--root", state}, args...)...)
	}
	create := runcCmd("create", "--bundle", bundle, id)
	create.Stdout, create.Stderr = out, out
	if err := create.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("runc create: %v: %s", err, b)
	}
	t.Cleanup(func() { runcCmd("delete", "--force", id).Run() })
	st, err := runcCmd("state", id).Output()
	if err != nil {
		t.Fatal(err)
	}
	var rs struct{ Pid int }
	json.Unmarshal(st, &rs)
	cgPath := cgroupV2Path(t, rs.Pid)

	o := testOptions(t)
	o.Seccomp = agent
	g, err := Attach(t.Context(), Target{ContainerID: id, CgroupPath: cgPath, InitPID: rs.Pid, RootfsPath: filepath.Join(bundle, "rootfs")}, mustProfile(t, "strict"), o)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	c := collect(g)
	defer func() { g.Close(); <-c.done }()

	if b, err := runcCmd("start", id).CombinedOutput(); err != nil {
		t.Fatalf("runc start: %v %s", err, b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(rs.Pid)); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(out.Name())
	output := string(b)
	t.Logf("container output:\n%s", output)

	// The first exec the guard's exec tracepoint saw is the entrypoint's
	// (fanotify events of its children may be delivered before it: the two
	// sources interleave).
	first := c.waitFor(t, "exec", func(e Event) bool { return e.Kind == KindExec && strings.HasPrefix(e.Mechanism, "bpf:") })
	if first.PID != rs.Pid || first.Path != "/bin/busybox" {
		t.Errorf("the entrypoint exec is not the first exec the guard saw:%s", summarize(c.snapshot()))
	}
	if !strings.Contains(output, "rc1=1") || strings.Contains(output, "container-secret") {
		t.Errorf("cat /etc/shadow was not denied")
	}
	if strings.Contains(output, "rc2=0") {
		t.Errorf("exec of a file written after start was not denied")
	}
	if strings.Contains(output, "rc3=0") {
		t.Errorf("insmod was not denied")
	}
	if !strings.Contains(output, "rc4=0") {
		t.Errorf("an image binary could not run")
	}
	c.waitFor(t, "denied open", func(e Event) bool { return e.Kind == KindOpen && e.Verdict == Denied && e.Path == "/etc/shadow" })
	c.waitFor(t, "denied drift exec", func(e Event) bool { return e.Kind == KindExec && e.Verdict == Denied && e.Path == "/tmp/true" })
	sc := c.waitFor(t, "denied syscall", func(e Event) bool { return e.Kind == KindSyscall })
	if !strings.Contains(sc.Syscall, "module") || sc.Verdict != Denied {
		t.Errorf("syscall event %+v", sc)
	}
	c.waitFor(t, "forbidden-syscall alert", func(e Event) bool {
		return e.Alert != nil && e.Alert.Rule == RuleForbiddenSyscall && e.Alert.Severity == SevCritical
	})
	for _, e := range c.snapshot() {
		if e.CgroupID != g.CgroupID() {
			t.Errorf("event of another cgroup: %+v", e)
		}
	}
}

func cgroupV2Path(t *testing.T, pid int) string {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return filepath.Join("/sys/fs/cgroup/unified", rest)
		}
	}
	t.Fatalf("no cgroup v2 line for pid %d", pid)
	return ""
}

//go:build linux

package monitor

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// miniContainer starts busybox sh chrooted into a private tmpfs rootfs, in
// its own mount namespace and the test cgroup: the shape of a runc container
// after create (init exists, nothing of the workload ran yet). The shell
// waits for a line on stdin before running script.
type miniContainer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   bytes.Buffer
	root  string
}

func startMini(t *testing.T, cg *testCgroup, script string) *miniContainer {
	t.Helper()
	return startMiniOn(t, cg, script, false)
}

// startMiniOn is startMini with the rootfs either a tmpfs or, like a
// containerd snapshot, an overlay whose lower layer holds the image.
func startMiniOn(t *testing.T, cg *testCgroup, script string, overlay bool) *miniContainer {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("skipping: needs a static /bin/busybox (apt-get install -y busybox-static)")
	}
	base := t.TempDir()
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(base, unix.MNT_DETACH) })
	root := filepath.Join(base, "rootfs")
	image := root
	if overlay {
		image = filepath.Join(base, "lower")
	}
	for _, d := range []string{"rootfs", "lower", "upper", "work"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	for _, d := range []string{"bin", "etc", "tmp"} {
		os.MkdirAll(filepath.Join(image, d), 0o755)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(image, "bin/busybox"), bb, 0o755)
	os.WriteFile(filepath.Join(image, "etc/shadow"), []byte("root:container-secret:19000::::::\n"), 0o600)
	// Age the image past the filesystem clock's tick: in real life layers
	// are unpacked long before create, and a file stamped in the same tick
	// as the attach counts as changed after it (the safe side).
	time.Sleep(20 * time.Millisecond)
	if overlay {
		opts := "lowerdir=" + image + ",upperdir=" + filepath.Join(base, "upper") + ",workdir=" + filepath.Join(base, "work")
		if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
			t.Fatalf("mount overlay: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	}

	m := &miniContainer{root: root}
	m.cmd = exec.Command("/bin/busybox", "sh", "-c", "read go; "+script)
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Unshareflags: unix.CLONE_NEWNS, UseCgroupFD: true, CgroupFD: cg.fd}
	m.cmd.Stdout, m.cmd.Stderr = &m.out, &m.out
	m.stdin, _ = m.cmd.StdinPipe()
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start mini container: %v", err)
	}
	t.Cleanup(func() { m.cmd.Process.Kill(); m.cmd.Wait() })
	return m
}

func (m *miniContainer) run(t *testing.T) string {
	t.Helper()
	m.stdin.Write([]byte("go\n"))
	m.stdin.Close()
	m.cmd.Wait()
	return m.out.String()
}

const miniScript = `/bin/busybox cat /etc/shadow; echo "rc1=$?"; ` +
	`/bin/busybox cp /bin/busybox /tmp/true; /tmp/true true; echo "rc2=$?"; ` +
	`/bin/busybox true; echo "rc3=$?"`

func TestStrictDeniesSensitiveOpenAndDriftExec(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	m := startMini(t, cg, miniScript)
	g, c := attach(t, cg, miniStrict(t), testOptions(t), m.cmd.Process.Pid)
	mech := g.Mechanisms()
	if !strings.HasPrefix(mech["exec.drift"], "deny:") || !strings.Contains(mech["exec.drift"], "fanotify FAN_OPEN_EXEC_PERM") || !strings.Contains(mech["files"], "FAN_OPEN_PERM") {
		t.Fatalf("mechanisms %v, want fanotify exec and open permission marks", mech)
	}
	out := m.run(t)
	if !strings.Contains(out, "rc1=1") || strings.Contains(out, "container-secret") || !strings.Contains(out, "not permitted") {
		t.Errorf("cat /etc/shadow inside strict: %q, want EPERM", out)
	}
	if strings.Contains(out, "rc2=0") {
		t.Errorf("exec of a file written after start succeeded under strict: %q", out)
	}
	if !strings.Contains(out, "rc3=0") {
		t.Errorf("exec of an image file failed under strict: %q", out)
	}
	// The host still reads its own /etc/shadow.
	if _, err := os.ReadFile("/etc/shadow"); err != nil {
		t.Errorf("host cannot read its own /etc/shadow: %v", err)
	}
	e := c.waitFor(t, "denied open", func(e Event) bool { return e.Kind == KindOpen && e.Verdict == Denied })
	if e.Path != "/etc/shadow" || e.CgroupID != cg.id {
		t.Errorf("open event %+v", e)
	}
	c.waitFor(t, "denied drift exec", func(e Event) bool {
		return e.Kind == KindExec && e.Verdict == Denied && e.Drift && e.Path == "/tmp/true"
	})
	c.waitFor(t, "sensitive-file alert", func(e Event) bool { return e.Alert != nil && e.Alert.Rule == RuleSensitiveFile })
	c.waitFor(t, "drift alert", func(e Event) bool {
		return e.Alert != nil && e.Alert.Rule == RuleExecDrift && e.Alert.Severity == SevCritical
	})
	for _, e := range c.snapshot() {
		if e.Kind == KindExec && e.Verdict == Allowed && strings.HasSuffix(e.Path, "/tmp/true") {
			t.Errorf("a denied exec was also reported as run: %+v", e)
		}
	}
}

func TestBalancedAlertsWithoutDenying(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	m := startMini(t, cg, miniScript)
	g, c := attach(t, cg, mustProfile(t, "balanced"), testOptions(t), m.cmd.Process.Pid)
	out := m.run(t)
	t.Logf("mechanisms %v", g.Mechanisms())
	if !strings.Contains(out, "container-secret") || !strings.Contains(out, "rc2=0") {
		t.Errorf("balanced must not deny: %q", out)
	}
	e := c.waitFor(t, "open", func(e Event) bool { return e.Kind == KindOpen })
	if e.Verdict != Allowed || e.Path != "/etc/shadow" {
		t.Errorf("open event %+v", e)
	}
	c.waitFor(t, "sensitive-file alert", func(e Event) bool { return e.Alert != nil && e.Alert.Rule == RuleSensitiveFile })
	c.waitFor(t, "drift exec", func(e Event) bool { return e.Kind == KindExec && e.Drift && e.Path == "/tmp/true" })
	c.waitFor(t, "drift alert", func(e Event) bool { return e.Alert != nil && e.Alert.Rule == RuleExecDrift })
}

// A process sharing the host's mount namespace must never get mount marks:
// they would apply to the host's own mounts.
func TestNoMountMarksInHostNamespace(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	sleeper := cg.cmd("/bin/sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	p := mustProfile(t, "name = \"x\"\n[exec]\ndrift = \"deny\"\n")
	g, _ := attach(t, cg, p, testOptions(t), sleeper.Process.Pid)
	if m := g.Mechanisms()["exec.drift"]; !strings.HasPrefix(m, "kill:") {
		t.Errorf("exec.drift = %q, want the SIGKILL fallback (no host mount marks)", m)
	}
	// A new file run by the host is unaffected.
	if err := exec.Command(copyExecutable(t, t.TempDir())).Run(); err != nil {
		t.Errorf("host exec affected: %v", err)
	}
}

func TestFanotifyCyclesLeaveNothing(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	m := startMini(t, cg, "true")
	o := testOptions(t)
	p := miniStrict(t)
	before := openFDs(t)
	for i := 0; i < 20; i++ {
		g, err := Attach(t.Context(), Target{ContainerID: "cycle", CgroupPath: cg.path, InitPID: m.cmd.Process.Pid}, p, o)
		if err != nil {
			t.Fatal(err)
		}
		if g.files == nil || g.files.execMarks == 0 {
			t.Fatalf("no fanotify marks placed: %v", g.Mechanisms())
		}
		g.Close()
		for range g.Events() {
		}
	}
	if after := openFDs(t); after > before {
		t.Errorf("%d descriptors (fanotify groups, maps, links) leaked over 20 cycles", after-before)
	}
	// With the group closed no mark remains: the container runs freely.
	if out := m.run(t); out != "" {
		t.Errorf("unexpected output %q", out)
	}
}

// On an overlay rootfs (what containerd's snapshotter gives runc) image files
// keep the lower layer's ctime; copies and copy-ups are new.
func TestStrictOnOverlay(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	script := miniScript + `; /bin/busybox chmod 755 /bin/busybox; /bin/busybox true; echo "rc5=$?"`
	m := startMiniOn(t, cg, script, true)
	_, c := attach(t, cg, miniStrict(t), testOptions(t), m.cmd.Process.Pid)
	out := m.run(t)
	if !strings.Contains(out, "rc1=1") || strings.Contains(out, "rc2=0") || !strings.Contains(out, "rc3=0") {
		t.Errorf("strict on overlay: %q", out)
	}
	// chmod copied /bin/busybox up: it is no longer the image's file.
	if strings.Contains(out, "rc5=0") {
		t.Errorf("exec of a copied-up (changed) image file was allowed: %q", out)
	}
	c.waitFor(t, "denied drift exec", func(e Event) bool { return e.Kind == KindExec && e.Verdict == Denied && e.Path == "/tmp/true" })
}

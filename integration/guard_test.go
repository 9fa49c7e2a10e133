//go:build linux

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vordr-project/vordr/alerts"
	vbpf "github.com/vordr-project/vordr/bpf"
	"github.com/vordr-project/vordr/eventlog"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/monitor"
)

// profileRuntime is the vordr runtime with a given default profile.
func profileRuntime(profile string) runtimeCase {
	return runtimeCase{"vordr-" + profile, vordrRuntime, func(d *daemon.Daemon) any {
		return &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(fmt.Sprintf("profile = %q", profile)))}
	}}
}

// profileFileRuntime is vordr with an operator profile file, declared in the
// runtime config and made the default.
func profileFileRuntime(t *testing.T, p *monitor.Profile) runtimeCase {
	t.Helper()
	b, err := p.TOML()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), p.Name+".toml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return configRuntime(p.Name, fmt.Sprintf("profile = %q\n[profiles.%s]\npath = %q\nlevel = \"strict\"", p.Name, p.Name, path))
}

// events reads a container's event log (complete once the task is deleted).
// events returns a deleted container's event log once it is complete: the
// shim closes the guard and writes the summary just after Delete returns,
// and a killed shim's log ends with the "guard lost" record.
func events(t *testing.T, d *daemon.Daemon, id string) []monitor.Event {
	t.Helper()
	var out []monitor.Event
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out = readEvents(t, d, id)
		if n := len(out); n > 0 && (out[n-1].Kind == "summary" || alertRule(monitor.RuleGuardDegraded)(out[n-1])) || time.Now().After(deadline) {
			break
		}
	}
	if len(out) == 0 {
		t.Fatalf("no events logged for %s in %s", id, d.EventsDir)
	}
	return out
}

func readEvents(t *testing.T, d *daemon.Daemon, id string) []monitor.Event {
	t.Helper()
	var out []monitor.Event
	err := eventlog.Read(d.EventsDir, d.Namespace, id, func(line []byte) error {
		var e monitor.Event
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("event log line %q: %w", line, err)
		}
		if e.Kind != "" {
			out = append(out, e)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

func hasEvent(evs []monitor.Event, pred func(monitor.Event) bool) bool {
	for _, e := range evs {
		if pred(e) {
			return true
		}
	}
	return false
}

func alertRule(rule string) func(monitor.Event) bool {
	return func(e monitor.Event) bool {
		return e.Kind == monitor.KindAlert && e.Alert != nil && e.Alert.Rule == rule
	}
}

// runIn runs args to completion under rt and returns exit code, output and
// the container id (its events are logged under it).
func runIn(t *testing.T, rt runtimeCase, args []string, opts ...oci.SpecOpts) (uint32, *output, string) {
	t.Helper()
	e := newEnv(t, shared, rt)
	id := uniqueID(t)
	code, out := e.runTask(e.container(id, args, opts...))
	return code, out, id
}

func TestGuardEntrypointExecIsFirstEvent(t *testing.T) {
	code, _, id := runIn(t, profileRuntime("balanced"), []string{"sh", "-c", "echo first; /bin/true second"})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	evs := events(t, shared, id)
	if evs[0].Kind != monitor.KindGuard || len(evs[0].Mechanisms) == 0 {
		t.Errorf("first event %+v, want the guard report with its mechanisms", evs[0])
	}
	var execs []monitor.Event
	for _, e := range evs {
		if e.Kind == monitor.KindExec {
			execs = append(execs, e)
		}
	}
	if len(execs) < 2 {
		t.Fatalf("execs %+v, want the entrypoint and /bin/true", execs)
	}
	if !strings.HasSuffix(execs[0].Path, "/sh") || !strings.Contains(strings.Join(execs[0].Args, " "), "echo first") {
		t.Errorf("first exec %q %q, want the entrypoint sh -c …", execs[0].Path, execs[0].Args)
	}
	if execs[1].Path != "/bin/true" {
		t.Errorf("second exec %q, want /bin/true", execs[1].Path)
	}
	if evs[len(evs)-1].Kind == "" {
		t.Error("no summary")
	}
}

func TestGuardSensitiveFile(t *testing.T) {
	t.Run("balanced alerts", func(t *testing.T) {
		code, out, id := runIn(t, profileRuntime("balanced"), []string{"cat", "/etc/shadow"})
		if code != 0 || !strings.HasPrefix(out.stdout.String(), "root:") {
			t.Fatalf("balanced must allow the read: exit %d, %q %q", code, out.stdout.String(), out.stderr.String())
		}
		evs := events(t, shared, id)
		if !hasEvent(evs, alertRule(monitor.RuleSensitiveFile)) {
			t.Errorf("no %s alert in %+v", monitor.RuleSensitiveFile, evs)
		}
	})
	t.Run("strict denies", func(t *testing.T) {
		// The host keeps reading its own /etc/shadow while a strict container is guarded.
		e := newEnv(t, shared, profileRuntime("strict"))
		id := uniqueID(t)
		ctr := e.container(id, []string{"sleep", "60"})
		task, err := ctr.NewTask(e.ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		code, out := e.exec(ctr, task, "cat", "cat", "/etc/shadow")
		if code == 0 || strings.Contains(out.stdout.String(), "root:") {
			t.Errorf("strict: cat /etc/shadow exit %d stdout %q, want a denial", code, out.stdout.String())
		}
		if !strings.Contains(out.stderr.String(), "denied") && !strings.Contains(out.stderr.String(), "not permitted") {
			t.Errorf("strict: stderr %q, want EPERM/EACCES visible inside", out.stderr.String())
		}
		if data, err := os.ReadFile("/etc/shadow"); err != nil || len(data) == 0 {
			t.Errorf("the host cannot read its own /etc/shadow while the container is guarded: %v", err)
		}
		ch, _ := task.Wait(e.ctx)
		task.Kill(e.ctx, syscall.SIGKILL)
		<-ch
		if _, err := task.Delete(e.ctx); err != nil {
			t.Fatal(err)
		}
		evs := events(t, shared, id)
		if !hasEvent(evs, func(e monitor.Event) bool {
			return e.Kind == monitor.KindOpen && e.Path == "/etc/shadow" && e.Verdict == monitor.Denied
		}) {
			t.Errorf("no denied open of /etc/shadow in %+v", evs)
		}
	})
}

// ncScript listens on a loopback port inside the container's own network
// namespace and connects to it.
const ncScript = `nc -l -p 9999 >/dev/null & sleep 0.5; echo ping | nc -w 2 127.0.0.1 9999; echo rc=$?`

func TestGuardConnect(t *testing.T) {
	t.Run("balanced sees it", func(t *testing.T) {
		_, out, id := runIn(t, profileRuntime("balanced"), []string{"sh", "-c", ncScript})
		if !strings.Contains(out.stdout.String(), "rc=0") {
			t.Errorf("balanced: connect failed: %q %q", out.stdout.String(), out.stderr.String())
		}
		evs := events(t, shared, id)
		if !hasEvent(evs, func(e monitor.Event) bool {
			return e.Kind == monitor.KindConnect && e.Addr.String() == "127.0.0.1" && e.Port == 9999 && e.Verdict == monitor.Allowed
		}) {
			t.Errorf("no allowed connect to 127.0.0.1:9999 in %+v", evs)
		}
	})
	t.Run("strict denies", func(t *testing.T) {
		_, out, id := runIn(t, profileRuntime("strict"), []string{"sh", "-c", ncScript})
		if strings.Contains(out.stdout.String(), "rc=0") {
			t.Errorf("strict: connect succeeded: %q", out.stdout.String())
		}
		if !strings.Contains(out.stderr.String(), "not permitted") {
			t.Errorf("strict: stderr %q, want EPERM inside", out.stderr.String())
		}
		evs := events(t, shared, id)
		if !hasEvent(evs, func(e monitor.Event) bool {
			return e.Kind == monitor.KindConnect && e.Port == 9999 && e.Verdict == monitor.Denied
		}) {
			t.Errorf("no denied connect in %+v", evs)
		}
	})
}

// TestGuardDriftExec: a file written after start cannot be executed under strict.
func TestGuardDriftExec(t *testing.T) {
	// A writable, exec-able scratch mount: strict's root is read-only and
	// /dev/shm is noexec, which would deny the exec without vordr.
	scratch := oci.WithMounts([]specs.Mount{{Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"rw", "size=16m", "mode=1777"}}})
	script := "cp /bin/busybox /scratch/echo && /scratch/echo drift-ran; echo rc=$?"
	t.Run("balanced alerts", func(t *testing.T) {
		// The drifted program stays alive until the alert is on disk, so
		// the shim can read what it runs (the digest is evidence read from
		// the live process): no race with its exit on a loaded machine.
		e := newEnv(t, shared, profileRuntime("balanced"))
		id := uniqueID(t)
		ctr := e.container(id, []string{"sh", "-c", "cp /bin/busybox /scratch/sh && exec /scratch/sh -c 'echo drift-ran; sleep 300'"}, scratch)
		out := &output{}
		task, err := ctr.NewTask(e.ctx, e.ioCreator(out))
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func() error {
			found := false
			err := eventlog.Read(shared.EventsDir, shared.Namespace, id, func(line []byte) error {
				var ev monitor.Event
				if json.Unmarshal(line, &ev) == nil && alertRule(monitor.RuleExecDrift)(ev) && strings.HasPrefix(ev.Alert.Evidence["digest"], "sha256:") {
					found = true
				}
				return nil
			})
			if err != nil || !found {
				return fmt.Errorf("no %s alert with the file's digest yet (%v)", monitor.RuleExecDrift, err)
			}
			return nil
		})
		task.Delete(e.ctx, containerd.WithProcessKill)
		if !strings.Contains(out.stdout.String(), "drift-ran") {
			t.Errorf("balanced must allow the exec: %q %q", out.stdout.String(), out.stderr.String())
		}
	})
	t.Run("strict denies", func(t *testing.T) {
		_, out, _ := runIn(t, profileRuntime("strict"), []string{"sh", "-c", script}, scratch)
		if strings.Contains(out.stdout.String(), "drift-ran") {
			t.Fatalf("strict ran a file written after start: %q", out.stdout.String())
		}
		if !strings.Contains(out.stdout.String(), "rc=126") {
			t.Errorf("strict: %q, want the exec refused (rc=126)", out.stdout.String())
		}
	})
	t.Run("strict guard denies on an exec-able mount", func(t *testing.T) {
		// strict mounts /scratch noexec (the kernel refuses before any
		// guard sees the exec); an operator profile that allows the
		// volume exec-able leaves the guard's own denial as the line.
		p := monitor.MustBuiltin("strict")
		p.Name = "strict-execable"
		p.Spec.Harden = false
		rt := profileFileRuntime(t, p)
		_, out, id := runIn(t, rt, []string{"sh", "-c", script}, scratch)
		if strings.Contains(out.stdout.String(), "drift-ran") {
			t.Fatalf("strict ran a file written after start: %q", out.stdout.String())
		}
		evs := events(t, shared, id)
		if !hasEvent(evs, func(e monitor.Event) bool {
			return e.Kind == monitor.KindExec && e.Drift && (e.Verdict == monitor.Denied || e.Verdict == monitor.Killed)
		}) && !hasEvent(evs, func(e monitor.Event) bool {
			return e.Kind == monitor.KindOpen && e.Verdict == monitor.Denied && strings.HasSuffix(e.Path, "/scratch/echo")
		}) {
			t.Errorf("no denied drift exec in %+v", evs)
		}
	})
}

// TestGuardIsolation: two containers' events never mix, and a host process
// doing the same things is never reported.
func TestGuardIsolation(t *testing.T) {
	rt := profileRuntime("balanced")
	var wg sync.WaitGroup
	ids := make([]string, 2)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _, ids[i] = runIn(t, rt, []string{"sh", "-c", fmt.Sprintf("for n in 1 2 3 4 5; do /bin/echo marker-%d-$n; cat /etc/shadow >/dev/null; sleep 0.1; done", i)})
		}(i)
	}
	// Meanwhile the host does the same.
	for n := 0; n < 5; n++ {
		exec := func(args ...string) { _ = runHost(args...) }
		exec("/bin/echo", "marker-host")
		exec("cat", "/etc/shadow")
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	for i, id := range ids {
		evs := events(t, shared, id)
		own := 0
		for _, e := range evs {
			args := strings.Join(e.Args, " ")
			if strings.Contains(args, "marker-host") {
				t.Errorf("container %d reports a host process: %+v", i, e)
			}
			if strings.Contains(args, fmt.Sprintf("marker-%d", 1-i)) {
				t.Errorf("container %d reports the other container's exec: %+v", i, e)
			}
			if e.ContainerID != "" && e.ContainerID != id {
				t.Errorf("container %d: event attributed to %s", i, e.ContainerID)
			}
			if e.Kind == monitor.KindExec && e.Path == "/bin/echo" && strings.Contains(args, fmt.Sprintf("marker-%d-", i)) {
				own++
			}
		}
		if own != 5 {
			t.Errorf("container %d: %d of its 5 marker execs seen", i, own)
		}
	}
}

// TestGuardExecBurstAlert: an exec burst raises an anomaly alert, in the log
// and on containerd's event bus.
func TestGuardExecBurstAlert(t *testing.T) {
	e := newEnv(t, shared, profileRuntime("balanced"))
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	evCh, errCh := e.c.EventService().Subscribe(ctx, `topic=="`+alerts.TopicAlert+`"`)
	_, _, id := runIn(t, profileRuntime("balanced"), []string{"sh", "-c", "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done"})
	if !hasEvent(events(t, shared, id), alertRule(monitor.RuleExecBurst)) {
		t.Errorf("no %s alert in the event log", monitor.RuleExecBurst)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case env := <-evCh:
			mt, data, ok := alerts.Decode(env.Event)
			if !ok || mt != alerts.MediaTypeAlert {
				continue
			}
			var a monitor.Alert
			if err := json.Unmarshal(data, &a); err != nil {
				t.Fatal(err)
			}
			if a.ContainerID == id && a.Rule == monitor.RuleExecBurst {
				return
			}
		case err := <-errCh:
			t.Fatal(err)
		case <-deadline:
			t.Fatal("no exec-burst alert on the event bus")
		}
	}
}

// TestGuardForkBurstAtStart: a burst of 400 processes right at start, in a
// container that exits at once, raises fork-bomb: rates count from zero at
// attach, and the counters are judged once more when init exits.
func TestGuardForkBurstAtStart(t *testing.T) {
	_, _, id := runIn(t, profileRuntime("balanced"), []string{"sh", "-c", "i=0; while [ $i -lt 400 ]; do (:) & i=$((i+1)); done; wait"})
	evs := events(t, shared, id)
	if !hasEvent(evs, alertRule(monitor.RuleForkBomb)) {
		t.Errorf("no %s alert for 400 processes at start: %d events", monitor.RuleForkBomb, len(evs))
	}
}

// TestGuardNoTeardownAlerts: quiet containers never raise rate alerts,
// at exit or at teardown (counters read after the entry is gone used to
// wrap around to 18446744073709551615 execs/s).
func TestGuardNoTeardownAlerts(t *testing.T) {
	for i := 0; i < 5; i++ {
		_, _, id := runIn(t, profileRuntime("strict"), []string{"true"})
		for _, e := range events(t, shared, id) {
			if e.Kind == monitor.KindAlert && e.Alert != nil && (e.Alert.Rule == monitor.RuleExecBurst || e.Alert.Rule == monitor.RuleForkBomb) {
				t.Errorf("quiet container %s raised %s: %s", id, e.Alert.Rule, e.Alert.Message)
			}
		}
	}
}

// TestGuardCreateDeleteCycles: after 100 create/delete cycles in one shim, no
// per-container BPF state is left beyond the shared set and the shim's memory
// is flat.
func TestGuardCreateDeleteCycles(t *testing.T) {
	rt := profileRuntime("balanced")
	e := newEnv(t, shared, rt)
	group := oci.WithAnnotations(map[string]string{"io.containerd.runc.v2.group": "cycles-" + uniqueID(t)})
	// An anchor keeps the grouped shim alive across the cycles.
	anchor := e.container(uniqueID(t), []string{"sleep", "300"}, group)
	at, err := anchor.NewTask(e.ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := at.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	shim := parentPid(int(at.Pid()))
	cycle := func() {
		ctr := e.container(uniqueID(t), []string{"true"}, group)
		task, err := ctr.NewTask(e.ctx, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		ch, _ := task.Wait(e.ctx)
		if err := task.Start(e.ctx); err != nil {
			t.Fatal(err)
		}
		<-ch
		if _, err := task.Delete(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		cycle()
	}
	rss10 := rssKiB(shim)
	for i := 0; i < 90; i++ {
		cycle()
	}
	rss100 := rssKiB(shim)
	if rss10 == 0 || rss100 == 0 {
		t.Fatalf("cannot read the shim's RSS (pid %d)", shim)
	}
	t.Logf("shim RSS after 10 cycles %d KiB, after 100 cycles %d KiB", rss10, rss100)
	if rss100 > rss10+8*1024 {
		t.Errorf("shim memory grew %d KiB over 90 create/delete cycles", rss100-rss10)
	}
	if n := guardedContainers(t, shim); n != 1 {
		t.Errorf("%d of this shim's containers in the node-wide BPF map, want 1 (the anchor)", n)
	}
}

// guardedContainers counts the entries of the pinned node-wide containers map
// owned by shim (other shims on the node, e.g. a parallel test run, have
// their own).
func guardedContainers(t *testing.T, shim int) int {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(pinnedSet, "map_containers"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n := 0
	var k uint64
	var v vbpf.Container
	it := m.Iterate()
	for it.Next(&k, &v) {
		if int(v.OwnerPid) == shim {
			n++
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func rssKiB(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kib)
			return kib
		}
	}
	return 0
}

// TestVordrEventsCLI: `vordr events` prints a finished container's events
// from its log, and `vordr events --bus` streams alerts from containerd.
func TestVordrEventsCLI(t *testing.T) {
	bin := vordrBinary(t)
	bus := exec.Command(bin, "events", "--bus", "--json", "--address", shared.Address, "--namespace", shared.Namespace)
	busOut := &syncBuffer{}
	bus.Stdout, bus.Stderr = busOut, busOut
	if err := bus.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { bus.Process.Kill(); bus.Wait() }()
	time.Sleep(300 * time.Millisecond) // subscribed before the container runs

	_, _, id := runIn(t, profileRuntime("balanced"), []string{"cat", "/etc/shadow"})
	events(t, shared, id) // the log is complete
	out, err := exec.Command(bin, "events", "--dir", shared.EventsDir, "--namespace", shared.Namespace, "--container", id).CombinedOutput()
	if err != nil {
		t.Fatalf("vordr events: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"guard", "exec", "/bin/cat", "sensitive-file", `"seen"`} {
		if !strings.Contains(text, want) {
			t.Errorf("vordr events output lacks %q:\n%s", want, text)
		}
	}
	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(busOut.String(), `"rule":"sensitive-file"`) || !strings.Contains(busOut.String(), id) {
			return fmt.Errorf("vordr events --bus printed no sensitive-file alert for %s:\n%s", id, busOut.String())
		}
		return nil
	})
}

// TestVordrEventsByName: `vordr events --container` takes what users have at
// hand — an id prefix, or the name nerdctl or Kubernetes gave the container
// — and exits 1 when nothing matches instead of printing nothing.
func TestVordrEventsByName(t *testing.T) {
	bin := vordrBinary(t)
	e := newEnv(t, shared, profileRuntime("balanced"))
	id := uniqueID(t)
	img, err := e.c.GetImage(e.ctx, testImage)
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := e.c.NewContainer(e.ctx, id, containerd.WithImage(img), containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("true")),
		containerd.WithRuntime(e.rt.runtime, e.rt.options(e.d)),
		containerd.WithContainerLabels(map[string]string{"nerdctl/name": "web-" + id}))
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Delete(e.ctx, containerd.WithSnapshotCleanup)
	if code, _ := e.runTask(ctr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	events(t, shared, id) // complete
	vordrEvents := func(container string) (string, int) {
		cmd := exec.Command(bin, "events", "--dir", shared.EventsDir, "--namespace", shared.Namespace, "--address", shared.Address, "--container", container)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	for _, name := range []string{id, id[:len(id)-1], "web-" + id} {
		if out, code := vordrEvents(name); code != 0 || !strings.Contains(out, "exec") || !strings.Contains(out, id) {
			t.Errorf("vordr events --container %s: exit %d\n%s", name, code, out)
		}
	}
	if out, code := vordrEvents("no-such-container-" + id); code != 1 || !strings.Contains(out, "no container") {
		t.Errorf("vordr events for an unknown name: exit %d, want 1 with a message\n%s", code, out)
	}
}

// TestGuardForbiddenSyscallReported: a syscall the profile denies fails with
// EPERM inside and is reported through the shim's seccomp agent.
func TestGuardForbiddenSyscallReported(t *testing.T) {
	_, out, id := runIn(t, profileRuntime("hardened"), []string{"swapoff", "/nonexistent"})
	if !strings.Contains(out.stderr.String(), "not permitted") {
		t.Errorf("swapoff stderr %q, want EPERM from seccomp", out.stderr.String())
	}
	evs := events(t, shared, id)
	if !hasEvent(evs, func(e monitor.Event) bool { return e.Kind == monitor.KindSyscall && e.Syscall == "swapoff" }) {
		t.Errorf("no swapoff syscall event in %+v", evs)
	}
	if !hasEvent(evs, alertRule(monitor.RuleForbiddenSyscall)) {
		t.Errorf("no %s alert", monitor.RuleForbiddenSyscall)
	}
}

// TestEventLogRetention: the logs of deleted containers are pruned to
// [events] keep per namespace (they used to pile up, one per container
// ever run); a running container's log is never touched.
func TestEventLogRetention(t *testing.T) {
	dir := t.TempDir()
	body := fmt.Sprintf("[runc]\nRoot = %q\n[events]\ndir = %q\nkeep = 2\n[gate]\ncache_dir = %q\n", shared.RuncRoot, dir, filepath.Join(shared.Dir, "gate-cache"))
	rt := runtimeCase{"vordr-keep2", vordrRuntime, func(*daemon.Daemon) any { return &runtimeoptions.Options{ConfigBody: []byte(body)} }}
	e := newEnv(t, shared, rt)
	// A long-running container first: its log must survive every prune.
	long := e.container(uniqueID(t), []string{"sleep", "300"})
	lt, err := long.NewTask(e.ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := lt.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 5; i++ {
		id := uniqueID(t)
		ids = append(ids, id)
		if code, _ := e.runTask(e.container(id, []string{"true"})); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
	eventually(t, 10*time.Second, func() error {
		left, err := eventlog.Containers(dir, shared.Namespace)
		if err != nil {
			return err
		}
		if !slices.Contains(left, long.ID()) {
			return fmt.Errorf("the running container's log was pruned: %v", left)
		}
		// The prune after each Delete keeps the 2 newest finished logs.
		if len(left) > 3 || slices.Contains(left, ids[0]) || slices.Contains(left, ids[1]) || slices.Contains(left, ids[2]) {
			return fmt.Errorf("logs left %v, want the running one and the 2 newest", left)
		}
		return nil
	})
	lt.Delete(e.ctx, containerd.WithProcessKill)
}

// TestGuardWebhook: an alert reaches the operator's webhook ([events]
// webhook), posted by the shim's helper (vordr-verifier webhook), as the
// same JSON the event log holds.
func TestGuardWebhook(t *testing.T) {
	got := make(chan monitor.Alert, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a monitor.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err == nil {
			select {
			case got <- a:
			default:
			}
		}
	}))
	defer srv.Close()
	rt := runtimeCase{"vordr-webhook", vordrRuntime, func(d *daemon.Daemon) any {
		body := fmt.Sprintf("profile = \"balanced\"\n[runc]\nRoot = %q\n[events]\ndir = %q\nwebhook = %q\n[gate]\ncache_dir = %q\n",
			d.RuncRoot, d.EventsDir, srv.URL+"/alerts", filepath.Join(d.Dir, "gate-cache"))
		return &runtimeoptions.Options{ConfigBody: []byte(body)}
	}}
	code, _, id := runIn(t, rt, []string{"cat", "/etc/shadow"})
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case a := <-got:
			if a.Rule == monitor.RuleSensitiveFile && a.ContainerID == id {
				return
			}
		case <-deadline:
			t.Fatalf("no %s alert for %s reached the webhook", monitor.RuleSensitiveFile, id)
		}
	}
}

//go:build linux

package integration

// Exec appraisal (docs/threat-model.md, docs/profiles.md): under strict with
// a verified image, only files whose bytes are executables of the signed
// image run, whatever the path to exec.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/monitor"
	"github.com/vordr-project/vordr/plugin"
)

// strictGateRuntime is vordr with the strict profile and a strict
// verification policy: the gate verifies, the guard appraises.
func strictGateRuntime(t *testing.T) runtimeCase {
	body := "profile = \"strict\"\n" + gateConfig(t, shared, "strict")
	return runtimeCase{"vordr-strict-gate", vordrRuntime, func(*daemon.Daemon) any {
		return &runtimeoptions.Options{ConfigBody: []byte(body)}
	}}
}

// strictGateToolsRuntime is strictGateRuntime with /tools exempt from
// strict's noexec (the operator's spec.exec_mounts): appraisal is then the
// only line a binary on that volume meets.
func strictGateToolsRuntime(t *testing.T) runtimeCase {
	p := monitor.MustBuiltin("strict")
	p.Name = "strict-tools"
	p.Spec.ExecMounts = []string{"/tools"}
	b, err := p.TOML()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "strict-tools.toml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	body := "profile = \"strict-tools\"\n" + gateConfig(t, shared, "strict") + fmt.Sprintf("[profiles.strict-tools]\npath = %q\nlevel = \"strict\"\n", path)
	return runtimeCase{"vordr-strict-gate-tools", vordrRuntime, func(*daemon.Daemon) any {
		return &runtimeoptions.Options{ConfigBody: []byte(body)}
	}}
}

// toolsDir is a host directory holding a binary that is not in the signed
// image, bind-mounted read-only (so noexec does not apply) at /tools.
func toolsDir(t *testing.T) oci.SpecOpts {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(attackBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tool"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return oci.WithMounts([]specs.Mount{{Type: "bind", Source: dir, Destination: "/tools", Options: []string{"rbind", "ro"}}})
}

// TestAppraisalBindMountedBinary: a binary older than the container, on a
// read-only volume: the ctime drift rule cannot see it, appraisal denies it.
func TestAppraisalBindMountedBinary(t *testing.T) {
	e := newEnv(t, shared, strictGateToolsRuntime(t))
	ref := "docker.io/vordr/appraisal-bind:1"
	importSigned(t, e, ref, "appraisal")
	tools := toolsDir(t)
	args := []string{"/tools/tool", "open-write", "/dev/null"}

	run := func(rt runtimeCase) (string, string) {
		env := newEnv(t, shared, rt)
		ctr := env.imageContainer(ref, uniqueID(t), args, tools)
		out := &output{}
		task, err := ctr.NewTask(env.ctx, env.ioCreator(out))
		if err != nil {
			return ctr.ID(), "create: " + err.Error() // e.g. runc's own exec check on a noexec volume
		}
		env.complete(task)
		return ctr.ID(), out.stdout.String() + out.stderr.String()
	}
	if _, out := run(runcV2); !strings.Contains(out, "OPENED") {
		t.Fatalf("control: runc.v2 runs the volume's binary: %q", out)
	}
	// strict without a verified image falls back to the drift rule, which
	// an old file on an exec-able volume walks past.
	p := monitor.MustBuiltin("strict")
	p.Name = "strict-tools"
	p.Spec.ExecMounts = []string{"/tools"}
	if _, out := run(profileFileRuntime(t, p)); !strings.Contains(out, "OPENED") {
		t.Fatalf("control: strict without appraisal runs an old binary from a volume (the gap appraisal closes): %q", out)
	}
	// strict itself: the volume is noexec, the exec fails before any hook.
	if _, out := run(strictGateRuntime(t)); strings.Contains(out, "OPENED") {
		t.Fatalf("strict ran a binary from a read-only volume: %q", out)
	}
	id, out := run(e.rt)
	if strings.Contains(out, "OPENED") {
		t.Fatalf("strict with appraisal ran a binary that is not in the signed image: %q", out)
	}
	evs := events(t, shared, id)
	if !hasEvent(evs, func(ev monitor.Event) bool {
		return ev.Kind == monitor.KindExec && ev.Verdict == monitor.Denied && ev.Path == "/tools/tool" && strings.HasPrefix(ev.Digest, "sha256:")
	}) {
		t.Errorf("no denied, digest-carrying exec of /tools/tool in %+v", evs)
	}
	if !hasEvent(evs, alertRule(monitor.RuleExecDrift)) {
		t.Errorf("no %s alert", monitor.RuleExecDrift)
	}
}

// TestAppraisalImageBinariesRun: the image's own executables run under
// appraisal, by any name (symlinked applets, execveat of an image file).
func TestAppraisalImageBinariesRun(t *testing.T) {
	e := newEnv(t, shared, strictGateRuntime(t))
	ref := "docker.io/vordr/appraisal-ok:1"
	importSigned(t, e, ref, "appraisal")
	code, out := e.runImage(ref, nil, "sh", "-c", "ls / >/dev/null && cat /etc/marker && /bin/busybox echo direct")
	if code != 0 || out.stdout.String() != "appraisal\ndirect\n" {
		t.Fatalf("image binaries under appraisal: exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
	}
}

// TestFilelessExec: memfd_create + execve("/proc/self/fd/N") and
// execveat(AT_EMPTY_PATH) of a non-image file are denied under strict.
func TestFilelessExec(t *testing.T) {
	attackWorks(t, "FILELESS", []string{"vordr-attack", "memfd-exec"})
	_, out, err := attackFails(t, profileRuntime("strict"), "FILELESS", []string{"vordr-attack", "memfd-exec"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.stdout.String(), "FAILED") {
		t.Errorf("strict memfd exec: %q, want the exec refused", out.stdout.String())
	}

	// execveat(AT_EMPTY_PATH) from a program of the signed image of a file
	// that is not in it: the attack workload is part of this image. /tools
	// is exec-able by the operator's choice, so appraisal is the line.
	e := newEnv(t, shared, strictGateToolsRuntime(t))
	ref := "docker.io/vordr/appraisal-execveat:1"
	attack, err := os.ReadFile(attackBin)
	if err != nil {
		t.Fatal(err)
	}
	path := makeBundle(t, bundleOpts{ref: ref, marker: "execveat", sign: true, files: []testimage.File{{Path: "/bin/vordr-attack", Mode: 0o755, Content: attack}}})
	if _, err := plugin.Import(e.ctx, e.c, path, testKeys(t).policy(t, policy.Strict), plugin.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	removeImage(e, ref)
	// A binary that is not in the image: the workload with one more byte.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "other"), append(attack, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	tools := oci.WithMounts([]specs.Mount{{Type: "bind", Source: dir, Destination: "/tools", Options: []string{"rbind", "ro"}}})
	args := []string{"vordr-attack", "execveat", "/tools/other"}
	env := newEnv(t, shared, runcV2)
	if _, out := env.runTask(env.imageContainer(ref, uniqueID(t), args, tools)); !strings.Contains(out.stdout.String(), "EXECVEAT") {
		t.Fatalf("control: runc.v2 execveat: %q", out.stdout.String())
	}
	id := uniqueID(t)
	_, out = e.runTask(e.imageContainer(ref, id, args, tools))
	if strings.Contains(out.stdout.String(), "EXECVEAT") || !strings.Contains(out.stdout.String(), "FAILED") {
		t.Fatalf("strict with appraisal and execveat of a non-image file: %q", out.stdout.String())
	}
	if !hasEvent(events(t, shared, id), func(ev monitor.Event) bool {
		return ev.Kind == monitor.KindExec && ev.Verdict == monitor.Denied && ev.Digest != ""
	}) {
		t.Error("no denied, appraised exec event")
	}
}

// TestSensitiveFileOtherNames: a hard link to /etc/shadow shipped in the
// image, and the backup /etc/shadow-, are protected like /etc/shadow.
func TestSensitiveFileOtherNames(t *testing.T) {
	dir := t.TempDir()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755)
	for _, a := range []string{"sh", "cat"} {
		os.Symlink("busybox", filepath.Join(dir, "bin", a))
	}
	os.WriteFile(filepath.Join(dir, "etc/shadow"), []byte("root:SECRET:19000::::::\n"), 0o640)
	os.WriteFile(filepath.Join(dir, "etc/shadow-"), []byte("root:SECRET:18000::::::\n"), 0o640)
	if err := os.Link(filepath.Join(dir, "etc/shadow"), filepath.Join(dir, "etc/innocent")); err != nil {
		t.Fatal(err)
	}
	ref := "docker.io/vordr/hardlink:1"
	img, err := testimage.Build(dir, testimage.Options{Name: ref})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "img.tar")
	if err := img.WriteArchiveFile(archive); err != nil {
		t.Fatal(err)
	}
	if err := importArchive(shared, shared.Namespace, archive); err != nil {
		t.Fatal(err)
	}
	removeImage(newEnv(t, shared, runcV2), ref)

	for _, name := range []string{"/etc/innocent", "/etc/shadow-"} {
		t.Run(name, func(t *testing.T) {
			r := newEnv(t, shared, runcV2)
			if _, out := r.runTask(r.imageContainer(ref, uniqueID(t), []string{"cat", name})); !strings.Contains(out.stdout.String(), "SECRET") {
				t.Fatalf("control: runc.v2 reads %s: %q", name, out.stdout.String())
			}
			s := newEnv(t, shared, profileRuntime("strict"))
			id := uniqueID(t)
			if _, out := s.runTask(s.imageContainer(ref, id, []string{"cat", name})); strings.Contains(out.stdout.String(), "SECRET") {
				t.Fatalf("strict read %s: %q", name, out.stdout.String())
			}
			if !hasEvent(events(t, shared, id), func(ev monitor.Event) bool {
				return ev.Kind == monitor.KindOpen && ev.Verdict == monitor.Denied && ev.Path == name
			}) {
				t.Errorf("no denied open of %s reported", name)
			}
		})
	}
}

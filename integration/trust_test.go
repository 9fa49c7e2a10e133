//go:build linux

package integration

// Attacks on the trust boundary (docs/threat-model.md): each test runs the
// attack under vordr with the protection and asserts that it fails with a
// clear error or alert, and runs the same attack where the protection is
// absent (io.containerd.runc.v2, or an operator who allows it) and asserts
// that it works there, so the test proves it can fail.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vordr-project/vordr/alerts"
	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/internal/daemon"
)

// configRuntime is vordr with a runtime config (extra goes before the tables).
func configRuntime(name, extra string) runtimeCase {
	return runtimeCase{"vordr-" + name, vordrRuntime, func(d *daemon.Daemon) any {
		return &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(extra))}
	}}
}

var runcV2 = runtimeCase{"runc.v2", runcRuntime, runcOptions}

// attempt creates a container of the test image under rt and runs args to
// completion. err is Create's error (the container never ran).
func attempt(t *testing.T, rt runtimeCase, args []string, opts ...oci.SpecOpts) (id string, code uint32, out *output, err error) {
	t.Helper()
	e := newEnv(t, shared, rt)
	id = uniqueID(t)
	ctr := e.container(id, args, opts...)
	out = &output{}
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	task, err := ctr.NewTask(ctx, e.ioCreator(out))
	if err != nil {
		return id, 0, out, err
	}
	return id, e.complete(task), out, nil
}

// attackWorks runs args under runc.v2 and fails the test unless word is
// printed: the attack is real where vordr is absent.
func attackWorks(t *testing.T, word string, args []string, opts ...oci.SpecOpts) {
	t.Helper()
	_, code, out, err := attempt(t, runcV2, args, opts...)
	if err != nil || !strings.Contains(out.stdout.String(), word) {
		t.Fatalf("control: under runc.v2 the attack must work (want %q): create %v, exit %d, stdout %q stderr %q",
			word, err, code, out.stdout.String(), out.stderr.String())
	}
}

// attackFails runs args under rt and fails the test if word is printed.
func attackFails(t *testing.T, rt runtimeCase, word string, args []string, opts ...oci.SpecOpts) (string, *output, error) {
	t.Helper()
	id, code, out, err := attempt(t, rt, args, opts...)
	if err == nil && strings.Contains(out.stdout.String(), word) {
		t.Fatalf("%s: the attack worked: exit %d, stdout %q", rt.name, code, out.stdout.String())
	}
	return id, out, err
}

// alertsFor collects vordr alerts from containerd's event bus.
type alertWatch struct {
	ch   chan map[string]string
	stop func()
}

func watchAlerts(t *testing.T) *alertWatch {
	t.Helper()
	e := newEnv(t, shared, runcV2)
	ctx, cancel := context.WithCancel(e.ctx)
	evCh, _ := e.c.EventService().Subscribe(ctx, `topic=="`+alerts.TopicAlert+`"`)
	w := &alertWatch{ch: make(chan map[string]string, 64), stop: cancel}
	go func() {
		for env := range evCh {
			mt, data, ok := alerts.Decode(env.Event)
			if !ok || mt != alerts.MediaTypeAlert {
				continue
			}
			var a map[string]any
			if json.Unmarshal(data, &a) != nil {
				continue
			}
			m := map[string]string{}
			for k, v := range a {
				if s, ok := v.(string); ok {
					m[k] = s
				}
			}
			w.ch <- m
		}
	}()
	t.Cleanup(cancel)
	return w
}

// waitAlert waits for an alert of rule about container id.
func (w *alertWatch) waitAlert(t *testing.T, rule, id string) map[string]string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case a := <-w.ch:
			if a["rule"] == rule && (a["container_id"] == id || a["container"] == id) {
				return a
			}
		case <-deadline:
			t.Fatalf("no %s alert for %s on the event bus", rule, id)
			return nil
		}
	}
}

// TestTrustAnnotationCannotLoosen: the deployer's annotation cannot switch
// the operator's strict profile off, in any form; a refused annotation is an
// InvalidArgument naming the annotation, and an alert.
func TestTrustAnnotationCannotLoosen(t *testing.T) {
	strict := configRuntime("strict", `profile = "strict"`)
	fifo := filepath.Join(t.TempDir(), "profile.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	w := watchAlerts(t)
	read := []string{"cat", "/etc/shadow"}
	for _, tc := range []struct{ name, value string }{
		{"built-in dev", "dev"},
		{"built-in balanced", "balanced"},
		{"inline TOML", "name = \"mine\"\nrequired = false\n[seccomp]\nmode = \"as-given\"\n"},
		{"host path", "/etc/passwd"},
		{"fifo", fifo},
		{"/dev/zero", "/dev/zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			id, out, err := attackFails(t, strict, "root:", read, oci.WithAnnotations(map[string]string{config.AnnotationProfile: tc.value}))
			if err == nil {
				t.Fatalf("Create accepted vordr.io/profile=%q (stdout %q)", tc.value, out.stdout.String())
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), config.AnnotationProfile) || !strings.Contains(err.Error(), "allowed values") {
				t.Errorf("error %v: want InvalidArgument naming %s and the allowed values", err, config.AnnotationProfile)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("refusal took %s (a FIFO or device must not be read)", d)
			}
			w.waitAlert(t, "annotation-refused", id)
		})
	}
	t.Run("control: operator allows loosening to dev", func(t *testing.T) {
		loose := configRuntime("loosen-dev", "profile = \"strict\"\n[annotations]\nloosen = [\"dev\"]")
		_, code, out, err := attempt(t, loose, read, oci.WithAnnotations(map[string]string{config.AnnotationProfile: "dev"}))
		if err != nil || code != 0 || !strings.HasPrefix(out.stdout.String(), "root:") {
			t.Fatalf("with loosening allowed, dev must apply (the attack's effect): create %v exit %d stdout %q", err, code, out.stdout.String())
		}
		// …and without the annotation strict holds.
		_, _, err = attackFails(t, strict, "root:", read)
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("tightening is allowed", func(t *testing.T) {
		bal := configRuntime("balanced", `profile = "balanced"`)
		_, code, out, err := attempt(t, bal, read, oci.WithAnnotations(map[string]string{config.AnnotationProfile: "strict"}))
		if err != nil || code == 0 || strings.HasPrefix(out.stdout.String(), "root:") {
			t.Fatalf("annotation strict over balanced must apply strict: create %v exit %d stdout %q", err, code, out.stdout.String())
		}
	})
}

// TestStrictPrivileged: --privileged under strict: masked and read-only
// paths come back, so host-global /proc/sys/kernel/core_pattern (a known
// escape) cannot be opened for writing. Nothing is ever written to it.
func TestStrictPrivileged(t *testing.T) {
	priv := []oci.SpecOpts{oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices}
	args := []string{"vordr-attack", "open-write", "/proc/sys/kernel/core_pattern"}
	attackWorks(t, "OPENED", args, priv...)
	_, out, err := attackFails(t, profileRuntime("strict"), "OPENED", args, priv...)
	if err != nil {
		t.Fatalf("strict must run a privileged spec neutralised, not refuse it: %v", err)
	}
	if !strings.Contains(out.stdout.String(), "read-only") && !strings.Contains(out.stdout.String(), "denied") {
		t.Errorf("strict: %q, want a read-only / permission error", out.stdout.String())
	}
	// The masks are back too: /proc/interrupts is empty (masked by /dev/null).
	_, _, out, _ = attempt(t, runcV2, []string{"sh", "-c", "wc -c < /proc/interrupts"}, priv...)
	if strings.TrimSpace(out.stdout.String()) == "0" {
		t.Fatalf("control: runc.v2 privileged masks /proc/interrupts")
	}
	_, _, out, err = attempt(t, profileRuntime("strict"), []string{"sh", "-c", "wc -c < /proc/interrupts"}, priv...)
	if err != nil || strings.TrimSpace(out.stdout.String()) != "0" {
		t.Errorf("strict privileged: /proc/interrupts has %q bytes, stderr %q (create %v), want 0 (masked)", out.stdout.String(), out.stderr.String(), err)
	}
}

// TestStrictCapAddSysAdmin: --cap-add SYS_ADMIN with the seccomp profile a
// client computes for it: strict drops the capability and recomputes
// seccomp, so a new mount namespace (out from under the guard's exec marks)
// cannot be made.
func TestStrictCapAddSysAdmin(t *testing.T) {
	opts := []oci.SpecOpts{oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}), seccomp.WithDefaultProfile()}
	args := []string{"vordr-attack", "unshare-mount"}
	attackWorks(t, "UNSHARED", args, opts...)
	_, out, err := attackFails(t, profileRuntime("strict"), "UNSHARED", args, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.stdout.String(), "FAILED") {
		t.Errorf("strict: %q, want the unshare refused", out.stdout.String())
	}
	// User namespaces (root over a private mount table, no capability
	// needed on many hosts) are refused too.
	attackFails(t, profileRuntime("strict"), "UNSHARED", []string{"vordr-attack", "unshare"}, opts...)
}

// TestStrictLoaderExec: a file written at run time can neither be executed
// nor mapped executable (what ld.so does with `ld.so ./file`): strict mounts
// every writable filesystem noexec.
func TestStrictLoaderExec(t *testing.T) {
	script := "cp /bin/busybox /run/x && vordr-attack mmapexec /run/x"
	args := []string{"sh", "-c", script}
	attackWorks(t, "MAPPED", args)
	_, out, err := attackFails(t, profileRuntime("strict"), "MAPPED", args)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.stdout.String(), "FAILED") {
		t.Errorf("strict: %q, want the mapping refused", out.stdout.String())
	}
	// And a volume (a host directory bind-mounted writable) is noexec too.
	vol := t.TempDir()
	bind := oci.WithMounts([]specs.Mount{{Type: "bind", Source: vol, Destination: "/data", Options: []string{"rbind", "rw"}}})
	script = "cp /bin/busybox /data/x && vordr-attack mmapexec /data/x"
	attackWorks(t, "MAPPED", []string{"sh", "-c", script}, bind)
	attackFails(t, profileRuntime("strict"), "MAPPED", []string{"sh", "-c", script}, bind)
}

// TestStrictRefusesWhatItCannotNeutralise: host namespaces and OCI hooks
// (which run on the host as root) fail Create with an error naming the
// field; runc.v2 runs them.
func TestStrictRefusesWhatItCannotNeutralise(t *testing.T) {
	t.Run("host network namespace", func(t *testing.T) {
		host := oci.WithHostNamespace(specs.NetworkNamespace)
		_, code, _, err := attempt(t, runcV2, []string{"true"}, host)
		if err != nil || code != 0 {
			t.Fatalf("control: runc.v2 with the host network: %v exit %d", err, code)
		}
		_, _, _, err = attempt(t, profileRuntime("strict"), []string{"true"}, host)
		if err == nil || !strings.Contains(err.Error(), "linux.namespaces") || !strings.Contains(err.Error(), "network") {
			t.Fatalf("strict with the host network: %v, want a refusal naming linux.namespaces", err)
		}
	})
	t.Run("OCI hook", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "hook-ran")
		withHook := oci.SpecOpts(func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "touch " + marker}}}}
			return nil
		})
		_, _, _, err := attempt(t, runcV2, []string{"true"}, withHook)
		if _, serr := os.Stat(marker); err != nil || serr != nil {
			t.Fatalf("control: under runc.v2 the deployer's hook runs on the host: create %v, marker %v", err, serr)
		}
		os.Remove(marker)
		_, _, _, err = attempt(t, profileRuntime("strict"), []string{"true"}, withHook)
		if err == nil || !strings.Contains(err.Error(), "hooks.createRuntime[0]") {
			t.Fatalf("strict with an OCI hook: %v, want a refusal naming hooks.createRuntime[0]", err)
		}
		if _, serr := os.Stat(marker); serr == nil {
			t.Fatal("the hook ran on the host under strict")
		}
	})
}

// TestTrustRuntimeOptionsAsDeployerInput: a ctr user sends runtime options
// (--runtime-config-path) naming a weaker profile. With the node config's
// trust.runtime_options = "deployer" that is refused; without it the
// options are the operator's, and the attack works (the control).
func TestTrustRuntimeOptionsAsDeployerInput(t *testing.T) {
	orig, err := os.ReadFile(shared.VordrConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(shared.VordrConfig, orig, 0o600) })
	mine := runtimeCase{"vordr-client-options", vordrRuntime, func(d *daemon.Daemon) any {
		return &runtimeoptions.Options{ConfigBody: []byte(`profile = "dev"` + "\n[runc]\nRoot = \"" + d.RuncRoot + "\"\n")}
	}}
	read := []string{"cat", "/etc/shadow"}

	// Control: options trusted as the operator's, the client picks dev.
	if err := os.WriteFile(shared.VordrConfig, []byte(shared.VordrTOML(`profile = "strict"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	whole := runtimeCase{"vordr-client-config", vordrRuntime, func(d *daemon.Daemon) any {
		return &runtimeoptions.Options{ConfigBody: []byte(d.VordrTOML(`profile = "dev"`))}
	}}
	_, code, out, err := attempt(t, whole, read)
	if err != nil || code != 0 || !strings.HasPrefix(out.stdout.String(), "root:") {
		t.Fatalf("control: operator-trusted options must apply dev: create %v exit %d stdout %q", err, code, out.stdout.String())
	}

	if err := os.WriteFile(shared.VordrConfig, []byte(shared.VordrTOML("profile = \"strict\"\n[trust]\nruntime_options = \"deployer\"")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = attackFails(t, mine, "root:", read)
	if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "weaker") {
		t.Fatalf("deployer options loosening strict: %v, want InvalidArgument (weaker)", err)
	}
	// Tightening or harmless runc keys still work.
	ok := runtimeCase{"vordr-client-options-ok", vordrRuntime, func(d *daemon.Daemon) any {
		return &runtimeoptions.Options{ConfigBody: []byte("profile = \"strict\"\n[runc]\nRoot = \"" + d.RuncRoot + "\"\n")}
	}}
	if _, code, _, err := attempt(t, ok, []string{"true"}); err != nil || code != 0 {
		t.Fatalf("deployer options within the node's choice: create %v exit %d", err, code)
	}
}

// TestRuntimeConfigPathNotRegular: a FIFO or a device as the runtime config
// path is refused at once (a FIFO used to hang Create forever).
func TestRuntimeConfigPathNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "runtime.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, "/dev/zero"} {
		rt := runtimeCase{"vordr-config-" + filepath.Base(p), vordrRuntime, func(*daemon.Daemon) any {
			return &runtimeoptions.Options{ConfigPath: p}
		}}
		start := time.Now()
		_, _, _, err := attempt(t, rt, []string{"true"})
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ConfigPath %s: %v, want a refusal naming it", p, err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("ConfigPath %s: refusal took %s", p, d)
		}
	}
}

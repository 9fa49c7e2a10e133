//go:build linux

package monitor

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ctrdseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// deployerSpec is what containerd's client builds for a deployer's options.
func deployerSpec(t *testing.T, opts ...oci.SpecOpts) *specs.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "test")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHardenPrivileged: --privileged under strict gets containerd's masks
// and read-only paths back, read-only sysfs, no host devices, strict's
// capabilities and a seccomp profile computed for them.
func TestHardenPrivileged(t *testing.T) {
	strict := mustProfile(t, "strict")
	s := deployerSpec(t, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.Devices) == 0 {
		t.Fatalf("precondition: privileged spec has masks %v and %d devices", s.Linux.MaskedPaths, len(s.Linux.Devices))
	}
	if err := strict.ApplySpec(s); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/sys/firmware"} {
		if !slices.Contains(s.Linux.MaskedPaths, p) {
			t.Errorf("masked path %s not restored: %v", p, s.Linux.MaskedPaths)
		}
	}
	if !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sysrq-trigger") {
		t.Errorf("read-only paths not restored: %v", s.Linux.ReadonlyPaths)
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("host devices kept: %d", len(s.Linux.Devices))
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || d[0].Allow {
		t.Errorf("device cgroup: %+v", d)
	}
	for _, m := range s.Mounts {
		if m.Type == "sysfs" && (!slices.Contains(m.Options, "ro") || slices.Contains(m.Options, "rw")) {
			t.Errorf("sysfs mount options %v", m.Options)
		}
		if !slices.Contains(m.Options, "ro") && !slices.Contains(m.Options, "noexec") {
			t.Errorf("writable mount %s without noexec: %v", m.Destination, m.Options)
		}
	}
	if s.Linux.RootfsPropagation != "rprivate" {
		t.Errorf("rootfs propagation %q", s.Linux.RootfsPropagation)
	}
	for _, m := range s.Mounts {
		if !slices.Contains(m.Options, "rprivate") || slices.Contains(m.Options, "rslave") || slices.Contains(m.Options, "rshared") {
			t.Errorf("mount %s propagation %v", m.Destination, m.Options)
		}
	}
	if c := s.Process.Capabilities; !slices.Equal(c.Bounding, []string{"CAP_NET_BIND_SERVICE"}) || len(c.Effective) > 1 {
		t.Errorf("capabilities %+v", c)
	}
	if !s.Process.NoNewPrivileges || !s.Root.Readonly {
		t.Error("no_new_privileges / readonly rootfs not set")
	}
	if l := s.Linux.Resources.Pids; l == nil || l.Limit == nil || *l.Limit != strict.Spec.PidsLimit {
		t.Errorf("pids limit %+v", l)
	}
	allowed := allowedSyscalls(s.Linux.Seccomp)
	for _, sc := range []string{"mount", "unshare", "setns", "clone3", "mount_setattr", "ptrace", "bpf"} {
		if allowed[sc] {
			t.Errorf("seccomp allows %s", sc)
		}
	}
}

// TestHardenCapAddSysAdmin: --cap-add SYS_ADMIN: the capability is dropped
// and the seccomp profile containerd computed for it is not kept.
func TestHardenCapAddSysAdmin(t *testing.T) {
	s := deployerSpec(t, oci.WithAddedCapabilities([]string{"CAP_SYS_ADMIN"}))
	s.Linux.Seccomp = ctrdDefault(s) // what nerdctl/CRI compute for the requested caps
	if !allowedSyscalls(s.Linux.Seccomp)["unshare"] {
		t.Fatal("precondition: the profile computed for SYS_ADMIN allows unshare")
	}
	if err := mustProfile(t, "strict").ApplySpec(s); err != nil {
		t.Fatal(err)
	}
	allowed := allowedSyscalls(s.Linux.Seccomp)
	for _, sc := range []string{"unshare", "setns", "mount", "clone3", "umount2", "pivot_root"} {
		if allowed[sc] {
			t.Errorf("seccomp still allows %s after SYS_ADMIN was dropped", sc)
		}
	}
	// clone stays, but only with an argument filter excluding namespace flags.
	for _, r := range s.Linux.Seccomp.Syscalls {
		if r.Action == specs.ActAllow && slices.Contains(r.Names, "clone") && len(r.Args) == 0 {
			t.Errorf("clone allowed without a flag filter: %+v", r)
		}
	}
}

// TestHardenRefuses: what strict cannot neutralise is refused by name.
func TestHardenRefuses(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "host.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bind := func(src string) oci.SpecOpts {
		return oci.WithMounts([]specs.Mount{{Type: "bind", Source: src, Destination: "/host", Options: []string{"rbind", "rw"}}})
	}
	for _, tc := range []struct {
		name string
		opt  oci.SpecOpts
		want string
	}{
		{"host network", oci.WithHostNamespace(specs.NetworkNamespace), "host's network namespace"},
		{"host pid", oci.WithHostNamespace(specs.PIDNamespace), "host's pid namespace"},
		{"host ipc", oci.WithHostNamespace(specs.IPCNamespace), "host's ipc namespace"},
		{"host netns by path", oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/self/ns/net"}), "host's network namespace"},
		{"prestart hook", func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh"}}}
			return nil
		}, "hooks.createRuntime[0]"},
		{"bind host root", bind("/"), "mounts["},
		{"bind /etc", bind("/etc"), "lies in /etc"},
		{"bind /var", bind("/var"), "/var"},
		{"bind /run/containerd", bind("/run/containerd"), "/run/containerd"},
		{"bind below a critical tree", bind("/etc/shadow"), "lies in /etc"},
		{"bind of host procfs below", bind("/proc/sys"), "lies in /proc"},
		{"bind through a magic link", bind("/proc/self/root"), "lies in /proc"},
		{"bind through a symlink", bind(symlinkTo(t, "/etc")), "lies in /etc"},
		{"bind of the gate cache", bind("/var/lib/vordr/gate"), "/var/lib/vordr"},
		{"bind relative source", bind("etc"), "relative bind source"},
		{"bind of a device", bind("/dev/null"), "lies in /dev"},
		{"type rbind of /etc", oci.WithMounts([]specs.Mount{{Type: "rbind", Source: "/etc", Destination: "/x"}}), "lies in /etc"},
		{"second procfs", oci.WithMounts([]specs.Mount{{Type: "proc", Source: "proc", Destination: "/proc2"}}), "mounts proc only at /proc"},
		{"overlay of host dirs", oci.WithMounts([]specs.Mount{{Type: "overlay", Source: "overlay", Destination: "/x", Options: []string{"lowerdir=/etc"}}}), `type "overlay"`},
		{"block device", oci.WithMounts([]specs.Mount{{Type: "ext4", Source: "/dev/vda", Destination: "/x"}}), `type "ext4"`},
		{"binfmt_misc", oci.WithMounts([]specs.Mount{{Type: "binfmt_misc", Source: "binfmt_misc", Destination: "/x"}}), `type "binfmt_misc"`},
		{"comma in an option", oci.WithMounts([]specs.Mount{{Type: "tmpfs", Source: "tmpfs", Destination: "/x", Options: []string{"size=1m,exec"}}}), "separator"},
		{"host network interface", func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Linux.NetDevices = map[string]specs.LinuxNetDevice{"eth0": {Name: "eth1"}}
			return nil
		}, "linux.netDevices"},
		{"bind a socket", bind(sock), "CVE-2020-15257"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := deployerSpec(t, tc.opt)
			err := mustProfile(t, "strict").ApplySpec(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrSpecRefused) {
				t.Fatalf("ApplySpec = %v, want refusal naming %q", err, tc.want)
			}
			// balanced keeps runc.v2's behaviour for the same spec.
			if err := mustProfile(t, "balanced").ApplySpec(deployerSpec(t, tc.opt)); err != nil {
				t.Errorf("balanced refused it: %v", err)
			}
		})
	}
	// The operator may allow what strict refuses, by name.
	p := mustProfile(t, "strict")
	p.Spec.AllowHostNamespaces = []string{"network"}
	p.Spec.AllowBind = []string{sock}
	if err := p.ApplySpec(deployerSpec(t, oci.WithHostNamespace(specs.NetworkNamespace), bind(sock))); err != nil {
		t.Errorf("operator allowance ignored: %v", err)
	}
	// Ordinary volumes, read-only or writable (the last of ro/rw wins, as
	// in runc), get noexec, nosuid, nodev; so do Kubernetes volume paths.
	for _, opts := range [][]string{{"rbind", "rw"}, {"rbind", "ro"}, {"rbind", "ro", "rw"}} {
		s := deployerSpec(t, oci.WithMounts([]specs.Mount{{Type: "bind", Source: t.TempDir(), Destination: "/v", Options: opts}}))
		if err := mustProfile(t, "strict").ApplySpec(s); err != nil {
			t.Fatal(err)
		}
		m := s.Mounts[len(s.Mounts)-1]
		for _, o := range []string{"noexec", "nosuid", "nodev"} {
			if !slices.Contains(m.Options, o) {
				t.Errorf("volume %v: options %v lack %s", opts, m.Options, o)
			}
		}
		if want := opts[len(opts)-1]; !slices.Contains(m.Options, want) || slices.Contains(m.Options, map[string]string{"ro": "rw", "rw": "ro"}[want]) {
			t.Errorf("volume %v: options %v, want only %s", opts, m.Options, want)
		}
	}
	for _, src := range []string{"/var/lib/kubelet/pods/1/volumes/kubernetes.io~secret/s", "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/1/hosts", "/run/user/1/x"} {
		if err := mustProfile(t, "strict").ApplySpec(deployerSpec(t, bind(src))); err != nil {
			t.Errorf("bind of %s (a CRI volume path) refused: %v", src, err)
		}
	}
}

// TestApplySpecNilCapabilities: a process spec without capabilities (valid
// OCI, sent by containerd clients for exec) must not crash any profile.
func TestApplySpecNilCapabilities(t *testing.T) {
	for _, name := range BuiltinProfiles() {
		s := deployerSpec(t)
		s.Process.Capabilities = nil
		s.Linux.Seccomp = nil
		if err := mustProfile(t, name).ApplySpec(s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		mustProfile(t, name).ApplyProcess(&specs.Process{Args: []string{"sh"}})
	}
}

// allowedSyscalls lists the syscalls a profile allows unconditionally or
// with an argument filter (either way, reachable).
func allowedSyscalls(sc *specs.LinuxSeccomp) map[string]bool {
	out := map[string]bool{}
	if sc == nil {
		return out
	}
	denied := map[string]bool{}
	for _, r := range sc.Syscalls {
		for _, n := range r.Names {
			if r.Action == specs.ActAllow {
				out[n] = true
			} else {
				denied[n] = true
			}
		}
	}
	for n := range denied {
		if sc.DefaultAction != specs.ActAllow {
			// libseccomp would refuse a name both allowed and denied; the
			// deny wins in our shaping.
			delete(out, n)
		}
	}
	return out
}

func symlinkTo(t *testing.T, target string) string {
	l := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(target, l); err != nil {
		t.Fatal(err)
	}
	return l
}

func ctrdDefault(s *specs.Spec) *specs.LinuxSeccomp { return ctrdseccomp.DefaultProfile(s) }

// TestPidnsSysctlNeverTheHost: a pid-namespaced sysctl is never written for
// a process in the host's pid namespace (it would apply to the whole host).
func TestPidnsSysctlNeverTheHost(t *testing.T) {
	before, _ := os.ReadFile("/proc/sys/vm/memfd_noexec")
	self, _ := os.Executable()
	if err := SetPidnsSysctl(os.Getpid(), "vm.memfd_noexec", "2", self, nil); err == nil || !strings.Contains(err.Error(), "host's pid namespace") {
		t.Fatalf("SetPidnsSysctl(self) = %v, want a refusal", err)
	}
	if after, _ := os.ReadFile("/proc/sys/vm/memfd_noexec"); string(after) != string(before) {
		t.Fatalf("the host's vm.memfd_noexec changed: %q → %q", before, after)
	}
	if err := SetPidnsSysctl(os.Getpid(), "kernel.core_pattern", "x", self, nil); err == nil {
		t.Fatal("an arbitrary sysctl was accepted")
	}
}

package monitor

import (
	"context"
	"errors"
	"fmt"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"

	ctrdseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrSpecRefused is wrapped when a hardening profile meets a spec field it
// cannot neutralise; the error names the field.
var ErrSpecRefused = errors.New("refused by the security profile")

// ApplySpec shapes an OCI spec before runc create, as the profile says
// (docs/profiles.md). It only ever takes privileges away: capabilities are
// intersected, never added. Calling it twice is harmless.
//
// A profile with spec.harden (strict) does not trust the spec: it recomputes
// what the deployer chose (seccomp for the effective capabilities, masked
// paths, devices, mount flags) and refuses what it cannot neutralise (host
// namespaces, OCI hooks, bind mounts of host-critical paths or sockets), with
// an error that names the field.
//
// With WithSeccompAgent the denied syscalls use SCMP_ACT_NOTIFY and runc
// hands the agent the notification descriptor, so every attempt is reported
// (and still fails with EPERM).
func (p *Profile) ApplySpec(s *specs.Spec, opts ...SpecOption) error {
	var cfg specConfig
	for _, o := range opts {
		o(&cfg)
	}
	if s == nil {
		return errors.New("apply profile: nil spec")
	}
	if s.Process != nil {
		p.ApplyProcess(s.Process)
	}
	if p.ReadonlyRootfs != nil && *p.ReadonlyRootfs {
		if s.Root == nil {
			s.Root = &specs.Root{Path: "rootfs"}
		}
		s.Root.Readonly = true
	}
	if p.Spec.Harden {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if err := p.harden(s, cfg.protected, cfg.pinned); err != nil {
			return err
		}
	}
	if p.Spec.PidsLimit > 0 {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		if s.Linux.Resources.Pids == nil {
			s.Linux.Resources.Pids = &specs.LinuxPids{}
		}
		// Only ever lower it: a spec with a smaller limit keeps it.
		if l := s.Linux.Resources.Pids.Limit; l == nil || *l <= 0 || *l > p.Spec.PidsLimit {
			limit := p.Spec.PidsLimit
			s.Linux.Resources.Pids.Limit = &limit
		}
	}
	switch p.Seccomp.Mode {
	case "recompute":
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		// Never the spec's own profile: it may have been computed for
		// capabilities the intersection above removed (--cap-add
		// SYS_ADMIN keeps clone with namespace flags, mount, setns…).
		// containerd's default for the effective capabilities, plus ours.
		s.Linux.Seccomp = ctrdseccomp.DefaultProfile(withCaps(s))
		applySeccomp(s.Linux, p.Seccomp.Deny, cfg.listener)
	case "default-plus":
		if len(p.Seccomp.Deny) == 0 {
			break
		}
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Seccomp == nil {
			// No profile given (plain `ctr run`): start from containerd's
			// default, computed for the capabilities left after the
			// intersection above, as nerdctl and the CRI plugin do.
			s.Linux.Seccomp = ctrdseccomp.DefaultProfile(withCaps(s))
		}
		applySeccomp(s.Linux, p.Seccomp.Deny, cfg.listener)
	}
	return nil
}

// ApplyUpdate shapes the resources of a task update (ctr task update, the
// CRI's UpdateContainerResources) the way ApplySpec shaped them at create:
// under a hardening profile the device cgroup cannot be opened and the pids
// limit not raised past the profile's.
func (p *Profile) ApplyUpdate(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if p.Spec.Harden && len(r.Devices) > 0 {
		return fmt.Errorf("update field linux.resources.devices: profile %s keeps the device cgroup closed: %w", p.Name, ErrSpecRefused)
	}
	if p.Spec.PidsLimit > 0 && r.Pids != nil {
		if l := r.Pids.Limit; l == nil || *l <= 0 || *l > p.Spec.PidsLimit {
			limit := p.Spec.PidsLimit
			r.Pids.Limit = &limit
		}
	}
	return nil
}

// withCaps returns s, or a copy whose process has an empty capability set
// where the spec has none: containerd's DefaultProfile reads
// Process.Capabilities.Bounding unconditionally, and a spec without
// capabilities (valid OCI) grants none.
func withCaps(s *specs.Spec) *specs.Spec {
	if s.Process != nil && s.Process.Capabilities != nil {
		return s
	}
	c := *s
	proc := specs.Process{}
	if s.Process != nil {
		proc = *s.Process
	}
	proc.Capabilities = &specs.LinuxCapabilities{}
	c.Process = &proc
	return &c
}

// ApplyProcess applies the process-level part of the profile
// (capabilities, no_new_privileges) to a process: the container's init, or
// an exec'd process whose spec the client sends unshaped.
func (p *Profile) ApplyProcess(proc *specs.Process) {
	if proc == nil {
		return
	}
	if p.NoNewPrivileges != nil {
		// Only ever raise it: a profile with no_new_privileges = false does
		// not undo a spec that asked for it.
		proc.NoNewPrivileges = proc.NoNewPrivileges || *p.NoNewPrivileges
	}
	if p.Capabilities.Mode == "intersect" && proc.Capabilities != nil {
		c := proc.Capabilities
		keep := func(l []string) []string {
			out := l[:0:0]
			for _, x := range l {
				if slices.Contains(p.Capabilities.Keep, x) {
					out = append(out, x)
				}
			}
			return out
		}
		c.Bounding = keep(c.Bounding)
		c.Effective = keep(c.Effective)
		c.Permitted = keep(c.Permitted)
		c.Ambient = keep(c.Ambient)
		c.Inheritable = keep(c.Inheritable)
	}
}

// hostCriticalTrees are host trees a hardened container may not bind-mount,
// nor anything inside them, nor any directory containing one: each is a known
// way out (the host's /proc and /sys, devices, system binaries and
// configuration, the runtimes' state and sockets, vordr's own state).
var hostCriticalTrees = []string{
	"/proc", "/sys", "/dev", "/boot", "/etc", "/root", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
	"/run/containerd", "/var/run/containerd", "/run/vordr", "/var/lib/vordr", "/var/cache/vordr", "/var/log/vordr",
	"/var/lib/docker", "/run/docker.sock", "/var/run/docker.sock", "/run/systemd", "/var/log", "/lib/modules",
}

// hostCriticalRoots may not be bind-mounted themselves, nor any directory
// containing them; paths inside them are allowed: the CRI plugin and the
// kubelet bind-mount every Kubernetes volume (secrets, configmaps,
// emptyDirs, hosts files) from below these.
var hostCriticalRoots = []string{"/var/lib/containerd", "/var/lib/kubelet", "/run", "/var/run", "/var", "/home"}

// mountTypes a hardened spec may have, and where the kernel filesystems may
// be mounted: any other type (overlay with host directories, block devices,
// binfmt_misc, nfs…) mounts host objects no check here can see into.
var mountTypes = map[string][]string{
	"bind": nil, "tmpfs": nil, "devpts": nil, "mqueue": nil,
	"proc": {"/proc"}, "sysfs": {"/sys"}, "cgroup": {"/sys/fs/cgroup"}, "cgroup2": {"/sys/fs/cgroup"},
}

// Namespaces a hardened container must have of its own.
var privateNamespaces = []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.NetworkNamespace, specs.UTSNamespace, specs.MountNamespace}

func (p *Profile) harden(s *specs.Spec, protected []string, pinned *[]PinnedSource) error {
	l := s.Linux
	// OCI hooks run on the host, as root, before the container's
	// namespaces confine anything: no profile can shape them.
	if s.Hooks != nil {
		for kind, hs := range map[string][]specs.Hook{
			"prestart": s.Hooks.Prestart, "createRuntime": s.Hooks.CreateRuntime, "createContainer": s.Hooks.CreateContainer,
			"startContainer": s.Hooks.StartContainer, "poststart": s.Hooks.Poststart, "poststop": s.Hooks.Poststop,
		} {
			for i, h := range hs {
				if !slices.Contains(p.Spec.AllowHooks, h.Path) {
					return fmt.Errorf("spec field hooks.%s[%d] (%s): an OCI hook runs on the host as root, which profile %s refuses (the operator may allow it by path in spec.allow_hooks): %w", kind, i, h.Path, p.Name, ErrSpecRefused)
				}
			}
		}
	}
	for _, t := range privateNamespaces {
		i := slices.IndexFunc(l.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t })
		host := i < 0
		if i >= 0 && l.Namespaces[i].Path != "" {
			// The shim runs in the host's namespaces (pid 1's may not be
			// readable, as in some microVMs).
			host = sameNamespace(l.Namespaces[i].Path, "/proc/self/ns/"+nsFile(t))
		}
		if host && !slices.Contains(p.Spec.AllowHostNamespaces, string(t)) {
			return fmt.Errorf("spec field linux.namespaces: the container would share the host's %s namespace, which profile %s refuses (the operator may allow it by name in spec.allow_host_namespaces): %w", t, p.Name, ErrSpecRefused)
		}
	}
	def := defaultSpec()
	// --privileged clears the masks and read-only paths: restore them.
	l.MaskedPaths = union(l.MaskedPaths, def.Linux.MaskedPaths)
	l.ReadonlyPaths = union(l.ReadonlyPaths, def.Linux.ReadonlyPaths)
	// Host devices (--privileged adds every one, --device one) are dropped;
	// runc still creates the standard set (null, zero, full, tty, random,
	// urandom, ptmx) and allows exactly those in the device cgroup.
	l.Devices = nil
	if l.Resources == nil {
		l.Resources = &specs.LinuxResources{}
	}
	l.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	for name := range l.NetDevices {
		// Moving a host interface into the container takes it from the host.
		return fmt.Errorf("spec field linux.netDevices[%q]: a host network interface moved into the container, which profile %s refuses: %w", name, p.Name, ErrSpecRefused)
	}
	// No mount may appear in the container after the guard attached (it
	// would carry neither fanotify marks nor noexec): nothing propagates
	// from the host into the container's mounts, nor out of them.
	l.RootfsPropagation = "rprivate"
	for i := range s.Mounts {
		m := &s.Mounts[i]
		typ := m.Type
		if isBind(m) {
			typ = "bind"
		}
		where, known := mountTypes[typ]
		if !known {
			return fmt.Errorf("spec field mounts[%d] (type %q %s → %s): profile %s mounts only bind, tmpfs, devpts, mqueue, proc, sysfs and cgroup filesystems: %w", i, m.Type, m.Source, m.Destination, p.Name, ErrSpecRefused)
		}
		if where != nil && !slices.Contains(where, path.Clean(m.Destination)) {
			// A second procfs or sysfs elsewhere escapes the masks and
			// read-only paths, which apply to /proc and /sys only.
			return fmt.Errorf("spec field mounts[%d] (%s at %s): profile %s mounts %s only at %s: %w", i, m.Type, m.Destination, p.Name, m.Type, strings.Join(where, ", "), ErrSpecRefused)
		}
		if typ == "bind" {
			if err := p.checkBind(i, m, protected); err != nil {
				return err
			}
			if pinned != nil {
				pin, err := pinSource(m.Source, m.Destination)
				if err != nil {
					return fmt.Errorf("spec field mounts[%d] (bind %s → %s): %v: %w", i, m.Source, m.Destination, err, ErrSpecRefused)
				}
				// The path may have changed since the check above: the
				// inode pinned is checked by its own path, and that inode
				// is what the mount must show (VerifyPinned).
				if err := p.checkBind(i, &specs.Mount{Source: pin.Source, Destination: m.Destination}, protected); err != nil {
					return err
				}
				*pinned = append(*pinned, pin)
			}
		}
		for _, o := range m.Options {
			// Options are joined with commas for mount(2): one with a comma
			// inside would smuggle flags past the checks below.
			if strings.ContainsAny(o, ",\x00") {
				return fmt.Errorf("spec field mounts[%d].options: %q holds a separator: %w", i, o, ErrSpecRefused)
			}
		}
		// --privileged makes sysfs and cgroupfs writable: host-global knobs.
		m.Options = normaliseOptions(m.Options, m.Type == "sysfs" || m.Type == "cgroup" || m.Type == "cgroup2")
		// Nothing outside the image's rootfs may be executed or mapped
		// executable — written at run time (tmpfs, volumes) or brought in
		// read-only (a loader such as ld.so maps a program with mmap, which
		// no exec hook sees) — unless the operator lists the destination.
		m.Options = addOpts(m.Options, "nosuid")
		if !slices.Contains(p.Spec.ExecMounts, path.Clean(m.Destination)) {
			m.Options = addOpts(m.Options, "noexec")
		}
		if m.Destination != "/dev" && m.Destination != "/dev/pts" && m.Type != "devpts" {
			// /dev must keep device nodes working (runc bind-mounts the
			// standard ones there).
			m.Options = addOpts(m.Options, "nodev")
		}
	}
	if s.Root == nil || !s.Root.Readonly {
		// A writable rootfs with a hardening profile: the rootfs cannot be
		// mounted noexec (the image's binaries live there), so refuse.
		return fmt.Errorf("spec field root.readonly: profile %s hardens the spec but leaves the rootfs writable; set readonly_rootfs = true in the profile: %w", p.Name, ErrSpecRefused)
	}
	return nil
}

func (p *Profile) checkBind(i int, m *specs.Mount, protected []string) error {
	if !path.IsAbs(m.Source) {
		return fmt.Errorf("spec field mounts[%d] (bind %q → %s): a relative bind source is resolved by runc against its own working directory: profile %s wants an absolute host path: %w", i, m.Source, m.Destination, p.Name, ErrSpecRefused)
	}
	src := path.Clean(m.Source)
	// The check is about what the mount will show, so symlinks (and magic
	// links such as /proc/self/root) are resolved first.
	resolved, err := evalSymlinks(src)
	if err != nil {
		resolved = src // runc fails on a missing source anyway
	}
	if slices.Contains(p.Spec.AllowBind, src) || slices.Contains(p.Spec.AllowBind, resolved) {
		return nil
	}
	for _, s := range []string{src, resolved} {
		for _, c := range append(slices.Clone(hostCriticalTrees), protected...) {
			if s == "/" || s == c || strings.HasPrefix(c, s+"/") || strings.HasPrefix(s, c+"/") {
				return fmt.Errorf("spec field mounts[%d] (bind %s → %s): the host path is, holds or lies in %s, which profile %s refuses to bind-mount (the operator may allow it by path in spec.allow_bind): %w", i, m.Source, m.Destination, c, p.Name, ErrSpecRefused)
			}
		}
		for _, c := range hostCriticalRoots {
			if s == c || strings.HasPrefix(c, s+"/") {
				return fmt.Errorf("spec field mounts[%d] (bind %s → %s): the host path is or contains %s, which profile %s refuses to bind-mount (the operator may allow it by path in spec.allow_bind): %w", i, m.Source, m.Destination, c, p.Name, ErrSpecRefused)
			}
		}
	}
	if isSocket(resolved) {
		return fmt.Errorf("spec field mounts[%d] (bind %s → %s): a host unix socket gives the container a host service (the CVE-2020-15257 class), which profile %s refuses (the operator may allow it by path in spec.allow_bind): %w", i, m.Source, m.Destination, p.Name, ErrSpecRefused)
	}
	if isDevice(resolved) {
		return fmt.Errorf("spec field mounts[%d] (bind %s → %s): a host device node, which profile %s refuses (the operator may allow it by path in spec.allow_bind): %w", i, m.Source, m.Destination, p.Name, ErrSpecRefused)
	}
	return nil
}

func isBind(m *specs.Mount) bool {
	return m.Type == "bind" || m.Type == "rbind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// normaliseOptions leaves exactly one of ro/rw — the last one given, as runc
// applies them in order, or ro when forced — and rprivate as the only
// propagation flag: no mount may appear in the container after the guard
// attached (it would carry neither fanotify marks nor noexec).
func normaliseOptions(opts []string, forceRO bool) []string {
	ro := forceRO
	out := make([]string, 0, len(opts)+2)
	for _, o := range opts {
		switch o {
		case "ro":
			ro = true
		case "rw":
			ro = forceRO
		case "shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable":
		default:
			out = append(out, o)
		}
	}
	if ro {
		out = append(out, "ro")
	} else {
		out = append(out, "rw")
	}
	return append(out, "rprivate")
}

func addOpts(opts []string, add ...string) []string {
	for _, a := range add {
		if !slices.Contains(opts, a) {
			opts = append(opts, a)
		}
	}
	return opts
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func nsFile(t specs.LinuxNamespaceType) string {
	switch t {
	case specs.NetworkNamespace:
		return "net"
	case specs.MountNamespace:
		return "mnt"
	default:
		return string(t)
	}
}

// defaultSpec is containerd's default Linux spec (masked and read-only
// paths, mounts), the baseline a hardening profile restores.
var defaultSpec = sync.OnceValue(func() *oci.Spec {
	ctx := namespaces.WithNamespace(context.Background(), "vordr")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "vordr-default"})
	if err != nil || s.Linux == nil {
		// GenerateSpec needs nothing but a namespace; keep a safe floor
		// even so.
		return &oci.Spec{Linux: &specs.Linux{
			MaskedPaths:   []string{"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		}}
	}
	return s
})

// SpecOption modifies ApplySpec.
type SpecOption func(*specConfig)

type specConfig struct {
	listener  string
	protected []string
	pinned    *[]PinnedSource
}

// PinnedSource is a bind source a hardening profile checked: the inode it
// checked, to be compared with what runc actually mounted (VerifyPinned).
type PinnedSource struct {
	Destination string
	Source      string
	Dev, Ino    uint64
}

// WithPinnedSources makes a hardening profile record the inode of every bind
// source it checked: a path can be swapped for a symlink between the check
// and runc's mount (another container may own a directory on it), so the
// caller checks with VerifyPinned, after runc create and before start, that
// each mount shows the inode that was checked.
func WithPinnedSources(pins *[]PinnedSource) SpecOption {
	return func(c *specConfig) { c.pinned = pins }
}

// WithProtectedPaths adds host trees a hardened container may not
// bind-mount: the shim passes vordr's own state (the gate's cache, the event
// logs), wherever the operator put it.
func WithProtectedPaths(paths ...string) SpecOption {
	return func(c *specConfig) {
		for _, p := range paths {
			if path.IsAbs(p) {
				c.protected = append(c.protected, path.Clean(p))
			}
		}
	}
}

func applySeccomp(l *specs.Linux, deny []string, listener string) {
	if l.Seccomp == nil {
		// Only reached by callers without a spec-level default: allow by
		// default, deny ours.
		l.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Architectures: nativeArches(),
		}
	}
	sc := l.Seccomp
	action := specs.ActErrno
	if listener != "" {
		action = specs.ActNotify
		sc.ListenerPath = listener
		sc.ListenerMetadata = "vordr"
	}
	// A name both allowed and denied would make libseccomp refuse the
	// filter; ours wins, so strip denied names from the other rules.
	rules := sc.Syscalls[:0]
	for _, r := range sc.Syscalls {
		if slices.Equal(r.Names, deny) && (r.Action == specs.ActErrno || r.Action == specs.ActNotify) {
			continue // ours, from an earlier ApplySpec: re-added below
		}
		if r.Action != specs.ActErrno && r.Action != specs.ActKill && r.Action != specs.ActKillProcess && r.Action != specs.ActKillThread && r.Action != specs.ActTrap {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(deny, n) })
			if len(r.Names) == 0 {
				continue
			}
		}
		rules = append(rules, r)
	}
	r := specs.LinuxSyscall{Names: slices.Clone(deny), Action: action}
	if action == specs.ActErrno {
		eperm := uint(1) // EPERM
		r.ErrnoRet = &eperm
	}
	sc.Syscalls = append(rules, r)
}

func nativeArches() []specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	case "386":
		return []specs.Arch{specs.ArchX86}
	default:
		return nil // native architecture only
	}
}

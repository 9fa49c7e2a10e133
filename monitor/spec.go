package monitor

import (
	"errors"
	"runtime"
	"slices"

	ctrdseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ApplySpec shapes an OCI spec before runc create: seccomp denials,
// capabilities, no_new_privileges and a read-only rootfs, as the profile says
// (docs/profiles.md). It only ever takes privileges away: capabilities are
// intersected, never added, and the spec's own seccomp rules are kept except
// where a denied syscall was explicitly allowed. Calling it twice is harmless.
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
	if p.NoNewPrivileges != nil && s.Process != nil {
		// Only ever raise it: a profile with no_new_privileges = false does
		// not undo a spec that asked for it.
		s.Process.NoNewPrivileges = s.Process.NoNewPrivileges || *p.NoNewPrivileges
	}
	if p.ReadonlyRootfs != nil && *p.ReadonlyRootfs {
		if s.Root == nil {
			s.Root = &specs.Root{Path: "rootfs"}
		}
		s.Root.Readonly = true
	}
	if p.Capabilities.Mode == "intersect" && s.Process != nil && s.Process.Capabilities != nil {
		c := s.Process.Capabilities
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
	if p.Seccomp.Mode == "default-plus" && len(p.Seccomp.Deny) > 0 {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Seccomp == nil {
			// No profile given (plain `ctr run`): start from containerd's
			// default, computed for the capabilities left after the
			// intersection above, as nerdctl and the CRI plugin do.
			s.Linux.Seccomp = ctrdseccomp.DefaultProfile(s)
		}
		applySeccomp(s.Linux, p.Seccomp.Deny, cfg.listener)
	}
	return nil
}

// SpecOption modifies ApplySpec.
type SpecOption func(*specConfig)

type specConfig struct{ listener string }

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

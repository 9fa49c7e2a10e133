package monitor

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/pelletier/go-toml/v2"
)

//go:embed profiles/*.toml
var builtinFS embed.FS

// DefaultProfile is the profile used when neither an annotation nor the shim
// configuration names one.
const DefaultProfile = "balanced"

// Action says what the guard does about an operation a profile cares about.
type Action string

const (
	// ActionAudit records the operation as an event, nothing more.
	ActionAudit Action = "audit"
	// ActionAlert records it and raises an alert.
	ActionAlert Action = "alert"
	// ActionDeny refuses it in the kernel (and raises an alert), or fails
	// Attach when no mechanism on this kernel can refuse it.
	ActionDeny Action = "deny"
)

// Profile is a parsed security profile: how the OCI spec is shaped before
// runc create, and what the guard watches and enforces after it. The TOML
// format is documented in docs/profiles.md; built-ins live in profiles/.
type Profile struct {
	Name        string `toml:"name"`
	Description string `toml:"description"`
	// Required makes Attach failures fatal to the container (fail closed).
	// When false the shim may start the container unguarded, loudly.
	Required bool `toml:"required"`

	Seccomp struct {
		// Mode is "as-given" (leave spec.linux.seccomp alone),
		// "default-plus" (keep it, or containerd's default when absent,
		// and deny Deny with EPERM) or "recompute" (replace it with
		// containerd's default for the effective capabilities, and deny
		// Deny).
		Mode string   `toml:"mode"`
		Deny []string `toml:"deny"`
	} `toml:"seccomp"`

	Capabilities struct {
		// Mode is "as-given" or "intersect" (keep only Keep of what the
		// spec grants; a profile never adds a capability).
		Mode string   `toml:"mode"`
		Keep []string `toml:"keep"`
	} `toml:"capabilities"`

	// Spec says how much of the deployer's spec the profile trusts.
	Spec SpecRules `toml:"spec"`

	// NoNewPrivileges and ReadonlyRootfs override the spec when set; nil
	// leaves the spec's value.
	NoNewPrivileges *bool `toml:"no_new_privileges"`
	ReadonlyRootfs  *bool `toml:"readonly_rootfs"`

	Exec struct {
		// Drift is the action for exec of a file that is not part of the
		// image. With deny and a verified image (exec appraisal), "part of
		// the image" means: its bytes are those of an executable file of
		// the signed image; otherwise: not created or changed after the
		// guard attached.
		Drift Action `toml:"drift"`
		// Allow lists executables outside the image the operator lets run
		// under appraisal: "sha256:<hex>" digests or absolute container
		// paths (a trailing "/*" matches a directory's files).
		Allow []string `toml:"allow"`
		// Fileless is the action for executing anonymous memory files
		// (memfd_create + execve of /proc/self/fd/N, execveat of a memfd):
		// deny sets vm.memfd_noexec = 2 in the container's pid namespace,
		// so such files are created non-executable and sealed.
		Fileless Action `toml:"fileless"`
	} `toml:"exec"`

	Files struct {
		Action    Action   `toml:"action"`
		Sensitive []string `toml:"sensitive"`
	} `toml:"files"`

	Network struct {
		// Connect is audit or deny; deny refuses every connect (and UDP
		// send) whose destination is not in Allow.
		Connect Action   `toml:"connect"`
		Allow   []string `toml:"allow"`
	} `toml:"network"`

	Anomaly AnomalyConfig `toml:"anomaly"`

	allow []allowRule
}

// SpecRules are the spec-level rules of a profile (docs/profiles.md has the
// table of what harden does to each field).
type SpecRules struct {
	// Harden recomputes what the deployer chose instead of trusting it:
	// masked and read-only paths restored, host devices dropped, sysfs and
	// cgroupfs read-only, writable mounts noexec, and refuses host
	// namespaces, OCI hooks and bind mounts of host-critical paths.
	Harden bool `toml:"harden"`
	// PidsLimit caps the container's processes (0: leave the spec's).
	PidsLimit int64 `toml:"pids_limit"`
	// AllowHostNamespaces names host namespaces (network, pid, ipc, uts,
	// mount) a hardened container may share.
	AllowHostNamespaces []string `toml:"allow_host_namespaces"`
	// AllowHooks lists OCI hook paths a hardened spec may carry.
	AllowHooks []string `toml:"allow_hooks"`
	// AllowBind lists host paths a hardened container may bind-mount even
	// though they are host-critical or sockets.
	AllowBind []string `toml:"allow_bind"`
	// ExecMounts lists mount destinations a hardened container may execute
	// from (every other mount but the rootfs is noexec).
	ExecMounts []string `toml:"exec_mounts"`
}

// AnomalyConfig holds the anomaly detector's thresholds. Zero disables a rule.
type AnomalyConfig struct {
	// ExecBurst: execs per second that raise "exec-burst".
	ExecBurst int `toml:"exec_burst"`
	// ForkRate: new processes per second that raise "fork-bomb".
	ForkRate int `toml:"fork_rate"`
	// MaxProcesses: live processes that raise "fork-bomb".
	MaxProcesses int `toml:"max_processes"`
	// ConnectFanout: distinct destinations within 10 s that raise "connect-fanout".
	ConnectFanout int `toml:"connect_fanout"`
	// SyscallCounting turns on per-container syscall counting (opt-in: it
	// attaches a sys_enter hook that slows every syscall on the host while
	// any container uses it; see docs/monitoring.md for the measured cost).
	SyscallCounting bool `toml:"syscall_counting"`
	// SyscallSpike: rate / learned baseline that raises "syscall-spike"
	// (default 5 when counting is on).
	SyscallSpike float64 `toml:"syscall_spike"`
}

type allowRule struct {
	addr  netip.Addr // invalid: any address
	port  uint16     // 0: any port
	proto uint8      // 0: tcp and udp
}

// BuiltinProfiles lists the names of the embedded profiles, sorted.
func BuiltinProfiles() []string {
	ents, _ := builtinFS.ReadDir("profiles")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".toml"))
	}
	sort.Strings(names)
	return names
}

// BuiltinProfileTOML returns the TOML source of a built-in profile.
func BuiltinProfileTOML(name string) ([]byte, error) {
	b, err := builtinFS.ReadFile(path.Join("profiles", name+".toml"))
	if err != nil {
		return nil, fmt.Errorf("no built-in profile %q (have %s): %w", name, strings.Join(BuiltinProfiles(), ", "), ErrUnknownProfile)
	}
	return b, nil
}

// MustBuiltin returns a fresh copy of a built-in profile; it panics on an
// unknown name (for tests and tools with names fixed at compile time).
func MustBuiltin(name string) *Profile {
	b, err := BuiltinProfileTOML(name)
	if err != nil {
		panic(err)
	}
	p, err := ParseProfile(b)
	if err != nil {
		panic(err)
	}
	return p
}

// ErrUnknownProfile is returned by LoadProfile for a name that is neither a
// built-in nor a readable file.
var ErrUnknownProfile = errors.New("unknown profile")

// LoadProfile resolves ref to a profile: "" means DefaultProfile; a built-in
// name (dev, balanced, strict); a path to a TOML file (anything containing a
// "/" or ending in ".toml"); or TOML text itself (anything containing a
// newline or "=").
func LoadProfile(ref string) (*Profile, error) {
	switch {
	case ref == "":
		ref = DefaultProfile
		fallthrough
	case slices.Contains(BuiltinProfiles(), ref):
		b, _ := BuiltinProfileTOML(ref)
		return ParseProfile(b)
	case strings.ContainsAny(ref, "\n="):
		return ParseProfile([]byte(ref))
	case strings.Contains(ref, "/") || strings.HasSuffix(ref, ".toml"):
		b, err := os.ReadFile(ref)
		if err != nil {
			return nil, fmt.Errorf("read profile file: %w", err)
		}
		p, err := ParseProfile(b)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", ref, err)
		}
		return p, nil
	default:
		return nil, fmt.Errorf("profile %q: use one of %s or a path to a TOML file: %w", ref, strings.Join(BuiltinProfiles(), ", "), ErrUnknownProfile)
	}
}

// ParseProfile parses and validates profile TOML. Unknown keys are errors, so
// a typo cannot silently weaken a profile.
func ParseProfile(b []byte) (*Profile, error) {
	var p Profile
	d := toml.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return nil, fmt.Errorf("parse profile: %s", sm.String())
		}
		return nil, fmt.Errorf("parse profile: %w", err)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

func (p *Profile) validate() error {
	if p.Name == "" {
		return errors.New("profile: name is required")
	}
	check := func(field string, a *Action, allowed ...Action) error {
		if *a == "" {
			*a = ActionAudit
		}
		if !slices.Contains(allowed, *a) {
			return fmt.Errorf("profile %s: %s = %q, want one of %v", p.Name, field, *a, allowed)
		}
		return nil
	}
	if err := check("exec.drift", &p.Exec.Drift, ActionAudit, ActionAlert, ActionDeny); err != nil {
		return err
	}
	if err := check("exec.fileless", &p.Exec.Fileless, ActionAudit, ActionDeny); err != nil {
		return err
	}
	if err := check("files.action", &p.Files.Action, ActionAudit, ActionAlert, ActionDeny); err != nil {
		return err
	}
	if err := check("network.connect", &p.Network.Connect, ActionAudit, ActionAlert, ActionDeny); err != nil {
		return err
	}
	switch p.Seccomp.Mode {
	case "":
		p.Seccomp.Mode = "as-given"
	case "as-given", "default-plus", "recompute":
	default:
		return fmt.Errorf("profile %s: seccomp.mode = %q, want as-given, default-plus or recompute", p.Name, p.Seccomp.Mode)
	}
	switch p.Capabilities.Mode {
	case "":
		p.Capabilities.Mode = "as-given"
	case "as-given", "intersect":
	default:
		return fmt.Errorf("profile %s: capabilities.mode = %q, want as-given or intersect", p.Name, p.Capabilities.Mode)
	}
	for i, c := range p.Capabilities.Keep {
		c = strings.ToUpper(c)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		p.Capabilities.Keep[i] = c
	}
	for _, a := range p.Exec.Allow {
		if strings.HasPrefix(a, "sha256:") {
			if len(a) != 71 || strings.Trim(a[7:], "0123456789abcdef") != "" {
				return fmt.Errorf("profile %s: exec.allow %q: want sha256:<64 lowercase hex>", p.Name, a)
			}
			continue
		}
		if !path.IsAbs(a) || path.Clean(strings.TrimSuffix(a, "/*")) != strings.TrimSuffix(a, "/*") {
			return fmt.Errorf("profile %s: exec.allow %q: want sha256:<hex> or a clean absolute path", p.Name, a)
		}
	}
	for _, n := range p.Spec.AllowHostNamespaces {
		if !slices.Contains(privateNamespaces, specs.LinuxNamespaceType(n)) {
			return fmt.Errorf("profile %s: spec.allow_host_namespaces %q: want one of network, pid, ipc, uts, mount", p.Name, n)
		}
	}
	if p.Spec.PidsLimit < 0 {
		return fmt.Errorf("profile %s: spec.pids_limit must not be negative", p.Name)
	}
	for _, f := range p.Files.Sensitive {
		if !path.IsAbs(f) || path.Clean(f) != f {
			return fmt.Errorf("profile %s: files.sensitive %q must be a clean absolute path", p.Name, f)
		}
	}
	p.allow = nil
	for _, a := range p.Network.Allow {
		r, err := parseAllow(a)
		if err != nil {
			return fmt.Errorf("profile %s: network.allow %q: %w", p.Name, a, err)
		}
		p.allow = append(p.allow, r)
	}
	if p.Anomaly.SyscallCounting && p.Anomaly.SyscallSpike == 0 {
		p.Anomaly.SyscallSpike = 5
	}
	return nil
}

// parseAllow parses "host:port[/proto]" where host is an IP, "[v6]" or "*"
// and port a number or "*".
func parseAllow(s string) (allowRule, error) {
	var r allowRule
	hostport, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		switch proto {
		case "tcp":
			r.proto = 6
		case "udp":
			r.proto = 17
		default:
			return r, fmt.Errorf("protocol %q: want tcp or udp", proto)
		}
	}
	i := strings.LastIndex(hostport, ":")
	if i < 0 {
		return r, errors.New(`want host:port, e.g. "10.0.0.1:443", "*:53/udp", "[::1]:*"`)
	}
	host, port := hostport[:i], hostport[i+1:]
	if host != "*" {
		a, err := netip.ParseAddr(strings.Trim(host, "[]"))
		if err != nil {
			return r, fmt.Errorf("address: %w", err)
		}
		r.addr = a.Unmap()
	}
	if port != "*" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return r, fmt.Errorf("port %q: want 1-65535 or *", port)
		}
		r.port = uint16(n)
	}
	return r, nil
}

// TOML renders the profile (after defaults were applied) as TOML.
func (p *Profile) TOML() ([]byte, error) {
	return toml.Marshal(p)
}

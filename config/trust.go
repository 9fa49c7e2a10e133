package config

import (
	"fmt"
	"strings"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
)

// Values of trust.runtime_options in the node's runtime config.
const (
	// TrustOperator (the default): a task's runtime options are the
	// configuration. Right when only the operator can set them: CRI takes
	// them from containerd's config.toml.
	TrustOperator = "operator"
	// TrustDeployer: runtime options are deployer input, like annotations
	// (a ctr or nerdctl user sends them with --runtime-config-path). They
	// may set harmless [runc] keys (SystemdCgroup, NoNewKeyring, IoUid,
	// IoGid) and select, by name and only
	// tightening, a profile and default policy the node config offers;
	// everything else is refused by name.
	TrustDeployer = "deployer"
)

// Trust says how far a task's runtime options are trusted. It is read from
// the node's config only ($VORDR_CONFIG or /etc/vordr/runtime.toml).
type Trust struct {
	RuntimeOptions string `toml:"runtime_options"`
}

// fromDeployerOptions applies runtime options as deployer input to the node
// config c.
func (c *Config) fromDeployerOptions(opts typeurl.Any) (*Config, error) {
	var req *Config
	switch url := strings.TrimPrefix(opts.GetTypeUrl(), "type.googleapis.com/"); url {
	case RuncOptionsTypeURL:
		var o options.Options
		if err := typeurl.UnmarshalTo(opts, &o); err != nil {
			return nil, fmt.Errorf("decode runc options: %w", err)
		}
		req = &Config{Runc: fromRuncOptions(&o), Source: "runc options"}
	case RuntimeOptionsTypeURL:
		var o runtimeoptions.Options
		if err := typeurl.UnmarshalTo(opts, &o); err != nil {
			return nil, fmt.Errorf("decode runtimeoptions.v1.Options: %w", err)
		}
		data, source := o.ConfigBody, "runtime options body"
		if o.ConfigPath != "" {
			if o.ConfigPath == c.Path {
				return c, nil // the node config itself
			}
			b, err := ReadFile(o.ConfigPath)
			if err != nil {
				return nil, fmt.Errorf("vordr config: %w", err)
			}
			data, source = b, o.ConfigPath
		}
		if len(data) == 0 {
			return c, nil
		}
		var err error
		if req, err = parseRaw(data, source); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported runtime options type %q: io.containerd.vordr.v1 accepts %s or %s: %w",
			opts.GetTypeUrl(), RuncOptionsTypeURL, RuntimeOptionsTypeURL, errdefs.ErrInvalidArgument)
	}
	return c.restrict(req)
}

// restrict lays the deployer's req over the node config c.
func (c *Config) restrict(req *Config) (*Config, error) {
	refuse := func(what, why string) error {
		return fmt.Errorf("vordr config %s: %s %s; the node config %s trusts runtime options as deployer input (trust.runtime_options = %q, docs/threat-model.md): %w",
			req.Source, what, why, c.Source, TrustDeployer, errdefs.ErrInvalidArgument)
	}
	for _, t := range []struct {
		name string
		set  bool
	}{
		{"[policies]", len(req.Policies) > 0},
		{"[profiles]", len(req.Profiles) > 0},
		{"[annotations]", req.Annotations.Profiles != nil || req.Annotations.Policies != nil || len(req.Annotations.Loosen) > 0},
		{"[events]", req.Events != (Events{})},
		{"[gate]", req.Gate != (Gate{})},
		{"[trust]", req.Trust != (Trust{})},
	} {
		if t.set {
			return nil, refuse(t.name, "may be set by the operator only")
		}
	}
	r, n := req.Runc, c.Runc
	for _, k := range []struct {
		name      string
		got, want string
	}{
		// The binary that builds the container, where the shim's task API
		// listens, and checkpoint paths are the operator's.
		{"runc.BinaryName", r.BinaryName, n.BinaryName},
		{"runc.TaskApiAddress", r.TaskApiAddress, n.TaskApiAddress},
		{"runc.CriuImagePath", r.CriuImagePath, n.CriuImagePath},
		{"runc.CriuWorkPath", r.CriuWorkPath, n.CriuWorkPath},
	} {
		if k.got != "" && k.got != k.want {
			return nil, refuse(k.name, fmt.Sprintf("= %q differs from the node's %q", k.got, k.want))
		}
	}
	for _, k := range []struct {
		name      string
		got, want string
	}{
		// The shim's cgroup (a memory limit there would let an OOM kill
		// the guard) and runc's state directory (another container's
		// state) are the operator's too.
		{"runc.ShimCgroup", r.ShimCgroup, n.ShimCgroup},
		{"runc.Root", r.Root, n.Root},
	} {
		if k.got != "" && k.got != k.want {
			return nil, refuse(k.name, fmt.Sprintf("= %q differs from the node's %q", k.got, k.want))
		}
	}
	if r.NoPivotRoot && !n.NoPivotRoot {
		// chroot instead of pivot_root can be escaped.
		return nil, refuse("runc.NoPivotRoot", "would weaken the rootfs isolation")
	}
	out := *c
	out.Runc = merge(n, Runc{SystemdCgroup: r.SystemdCgroup, NoNewKeyring: r.NoNewKeyring, IoUid: r.IoUid, IoGid: r.IoGid})
	out.Source = req.Source + " (deployer input) within " + c.Source
	if req.Profile != "" {
		sel := &Selection{}
		if err := c.selectProfile(sel, req.Profile); err != nil {
			return nil, fmt.Errorf("runtime options profile = %q: %w", req.Profile, err)
		}
		out.Profile = req.Profile
	}
	if req.DefaultPolicy != "" {
		sel := &Selection{}
		if err := c.selectPolicy(sel, req.DefaultPolicy); err != nil {
			return nil, fmt.Errorf("runtime options default_policy = %q: %w", req.DefaultPolicy, err)
		}
		out.DefaultPolicy = req.DefaultPolicy
	}
	return &out, nil
}

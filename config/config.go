// Package config reads the configuration of the io.containerd.vordr.v1 runtime:
// the runtime options containerd hands a task (runc's own options, or
// runtimeoptions.v1.Options carrying a vordr TOML file or body) and turns them
// into one Config the shim works from.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/pelletier/go-toml/v2"
)

// Type URLs of the runtime options vordr accepts. containerd and CRI send runc's
// options for runtime_type io.containerd.runc.v2-like clients (ctr --runc-*), and
// runtimeoptions.v1.Options for any other runtime type with an options table,
// or for `ctr run --runtime-config-path`.
const (
	RuncOptionsTypeURL    = "containerd.runc.v1.Options"
	RuntimeOptionsTypeURL = "runtimeoptions.v1.Options"
)

// DefaultPath is read when containerd sends no runtime options at all, so that a
// node-wide setting (policy, profile) applies to plain `ctr run --runtime
// io.containerd.vordr.v1`. The environment variable VORDR_CONFIG overrides it;
// the shim inherits containerd's environment.
const DefaultPath = "/etc/vordr/runtime.toml"

// Runc holds the settings vordr hands to the wrapped runc task service. The
// names are those of runc's options (containerd.runc.v1.Options), so a runtime
// entry written for io.containerd.runc.v2 keeps its meaning.
type Runc struct {
	BinaryName     string `toml:"BinaryName,omitempty"`
	Root           string `toml:"Root,omitempty"`
	SystemdCgroup  bool   `toml:"SystemdCgroup,omitempty"`
	NoPivotRoot    bool   `toml:"NoPivotRoot,omitempty"`
	NoNewKeyring   bool   `toml:"NoNewKeyring,omitempty"`
	ShimCgroup     string `toml:"ShimCgroup,omitempty"`
	IoUid          uint32 `toml:"IoUid,omitempty"`
	IoGid          uint32 `toml:"IoGid,omitempty"`
	CriuImagePath  string `toml:"CriuImagePath,omitempty"`
	CriuWorkPath   string `toml:"CriuWorkPath,omitempty"`
	TaskApiAddress string `toml:"TaskApiAddress,omitempty"` //nolint:revive // runc's name
	TaskApiVersion uint32 `toml:"TaskApiVersion,omitempty"` //nolint:revive // runc's name
}

// Config is vordr's runtime configuration.
type Config struct {
	// Runc is passed to the runc task service.
	Runc Runc `toml:"runc"`
	// Profile is the security profile of containers without a
	// vordr.io/profile annotation: a built-in name (dev, balanced, strict) or
	// a name declared under [profiles]. Empty means balanced.
	Profile string `toml:"profile"`
	// Profiles declares operator profile files by name.
	Profiles map[string]ProfileRef `toml:"profiles"`
	// Annotations say what a container's vordr.io/* annotations may select.
	Annotations AnnotationRules `toml:"annotations"`
	// Policies maps policy names to verification policy files (docs/policy.md);
	// a container picks one with the vordr.io/policy annotation.
	Policies map[string]string `toml:"policies"`
	// DefaultPolicy names the policy for containers without the annotation.
	// Empty: the gate audits and warns, so a plain `ctr run` works out of the box.
	DefaultPolicy string `toml:"default_policy"`
	// Events configures where the guard's events and alerts go.
	Events Events `toml:"events"`
	// Gate configures the verification gate.
	Gate Gate `toml:"gate"`
	// Trust says how far a task's runtime options are trusted.
	Trust Trust `toml:"trust"`
	// Source says where the configuration came from, for logs and errors.
	Source string `toml:"-"`
	// Path is the operator's config file the settings came from, if any.
	Path string `toml:"-"`
}

// DefaultGateCacheDir keeps the gate's layer manifests and verdicts.
const DefaultGateCacheDir = "/var/lib/vordr/gate"

// Gate configures the verification gate.
type Gate struct {
	// CacheDir keeps the expected content of verified layers (by blob
	// digest) and lower-directory verdicts, so only the first container of
	// an image on a node hashes its files. It must be writable by root
	// alone. Empty means DefaultGateCacheDir.
	CacheDir string `toml:"cache_dir"`
	// EvidenceDir is where the pull-time verifier stores evidence it
	// fetched from a registry's referrers (for images pulled with ctr,
	// nerdctl or the CRI, whose records carry no vordr labels). The gate
	// re-verifies what it finds there. Empty means
	// /var/lib/vordr/evidence.
	EvidenceDir string `toml:"evidence_dir"`
}

// Events configures the guard's outputs.
type Events struct {
	// Dir holds one JSON-lines file per container; empty means
	// /var/log/vordr.
	Dir string `toml:"dir"`
	// MaxFileBytes rotates a container's file at this size; 0 means 10 MiB.
	MaxFileBytes int64 `toml:"max_file_bytes"`
	// MaxFiles is how many rotated files are kept; 0 means 3.
	MaxFiles int `toml:"max_files"`
	// Webhook, if set, receives every alert as a JSON POST.
	Webhook string `toml:"webhook"`
	// Keep bounds the logs of deleted containers kept per namespace, newest
	// first; 0 means 1000, a negative value keeps them all.
	Keep int `toml:"keep"`
	// MaxAge removes logs of deleted containers older than this (a Go
	// duration, e.g. "168h"); empty means 7 days, "0" keeps them forever.
	MaxAge string `toml:"max_age"`
}

// Retention returns the pruning limits of deleted containers' logs.
func (e Events) Retention() (keep int, maxAge time.Duration) {
	keep = e.Keep
	if keep == 0 {
		keep = 1000
	}
	maxAge = 7 * 24 * time.Hour
	if e.MaxAge != "" {
		maxAge, _ = time.ParseDuration(e.MaxAge) // validated at Parse
	}
	return keep, maxAge
}

// file is the on-disk form. runc's keys are accepted at the top level as well,
// because a runtime entry copied from io.containerd.runc.v2 puts them there
// (`SystemdCgroup = true` directly in the options table); the [runc] table wins
// where both set a key.
type file struct {
	Runc
	RuncSection   *Runc                 `toml:"runc"`
	Profile       string                `toml:"profile"`
	Profiles      map[string]ProfileRef `toml:"profiles"`
	Annotations   AnnotationRules       `toml:"annotations"`
	Policies      map[string]string     `toml:"policies"`
	DefaultPolicy string                `toml:"default_policy"`
	Events        Events                `toml:"events"`
	Gate          Gate                  `toml:"gate"`
	Trust         Trust                 `toml:"trust"`
	// ConfigPath may appear in a CRI options table next to other keys; CRI
	// lifts it into runtimeoptions.Options, so it is accepted and ignored here.
	ConfigPath string `toml:"ConfigPath,omitempty"`
}

// Parse decodes a vordr TOML configuration. Unknown keys are errors that name
// the key and its line, so a typo cannot silently disable a setting.
func Parse(data []byte, source string) (*Config, error) {
	cfg, err := parseRaw(data, source)
	if err != nil {
		return nil, err
	}
	if cfg.Gate.CacheDir == "" {
		cfg.Gate.CacheDir = DefaultGateCacheDir
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("vordr config %s: %w: %w", source, err, errdefs.ErrInvalidArgument)
	}
	return cfg, nil
}

// parseRaw decodes without defaults or cross-checks: what the text says.
func parseRaw(data []byte, source string) (*Config, error) {
	var f file
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("vordr config %s: %s: %w", source, describeTOMLError(err), errdefs.ErrInvalidArgument)
	}
	cfg := &Config{Runc: f.Runc, Profile: f.Profile, Profiles: f.Profiles, Annotations: f.Annotations,
		Policies: f.Policies, DefaultPolicy: f.DefaultPolicy, Events: f.Events, Gate: f.Gate, Trust: f.Trust, Source: source}
	if f.RuncSection != nil {
		cfg.Runc = merge(f.Runc, *f.RuncSection)
	}
	return cfg, nil
}

// validate checks that every name the configuration refers to is declared,
// so a typo cannot leave a container with a weaker profile than meant.
func (c *Config) validate() error {
	if c.Events.MaxAge != "" {
		if d, err := time.ParseDuration(c.Events.MaxAge); err != nil || d < 0 {
			return fmt.Errorf("events.max_age = %q: want a duration such as \"168h\", or \"0\" to keep logs forever", c.Events.MaxAge)
		}
	}
	switch c.Trust.RuntimeOptions {
	case "", TrustOperator, TrustDeployer:
	default:
		return fmt.Errorf("trust.runtime_options = %q: want %q or %q", c.Trust.RuntimeOptions, TrustOperator, TrustDeployer)
	}
	if c.DefaultPolicy != "" {
		if _, ok := c.Policies[c.DefaultPolicy]; !ok {
			return fmt.Errorf("default_policy %q is not defined in [policies]", c.DefaultPolicy)
		}
	}
	for name, path := range c.Policies {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("policies.%s = %q: the path must be absolute", name, path)
		}
	}
	for name, ref := range c.Profiles {
		if slices.Contains(levels, name) {
			return fmt.Errorf("[profiles.%s]: %s is a built-in profile; give the operator profile another name", name, name)
		}
		if !filepath.IsAbs(ref.Path) {
			return fmt.Errorf("[profiles.%s] path = %q: the path must be absolute", name, ref.Path)
		}
		if !slices.Contains(levels, ref.Level) {
			return fmt.Errorf("[profiles.%s] level = %q: want one of %s (how it ranks when an annotation may only tighten)", name, ref.Level, strings.Join(levels, ", "))
		}
	}
	if c.Profile != "" {
		if _, err := c.profileLevel(c.Profile); err != nil {
			if strings.ContainsAny(c.Profile, "/\n=") {
				return fmt.Errorf("profile = %q: a profile file is declared as [profiles.NAME] path = \"…\" level = \"…\" and chosen by name", c.Profile)
			}
			return fmt.Errorf("profile = %q: %w", c.Profile, err)
		}
	}
	for _, n := range c.Annotations.Profiles {
		if _, err := c.profileLevel(n); err != nil {
			return fmt.Errorf("annotations.profiles: %q: %w", n, err)
		}
	}
	for _, n := range c.Annotations.Policies {
		if _, ok := c.Policies[n]; !ok {
			return fmt.Errorf("annotations.policies: %q is not defined in [policies]", n)
		}
	}
	for _, n := range c.Annotations.Loosen {
		_, isPolicy := c.Policies[n]
		if _, err := c.profileLevel(n); err != nil && !isPolicy {
			return fmt.Errorf("annotations.loosen: %q is neither a profile nor a policy", n)
		}
	}
	return nil
}

// merge overlays the non-zero fields of over onto base.
func merge(base, over Runc) Runc {
	var zero Runc
	if over == zero {
		return base
	}
	setS := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setB := func(dst *bool, v bool) {
		if v {
			*dst = v
		}
	}
	setU := func(dst *uint32, v uint32) {
		if v != 0 {
			*dst = v
		}
	}
	setS(&base.BinaryName, over.BinaryName)
	setS(&base.Root, over.Root)
	setB(&base.SystemdCgroup, over.SystemdCgroup)
	setB(&base.NoPivotRoot, over.NoPivotRoot)
	setB(&base.NoNewKeyring, over.NoNewKeyring)
	setS(&base.ShimCgroup, over.ShimCgroup)
	setU(&base.IoUid, over.IoUid)
	setU(&base.IoGid, over.IoGid)
	setS(&base.CriuImagePath, over.CriuImagePath)
	setS(&base.CriuWorkPath, over.CriuWorkPath)
	setS(&base.TaskApiAddress, over.TaskApiAddress)
	setU(&base.TaskApiVersion, over.TaskApiVersion)
	return base
}

func describeTOMLError(err error) string {
	var serr *toml.StrictMissingError
	if errors.As(err, &serr) {
		var keys []string
		for _, e := range serr.Errors {
			row, _ := e.Position()
			keys = append(keys, fmt.Sprintf("%q (line %d)", strings.Join(e.Key(), "."), row))
		}
		return "unknown key " + strings.Join(keys, ", ") + "; see the runtime configuration section of the README for the keys vordr knows"
	}
	var derr *toml.DecodeError
	if errors.As(err, &derr) {
		row, col := derr.Position()
		return fmt.Sprintf("line %d column %d: %s", row, col, derr.Error())
	}
	return err.Error()
}

// Load reads a vordr TOML configuration file.
func Load(path string) (*Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("vordr config file %s does not exist; fix ConfigPath in the runtime options: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("vordr config: %w", err)
	}
	cfg, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	cfg.Path = path
	return cfg, nil
}

// Default returns the configuration used when containerd sends no options:
// the file named by $VORDR_CONFIG or DefaultPath if it exists, else built-in
// defaults.
func Default() (*Config, error) {
	path := os.Getenv("VORDR_CONFIG")
	if path == "" {
		if _, err := os.Stat(DefaultPath); err != nil {
			return &Config{Source: "defaults", Gate: Gate{CacheDir: DefaultGateCacheDir}}, nil
		}
		path = DefaultPath
	}
	return Load(path)
}

// FromOptions turns the runtime options of a CreateTaskRequest (or of the
// shim's -info call) into a Config. It never unmarshals through the global
// type registry, so it works whether or not the options' Go types are linked.
func FromOptions(opts typeurl.Any) (*Config, error) {
	if opts == nil || (opts.GetTypeUrl() == "" && len(opts.GetValue()) == 0) {
		return Default()
	}
	node, err := Default()
	if err != nil {
		return nil, err
	}
	if node.Trust.RuntimeOptions == TrustDeployer {
		return node.fromDeployerOptions(opts)
	}
	switch url := strings.TrimPrefix(opts.GetTypeUrl(), "type.googleapis.com/"); url {
	case RuncOptionsTypeURL:
		var o options.Options
		if err := typeurl.UnmarshalTo(opts, &o); err != nil {
			return nil, fmt.Errorf("decode runc options: %w", err)
		}
		// runc's options say nothing of vordr's own settings (profile,
		// policies, events): those come from the node's default config,
		// and the client's runc options replace its [runc] table. node is
		// this call's own copy: parsing the file once is enough.
		node.Runc = fromRuncOptions(&o)
		node.Source = "runc options + " + node.Source
		return node, nil
	case RuntimeOptionsTypeURL:
		var o runtimeoptions.Options
		if err := typeurl.UnmarshalTo(opts, &o); err != nil {
			return nil, fmt.Errorf("decode runtimeoptions.v1.Options: %w", err)
		}
		if o.ConfigPath != "" {
			return Load(o.ConfigPath)
		}
		if len(o.ConfigBody) == 0 {
			return Default()
		}
		return Parse(o.ConfigBody, "runtime options body")
	default:
		return nil, fmt.Errorf("unsupported runtime options type %q: io.containerd.vordr.v1 accepts %s or %s (a vordr TOML config in ConfigPath or ConfigBody): %w",
			opts.GetTypeUrl(), RuncOptionsTypeURL, RuntimeOptionsTypeURL, errdefs.ErrInvalidArgument)
	}
}

// RuncOptions returns the options for the wrapped runc task service.
func (c *Config) RuncOptions() *options.Options {
	r := c.Runc
	return &options.Options{
		BinaryName:     r.BinaryName,
		Root:           r.Root,
		SystemdCgroup:  r.SystemdCgroup,
		NoPivotRoot:    r.NoPivotRoot,
		NoNewKeyring:   r.NoNewKeyring,
		ShimCgroup:     r.ShimCgroup,
		IoUid:          r.IoUid,
		IoGid:          r.IoGid,
		CriuImagePath:  r.CriuImagePath,
		CriuWorkPath:   r.CriuWorkPath,
		TaskApiAddress: r.TaskApiAddress,
		TaskApiVersion: r.TaskApiVersion,
	}
}

func fromRuncOptions(o *options.Options) Runc {
	return Runc{
		BinaryName:     o.BinaryName,
		Root:           o.Root,
		SystemdCgroup:  o.SystemdCgroup,
		NoPivotRoot:    o.NoPivotRoot,
		NoNewKeyring:   o.NoNewKeyring,
		ShimCgroup:     o.ShimCgroup,
		IoUid:          o.IoUid,
		IoGid:          o.IoGid,
		CriuImagePath:  o.CriuImagePath,
		CriuWorkPath:   o.CriuWorkPath,
		TaskApiAddress: o.TaskApiAddress,
		TaskApiVersion: o.TaskApiVersion,
	}
}

package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/monitor"
)

// Annotations a deployer may put on a container to choose among what the
// operator offers. They are deployer input (docs/threat-model.md): they
// select names the runtime config declares selectable, by default only
// tightening, and never carry a path or a profile body.
const (
	AnnotationProfile = "vordr.io/profile"
	AnnotationPolicy  = "vordr.io/policy"
)

// Strength levels of the built-in profiles, weakest first. An operator
// profile declares its level in [profiles.NAME].
var levels = []string{"dev", "balanced", "hardened", "strict"}

// ProfileRef declares an operator profile file.
type ProfileRef struct {
	// Path of the profile TOML (docs/profiles.md).
	Path string `toml:"path"`
	// Level ranks it for tighten-only selection: dev, balanced, hardened
	// or strict.
	Level string `toml:"level"`
}

// AnnotationRules say what a container's annotations may select.
type AnnotationRules struct {
	// Profiles a vordr.io/profile annotation may name. nil: the built-in
	// profiles; an empty list: none (the annotation is refused).
	Profiles []string `toml:"profiles"`
	// Policies a vordr.io/policy annotation may name. nil: every name in
	// [policies]; an empty list: none.
	Policies []string `toml:"policies"`
	// Loosen lists the names an annotation may select even when they are
	// weaker than the container's default (a profile of a lower level, a
	// policy of a weaker mode). By default an annotation only tightens.
	Loosen []string `toml:"loosen"`
}

// Selection is what a container runs under: the one answer the gate and the
// guard both use.
type Selection struct {
	// ProfileName is the built-in or [profiles] name.
	ProfileName string
	Profile     *monitor.Profile
	// ProfileFrom says who chose it: "annotation", "config" or "default".
	ProfileFrom string
	// PolicyName is empty when no policy applies (the gate audits).
	PolicyName string
	PolicyPath string
	Policy     *policy.Policy
	PolicyFrom string
}

// ErrAnnotationRefused is wrapped (with errdefs.ErrInvalidArgument) when an
// annotation asks for something the operator did not offer.
var ErrAnnotationRefused = errors.New("annotation refused")

// Select decides the profile and policy of a container from the operator's
// configuration and the container's annotations. It is the only place this
// is decided.
func (c *Config) Select(annotations map[string]string) (*Selection, error) {
	sel := &Selection{}
	if err := c.selectProfile(sel, annotations[AnnotationProfile]); err != nil {
		return nil, err
	}
	if err := c.selectPolicy(sel, annotations[AnnotationPolicy]); err != nil {
		return nil, err
	}
	return sel, nil
}

func (c *Config) selectProfile(sel *Selection, ann string) error {
	def, from := c.Profile, "config"
	if def == "" {
		def, from = monitor.DefaultProfile, "default"
	}
	defLevel, err := c.profileLevel(def)
	if err != nil {
		return fmt.Errorf("vordr config %s: profile %q: %w", c.Source, def, err)
	}
	name := def
	if ann != "" {
		allowed := c.selectableProfiles()
		acceptable := slices.DeleteFunc(slices.Clone(allowed), func(n string) bool {
			l, err := c.profileLevel(n)
			return err != nil || (l < defLevel && !slices.Contains(c.Annotations.Loosen, n))
		})
		if !slices.Contains(allowed, ann) {
			return refused(AnnotationProfile, ann, "is not a profile the operator made selectable", acceptable)
		}
		lvl, err := c.profileLevel(ann)
		if err != nil {
			return fmt.Errorf("vordr config %s: profile %q: %w", c.Source, ann, err)
		}
		if lvl < defLevel && !slices.Contains(c.Annotations.Loosen, ann) {
			return refused(AnnotationProfile, ann, fmt.Sprintf("is weaker than the container's default profile %q, and an annotation may only tighten", def), acceptable)
		}
		name, from = ann, "annotation"
	}
	p, err := c.loadProfile(name)
	if err != nil {
		return err
	}
	sel.ProfileName, sel.Profile, sel.ProfileFrom = name, p, from
	return nil
}

func (c *Config) selectableProfiles() []string {
	if c.Annotations.Profiles != nil {
		return c.Annotations.Profiles
	}
	return slices.Clone(levels)
}

// profileLevel ranks a built-in or declared profile.
func (c *Config) profileLevel(name string) (int, error) {
	if ref, ok := c.Profiles[name]; ok {
		return slices.Index(levels, ref.Level), nil // validated at Parse
	}
	if i := slices.Index(levels, name); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("no such profile: use one of %s or declare it under [profiles.%s] with path and level: %w",
		strings.Join(c.profileNames(), ", "), name, errdefs.ErrInvalidArgument)
}

func (c *Config) profileNames() []string {
	names := slices.Clone(levels)
	for n := range c.Profiles {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names[len(levels):])
	return names
}

func (c *Config) loadProfile(name string) (*monitor.Profile, error) {
	if ref, ok := c.Profiles[name]; ok {
		data, err := ReadFile(ref.Path)
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", name, err)
		}
		p, err := monitor.ParseProfile(data)
		if err != nil {
			return nil, fmt.Errorf("profile %q (%s): %w: %w", name, ref.Path, err, errdefs.ErrInvalidArgument)
		}
		return p, nil
	}
	b, err := monitor.BuiltinProfileTOML(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return monitor.ParseProfile(b)
}

// Policy modes, weakest first; no policy at all audits.
func modeLevel(m policy.Mode) int {
	switch m {
	case policy.Strict:
		return 2
	case policy.Permissive:
		return 1
	default:
		return 0
	}
}

func (c *Config) selectPolicy(sel *Selection, ann string) error {
	def := c.DefaultPolicy
	var defPol *policy.Policy
	if def != "" {
		p, err := c.loadPolicy(def)
		if err != nil {
			return err
		}
		defPol = p
	}
	if ann == "" {
		if def == "" {
			return nil
		}
		sel.PolicyName, sel.PolicyPath, sel.Policy, sel.PolicyFrom = def, c.Policies[def], defPol, "config"
		return nil
	}
	allowed := c.Annotations.Policies
	if allowed == nil {
		for n := range c.Policies {
			allowed = append(allowed, n)
		}
		sort.Strings(allowed)
	}
	if !slices.Contains(allowed, ann) || c.Policies[ann] == "" {
		return refused(AnnotationPolicy, ann, "is not a policy the operator made selectable", allowed)
	}
	p, err := c.loadPolicy(ann)
	if err != nil {
		return err
	}
	if defPol != nil && modeLevel(p.Mode) < modeLevel(defPol.Mode) && !slices.Contains(c.Annotations.Loosen, ann) {
		return refused(AnnotationPolicy, ann, fmt.Sprintf("has mode %s, weaker than the default policy %q (%s), and an annotation may only tighten", p.Mode, def, defPol.Mode), nil)
	}
	sel.PolicyName, sel.PolicyPath, sel.Policy, sel.PolicyFrom = ann, c.Policies[ann], p, "annotation"
	return nil
}

func (c *Config) loadPolicy(name string) (*policy.Policy, error) {
	path := c.Policies[name]
	data, err := ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("verification policy %q: %w", name, err)
	}
	p, err := policy.Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("verification policy %q (%s) cannot be loaded, so nothing can be verified; fix the file or the runtime config: %w: %w", name, path, err, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

func refused(annotation, value, why string, allowed []string) error {
	if len(value) > 64 || strings.ContainsAny(value, "\n\r") {
		// Inline TOML or a long path: do not echo it whole into logs.
		value = fmt.Sprintf("%.40q… (%d bytes)", value, len(value))
	} else {
		value = fmt.Sprintf("%q", value)
	}
	msg := fmt.Sprintf("annotation %s=%s %s", annotation, value, why)
	if len(allowed) > 0 {
		msg += "; allowed values: " + strings.Join(allowed, ", ")
	} else {
		msg += "; the operator allows no value here"
	}
	msg += " (annotations select among names in the vordr runtime config, never paths or profile text; see docs/threat-model.md)"
	return fmt.Errorf("%s: %w: %w", msg, ErrAnnotationRefused, errdefs.ErrInvalidArgument)
}

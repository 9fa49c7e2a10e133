package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"

	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/monitor"
)

// Choices is what a caller may choose for a run: the operator's defaults
// and the names a run request's profile and policy may take. Each name is
// tried through config.Select, the one function the shim decides with, so
// the list cannot drift from what the shim accepts.
type Choices struct {
	DefaultProfile string         `json:"defaultProfile"`
	Profiles       []string       `json:"profiles"`
	DefaultPolicy  string         `json:"defaultPolicy,omitempty"`
	Policies       []PolicyChoice `json:"policies"`
}

// PolicyChoice is a selectable verification policy.
type PolicyChoice struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
}

func (s *Server) choices(context.Context) (Choices, error) {
	rc, err := s.cfg.runtimeConfig()
	if err != nil {
		return Choices{}, fmt.Errorf("the operator's runtime config: %w", err)
	}
	def, err := rc.Select(nil)
	if err != nil {
		return Choices{}, fmt.Errorf("the operator's runtime config: %w", err)
	}
	out := Choices{DefaultProfile: def.ProfileName, DefaultPolicy: def.PolicyName, Profiles: []string{}, Policies: []PolicyChoice{}}
	profiles := []string{"dev", "balanced", "hardened", "strict", monitor.DefaultProfile}
	profiles = append(profiles, rc.Annotations.Profiles...)
	for n := range rc.Profiles {
		profiles = append(profiles, n)
	}
	sort.Strings(profiles)
	for _, n := range slices.Compact(profiles) {
		if _, err := rc.Select(map[string]string{config.AnnotationProfile: n}); err == nil {
			out.Profiles = append(out.Profiles, n)
		}
	}
	policies := make([]string, 0, len(rc.Policies))
	for n := range rc.Policies {
		policies = append(policies, n)
	}
	sort.Strings(policies)
	for _, n := range policies {
		if sel, err := rc.Select(map[string]string{config.AnnotationPolicy: n}); err == nil && sel.Policy != nil {
			out.Policies = append(out.Policies, PolicyChoice{Name: n, Mode: string(sel.Policy.Mode)})
		}
	}
	return out, nil
}

func (s *Server) listChoices(w http.ResponseWriter, r *http.Request, _ Identity) error {
	c, err := s.choices(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

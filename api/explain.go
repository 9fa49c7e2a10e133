package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/vordr-project/vordr/eventlog"
	"github.com/vordr-project/vordr/monitor"
)

// Explanation says why a container runs as it does: what the gate decided
// and why, which profile guards it and who chose it, and each alert or
// refused operation with the evidence the guard recorded. It is built from
// the container's event log and the operator's configuration, nothing else.
type Explanation struct {
	ID           string          `json:"id"`
	Summary      []string        `json:"summary"`
	Verification *Verification   `json:"verification,omitempty"`
	Profile      string          `json:"profile,omitempty"`
	ProfileFrom  string          `json:"profileFrom,omitempty"`
	Policy       string          `json:"policy,omitempty"`
	Alerts       []monitor.Alert `json:"alerts"`
	// Refused are operations the guard denied or killed.
	Refused []monitor.Event `json:"refused"`
}

// maxExplained bounds the alerts and refusals an explanation lists.
const maxExplained = 100

func (s *Server) explainContainer(w http.ResponseWriter, r *http.Request, _ Identity) error {
	x, err := s.explain(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}

func (s *Server) explain(ctx context.Context, id string) (Explanation, error) {
	v, err := s.inspect(ctx, id)
	if err != nil {
		return Explanation{}, err
	}
	rc, err := s.cfg.runtimeConfig()
	if err != nil {
		return Explanation{}, fmt.Errorf("the operator's runtime config: %w", err)
	}
	x := Explanation{ID: id, Verification: v.Verification, Profile: v.Profile, ProfileFrom: v.ProfileFrom, Policy: v.Policy, Alerts: []monitor.Alert{}, Refused: []monitor.Event{}}
	err = eventlog.Read(eventsDir(rc), s.cfg.Namespace, id, func(line []byte) error {
		var e monitor.Event
		if json.Unmarshal(line, &e) != nil {
			return nil
		}
		switch {
		case e.Alert != nil && len(x.Alerts) < maxExplained:
			x.Alerts = append(x.Alerts, *e.Alert)
		case (e.Verdict == monitor.Denied || e.Verdict == monitor.Killed) && e.Kind != "gate" && len(x.Refused) < maxExplained:
			x.Refused = append(x.Refused, e)
		}
		return nil
	})
	if err != nil {
		return Explanation{}, err
	}
	if g := v.Verification; g == nil {
		x.Summary = append(x.Summary, "No gate decision is recorded for this container (its event log has none).")
	} else {
		switch g.Decision {
		case "verified":
			x.Summary = append(x.Summary, fmt.Sprintf("The verification gate verified image %s under policy %q (%s) in %.1f ms.", g.Image, g.Policy, g.Mode, g.Seconds*1000))
		case "unverified":
			x.Summary = append(x.Summary, fmt.Sprintf("The image %s is NOT verified under policy %q, which is %s and let it run: %s", g.Image, g.Policy, g.Mode, g.Message))
		default:
			x.Summary = append(x.Summary, fmt.Sprintf("The verification gate %s image %s under policy %q (%s): %s", g.Decision, g.Image, g.Policy, g.Mode, g.Message))
		}
	}
	if v.Profile != "" {
		who := map[string]string{"annotation": "the run request chose it", "config": "the operator's runtime config sets it", "default": "vordr's default"}[v.ProfileFrom]
		x.Summary = append(x.Summary, fmt.Sprintf("Profile %q guards it (%s).", v.Profile, who))
	}
	for _, a := range x.Alerts {
		keys := make([]string, 0, len(a.Evidence))
		for k := range a.Evidence {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var ev []string
		for _, k := range keys {
			ev = append(ev, k+"="+a.Evidence[k])
		}
		line := fmt.Sprintf("Alert %s (%s): %s", a.Rule, a.Severity, a.Message)
		if len(ev) > 0 {
			line += " [" + strings.Join(ev, " ") + "]"
		}
		x.Summary = append(x.Summary, line)
	}
	for _, e := range x.Refused {
		what := e.Path
		if e.Kind == monitor.KindConnect || e.Kind == monitor.KindBind || e.Kind == monitor.KindSend {
			what = fmt.Sprintf("%s %s:%d", e.Protocol, e.Addr, e.Port)
		} else if e.Kind == monitor.KindSyscall {
			what = e.Syscall
		}
		x.Summary = append(x.Summary, fmt.Sprintf("%s %s %s by %s under profile %q.", strings.ToUpper(string(e.Verdict)), e.Kind, what, e.Mechanism, v.Profile))
	}
	if len(x.Alerts) == 0 && len(x.Refused) == 0 {
		x.Summary = append(x.Summary, "The guard raised no alert and refused nothing.")
	}
	return x, nil
}

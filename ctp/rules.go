package ctp

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vordr-project/vordr/ctp/policy"
)

// PredicateVuln is cosign's vulnerability-scan predicate (`cosign attest
// --type vuln`), which policy [vulnerabilities] rules read.
const PredicateVuln = "https://cosign.sigstore.dev/attestation/vuln/v1"

// verifiedStatement is an attestation that met the threshold, with the
// times trusted observers saw its signatures.
type verifiedStatement struct {
	where    string
	st       Statement
	sigs     []string // counted signature digests (DSSE)
	signedAt []time.Time
	// coversTOML: the statement names manifest.toml, so its image_ref is
	// signed; names: other subjects naming the image manifest (sigstore).
	coversTOML bool
	names      []string
}

// checkRules applies the policy's freshness and vulnerability rules to the
// verified attestations. Each failure is POLICY_DENIED naming the rule.
func checkRules(p *policy.Policy, verified []verifiedStatement, now time.Time) error {
	skew := p.ClockSkew.D()
	if skew == 0 {
		skew = policy.DefaultClockSkew
	}
	// fresh reports why t is not within max of now (with the skew both
	// ways), or "".
	fresh := func(t time.Time, max time.Duration) string {
		switch {
		case t.After(now.Add(skew)):
			return fmt.Sprintf("%s is in the future (now %s, clock_skew %s)", t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
		case now.Sub(t) > max+skew:
			return fmt.Sprintf("%s is %s old, more than %s", t.UTC().Format(time.RFC3339), now.Sub(t).Round(time.Second), max)
		}
		return ""
	}
	if max := p.MaxSignatureAge.D(); max > 0 {
		for _, v := range verified {
			if len(v.signedAt) == 0 {
				return newErrorAt(CodePolicyDenied, v.where, "max_signature_age is set and no trusted observer timed this attestation's signatures (no entry in a trusted log, no verified timestamp)")
			}
			// The newest observation counts: a fresh re-signing renews an
			// attestation.
			newest := v.signedAt[0]
			for _, t := range v.signedAt[1:] {
				if t.After(newest) {
					newest = t
				}
			}
			if why := fresh(newest, max); why != "" {
				return newErrorAt(CodePolicyDenied, v.where, "signed at %s (max_signature_age)", why)
			}
		}
	}
	if max := p.MaxAge.D(); max > 0 {
		n := 0
		for _, v := range verified {
			if v.st.PredicateType != PredicateSLSA && v.st.PredicateType != PredicateSLSAv02 {
				continue
			}
			n++
			t, err := buildTime(v.st)
			if err != nil {
				return newErrorAt(CodePolicyDenied, v.where, "max_age: %v", err)
			}
			if why := fresh(t, max); why != "" {
				return newErrorAt(CodePolicyDenied, v.where, "the provenance's build finished at %s (max_age)", why)
			}
		}
		if n == 0 {
			return newError(CodePolicyDenied, "max_age is set and no verified SLSA provenance dates the build")
		}
	}
	if vr := p.Vulnerabilities; vr != nil {
		var scans []scan
		for _, v := range verified {
			if v.st.PredicateType != PredicateVuln {
				continue
			}
			s, err := parseScan(v.st.Predicate)
			if err != nil {
				return newErrorAt(CodePolicyDenied, v.where, "vulnerability scan: %v", err)
			}
			s.where = v.where
			scans = append(scans, s)
		}
		if len(scans) == 0 {
			return newError(CodeMissingAttestation, "[vulnerabilities] is set and no verified attestation with predicate type %s (cosign attest --type vuln) is present", PredicateVuln)
		}
		// The newest scan speaks for the image.
		sort.SliceStable(scans, func(i, j int) bool { return scans[i].finished.After(scans[j].finished) })
		s := scans[0]
		if max := vr.MaxAge.D(); max > 0 {
			if s.finished.IsZero() {
				return newErrorAt(CodePolicyDenied, s.where, "vulnerabilities.max_age is set and the scan has no metadata.scanFinishedOn")
			}
			if why := fresh(s.finished, max); why != "" {
				return newErrorAt(CodePolicyDenied, s.where, "the newest vulnerability scan finished at %s (vulnerabilities.max_age)", why)
			}
		}
		for _, b := range []struct {
			sev string
			max *int
		}{{"CRITICAL", vr.MaxCritical}, {"HIGH", vr.MaxHigh}} {
			if b.max != nil && len(s.counts[b.sev]) > *b.max {
				ids := s.counts[b.sev]
				if len(ids) > 5 {
					ids = append(ids[:5:5], "…")
				}
				return newErrorAt(CodePolicyDenied, s.where, "the scan by %s reports %d %s vulnerabilities (%s); the policy allows %d",
					s.scanner, len(s.counts[b.sev]), strings.ToLower(b.sev), strings.Join(ids, ", "), *b.max)
			}
		}
	}
	return nil
}

// buildTime is when a SLSA provenance says the build finished (or started,
// when it gives no finish).
func buildTime(st Statement) (time.Time, error) {
	var p struct {
		RunDetails struct {
			Metadata struct {
				StartedOn  string `json:"startedOn"`
				FinishedOn string `json:"finishedOn"`
			} `json:"metadata"`
		} `json:"runDetails"`
		Metadata struct {
			BuildStartedOn  string `json:"buildStartedOn"`
			BuildFinishedOn string `json:"buildFinishedOn"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(st.Predicate, &p); err != nil {
		return time.Time{}, err
	}
	for _, s := range []string{p.RunDetails.Metadata.FinishedOn, p.Metadata.BuildFinishedOn, p.RunDetails.Metadata.StartedOn, p.Metadata.BuildStartedOn} {
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("build time %q: %w", s, err)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("the provenance (%s) gives no build time (finishedOn/startedOn)", st.PredicateType)
}

// scan is a vulnerability scan's findings: distinct ids by severity.
type scan struct {
	where    string
	scanner  string
	finished time.Time
	counts   map[string][]string
}

// parseScan reads cosign's vuln predicate. Its scanner.result is the
// scanner's own report: Trivy's JSON (Results[].Vulnerabilities[]) and
// Grype's JSON (matches[].vulnerability) are understood; anything else is
// refused rather than counted as zero.
func parseScan(pred json.RawMessage) (scan, error) {
	var p struct {
		Scanner struct {
			URI     string          `json:"uri"`
			Version string          `json:"version"`
			Result  json.RawMessage `json:"result"`
		} `json:"scanner"`
		Metadata struct {
			ScanFinishedOn string `json:"scanFinishedOn"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(pred, &p); err != nil {
		return scan{}, err
	}
	s := scan{scanner: p.Scanner.URI, counts: map[string][]string{}}
	if s.scanner == "" {
		s.scanner = "an unnamed scanner"
	}
	if p.Metadata.ScanFinishedOn != "" {
		t, err := time.Parse(time.RFC3339, p.Metadata.ScanFinishedOn)
		if err != nil {
			return scan{}, fmt.Errorf("scanFinishedOn %q: %w", p.Metadata.ScanFinishedOn, err)
		}
		s.finished = t
	}
	var r struct {
		Results *[]struct {
			Vulnerabilities []struct {
				VulnerabilityID string `json:"VulnerabilityID"`
				Severity        string `json:"Severity"`
			} `json:"Vulnerabilities"`
		} `json:"Results"`
		Matches *[]struct {
			Vulnerability struct {
				ID       string `json:"id"`
				Severity string `json:"severity"`
			} `json:"vulnerability"`
		} `json:"matches"`
	}
	if len(p.Scanner.Result) == 0 || json.Unmarshal(p.Scanner.Result, &r) != nil || (r.Results == nil && r.Matches == nil) {
		return scan{}, fmt.Errorf("scanner.result of %s is neither a Trivy nor a Grype JSON report: its findings cannot be counted", s.scanner)
	}
	seen := map[string]bool{}
	add := func(id, sev string) {
		sev = strings.ToUpper(sev)
		if id == "" || seen[sev+" "+id] {
			return
		}
		seen[sev+" "+id] = true
		s.counts[sev] = append(s.counts[sev], id)
	}
	if r.Results != nil {
		for _, res := range *r.Results {
			for _, v := range res.Vulnerabilities {
				add(v.VulnerabilityID, v.Severity)
			}
		}
	}
	if r.Matches != nil {
		for _, m := range *r.Matches {
			add(m.Vulnerability.ID, m.Vulnerability.Severity)
		}
	}
	for _, ids := range s.counts {
		sort.Strings(ids)
	}
	return s, nil
}

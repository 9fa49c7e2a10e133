package ctp

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func verifyAt(t *testing.T, f *fixture, polTOML string, now time.Time) (*Result, error) {
	t.Helper()
	p := f.loadPolicy(t, polTOML)
	b, err := OpenFile(f.bundle, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return Verify(context.Background(), b, p, VerifyOptions{Now: now})
}

func wantCode(t *testing.T, name string, err error, code Code, msg string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code || !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: want %s mentioning %q, got %v", name, code, msg, err)
	}
}

// The freshness rules: the provenance's build time and the trusted log's
// signing time must be within their bounds of the verification time, with
// the clock skew both ways; a time in the future is refused.
func TestFreshnessRules(t *testing.T) {
	f := newFixture(t)
	base := f.polTOML
	with := func(extra string) string {
		return strings.Replace(base, "threshold = 1\n", "threshold = 1\n"+extra+"\n", 1)
	}

	for name, tc := range map[string]struct {
		pol  string
		now  time.Time
		code Code
		msg  string
	}{
		"build within max_age":               {with(`max_age = "30d"`), testTime.Add(29 * 24 * time.Hour), "", ""},
		"build older than max_age":           {with(`max_age = "30d"`), testTime.Add(31 * 24 * time.Hour), CodePolicyDenied, "max_age"},
		"build just past max_age, in skew":   {with(`max_age = "30d"`), testTime.Add(30*24*time.Hour + 4*time.Minute), "", ""},
		"build past max_age and skew":        {with("max_age = \"30d\"\nclock_skew = \"1m\""), testTime.Add(30*24*time.Hour + 4*time.Minute), CodePolicyDenied, "max_age"},
		"build in the future":                {with(`max_age = "30d"`), testTime.Add(-time.Hour), CodePolicyDenied, "in the future"},
		"signature within max_signature_age": {with(`max_signature_age = "7d"`), testTime.Add(6 * 24 * time.Hour), "", ""},
		"signature too old":                  {with(`max_signature_age = "7d"`), testTime.Add(8 * 24 * time.Hour), CodePolicyDenied, "max_signature_age"},
		"denied ref":                         {with(`denied_image_refs = ["example.com/*"]`), testTime, CodePolicyDenied, "denied_image_refs"},
		"denied wins over allowed":           {with("allowed_image_refs = [\"example.com/app:*\"]\ndenied_image_refs = [\"*/app:1.0.0\"]"), testTime, CodePolicyDenied, "denied_image_refs"},
		"other ref not denied":               {with(`denied_image_refs = ["other.example/*"]`), testTime, "", ""},
	} {
		res, err := verifyAt(t, f, tc.pol, tc.now)
		if tc.code == "" {
			if err != nil || res.Decision != Accept {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		wantCode(t, name, err, tc.code, tc.msg)
	}

	// A bundle whose signatures no trusted log timed fails
	// max_signature_age: nothing proves when it was signed.
	noLog := strings.Replace(strings.Replace(base, "log_quorum = 1\n", "", 1), "[[logs]]\npublic_key = \""+f.log.VKey+"\"\n", "", 1)
	noLog = strings.Replace(noLog, "threshold = 1\n", "threshold = 1\nmax_signature_age = \"7d\"\n", 1)
	_, err := verifyAt(t, f, noLog, testTime)
	wantCode(t, "signature timed by no trusted log", err, CodePolicyDenied, "no trusted observer")
}

func TestParseScan(t *testing.T) {
	trivy := `{"scanner":{"uri":"pkg:github/aquasecurity/trivy@v0.50.0","result":{"Results":[{"Vulnerabilities":[
		{"VulnerabilityID":"CVE-1","Severity":"CRITICAL"},{"VulnerabilityID":"CVE-1","Severity":"CRITICAL"},
		{"VulnerabilityID":"CVE-2","Severity":"HIGH"}]},{"Vulnerabilities":[{"VulnerabilityID":"CVE-3","Severity":"HIGH"}]}]}},
		"metadata":{"scanFinishedOn":"2025-01-02T03:04:05Z"}}`
	s, err := parseScan(json.RawMessage(trivy))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.counts["CRITICAL"]) != 1 || len(s.counts["HIGH"]) != 2 || s.finished.IsZero() {
		t.Errorf("trivy: %+v", s)
	}
	grype := `{"scanner":{"uri":"grype","result":{"matches":[{"vulnerability":{"id":"GHSA-1","severity":"High"}},{"vulnerability":{"id":"GHSA-2","severity":"Critical"}}]}}}`
	if s, err := parseScan(json.RawMessage(grype)); err != nil || len(s.counts["HIGH"]) != 1 || len(s.counts["CRITICAL"]) != 1 {
		t.Errorf("grype: %+v %v", s, err)
	}
	for _, bad := range []string{`{"scanner":{"uri":"x","result":{"sarif":1}}}`, `{"scanner":{"uri":"x"}}`, `{"scanner":{"result":{"Results":[]}},"metadata":{"scanFinishedOn":"yesterday"}}`} {
		if _, err := parseScan(json.RawMessage(bad)); err == nil {
			t.Errorf("%s: counted", bad)
		}
	}
}

package policy

import (
	"strings"
	"testing"
	"time"
)

func TestFreshnessAndVulnRulesParse(t *testing.T) {
	p, err := Parse([]byte(`version = 1
max_age = "30d"
max_signature_age = "720h"
clock_skew = "1m"
denied_image_refs = ["*/legacy/*"]
[vulnerabilities]
max_critical = 0
max_high = 3
max_age = "7d"
[[signers]]
key_id = "sha256:`+strings.Repeat("a", 64)+`"
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if p.MaxAge.D() != 30*24*time.Hour || p.MaxSignatureAge.D() != 720*time.Hour || p.ClockSkew.D() != time.Minute {
		t.Errorf("durations: %v %v %v", p.MaxAge.D(), p.MaxSignatureAge.D(), p.ClockSkew.D())
	}
	if v := p.Vulnerabilities; v == nil || *v.MaxCritical != 0 || *v.MaxHigh != 3 || v.MaxAge.D() != 7*24*time.Hour {
		t.Errorf("vulnerabilities: %+v", p.Vulnerabilities)
	}
	def, err := Parse([]byte("version = 1\n[[signers]]\nkey_id = \"sha256:"+strings.Repeat("a", 64)+"\"\n"), "")
	if err != nil || def.ClockSkew.D() != DefaultClockSkew {
		t.Errorf("default clock skew: %v %v", err, def.ClockSkew.D())
	}
	for _, bad := range []string{
		`max_age = "soon"`, `max_age = "-1h"`, `max_age = "1.5d"`, `denied_image_refs = ["["]`,
		"[vulnerabilities]\nmax_high = -1", "[vulnerabilities]\n",
	} {
		if _, err := Parse([]byte("version = 1\n"+bad+"\n[[signers]]\nkey_id = \"sha256:"+strings.Repeat("a", 64)+"\"\n"), ""); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

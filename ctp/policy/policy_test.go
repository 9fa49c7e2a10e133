package policy

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/vordr-project/vordr/ctp/keys"
)

func setup(t *testing.T) (dir, keyID, vkey string) {
	dir = t.TempDir()
	_, pub, err := keys.Generate(keys.Ed25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "release.pub"), pub, 0o644)
	k, _ := keys.ParsePublicKey(pub)
	_, vkey, err = note.GenerateKey(rand.Reader, "log.example.com")
	if err != nil {
		t.Fatal(err)
	}
	return dir, k.ID, vkey
}

func TestLoadTOML(t *testing.T) {
	dir, id, vkey := setup(t)
	text := `version = 1
mode = "permissive"
required_predicates = ["https://slsa.dev/provenance/v1"]
log_quorum = 1
threshold = 1

[[signers]]
name = "release"
key = "release.pub"
valid_until = 2027-12-31T00:00:00Z

[[logs]]
public_key = "` + vkey + `"
origin = "log.example.com"
`
	p := filepath.Join(dir, "policy.toml")
	os.WriteFile(p, []byte(text), 0o644)
	pol, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if pol.Mode != Permissive || pol.Threshold != 1 || pol.LogQuorum != 1 || len(pol.Signers) != 1 || len(pol.Logs) != 1 {
		t.Fatalf("%+v", pol)
	}
	s := pol.Signers[0]
	if s.KeyID != id || s.Resolved == nil || s.Name != "release" {
		t.Errorf("signer %+v", s)
	}
	if !s.Window(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || s.Window(time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("validity window wrong")
	}
	if pol.Logs[0].Resolved == nil || !strings.HasPrefix(pol.Logs[0].ID, "sha256:") {
		t.Errorf("log %+v", pol.Logs[0])
	}
}

func TestGatekeeperJSON(t *testing.T) {
	dir, id, vkey := setup(t)
	text := `{"version":1,"mode":"strict","requiredPredicates":["https://slsa.dev/provenance/v1"],
	"allowedSigners":["` + id + `",{"name":"release","key":"release.pub","validUntil":"2030-01-01T00:00:00Z"}],
	"logQuorum":1,"threshold":1,"logs":[{"publicKey":"` + vkey + `"}]}`
	_, err := Parse([]byte(text), dir)
	// The same key twice is an error.
	if err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("got %v", err)
	}
	text = strings.Replace(text, `"`+id+`",`, "", 1)
	pol, err := Parse([]byte(text), dir)
	if err != nil {
		t.Fatal(err)
	}
	if pol.Signers[0].KeyID != id || pol.LogQuorum != 1 || pol.Mode != Strict {
		t.Errorf("%+v", pol)
	}
	// Key-id-only signers resolve later (from verify --key).
	pol, err = Parse([]byte(`{"allowedSigners":["`+id+`"]}`), dir)
	if err != nil || pol.Signers[0].Resolved != nil || pol.Version != 1 {
		t.Fatalf("%v %+v", err, pol)
	}
	if _, err := Parse([]byte(`{"mode":"strict","mode":"audit"}`), dir); err == nil {
		t.Fatal("duplicate key accepted")
	}
}

func TestErrorsHaveLines(t *testing.T) {
	dir, _, _ := setup(t)
	for _, tc := range []struct {
		text string
		line int
		msg  string
	}{
		{"version = 1\nmode = \"yolo\"\n[[signers]]\nkey = \"release.pub\"\n", 2, "mode must be"},
		{"version = 1\n[[signers]]\nkey = \"release.pub\"\n[[signers]]\nkey_id = \"sha256:nope\"\n", 5, "key_id must be"},
		{"version = 1\n[[signers]]\nkey = \"missing.pub\"\n", 3, "cannot read key"},
		{"version = 1\n[[signers]]\nkey = \"release.pub\"\nthreshold = 2\n", 4, "top-level"},
		{"version = 1\nbogus = 3\n", 2, "unknown field"},
		{"version = 1\nmode = \n", 2, ""},
		{"version = 2\n[[signers]]\nkey = \"release.pub\"\n", 1, "version must be 1"},
		{"version = 1\nthreshold = 3\n[[signers]]\nkey = \"release.pub\"\n", 2, "threshold 3"},
		{"version = 1\nlog_quorum = 1\n[[signers]]\nkey = \"release.pub\"\n", 2, "log_quorum"},
		{"version = 1\n[[signers]]\nkey = \"release.pub\"\n[[logs]]\npublic_key = \"junk\"\n", 5, "log public key"},
		{"version = 1\nmode = \"strict\"\nmode = \"audit\"\n", 3, ""},
	} {
		_, err := Parse([]byte(tc.text), dir)
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Errorf("%q: got %v", tc.text, err)
			continue
		}
		if es[0].Line != tc.line || !strings.Contains(es[0].Msg, tc.msg) {
			t.Errorf("%q: got line %d %q, want line %d %q", tc.text, es[0].Line, es[0].Msg, tc.line, tc.msg)
		}
	}
}

// FuzzParse runs its seed corpus in every `go test`; `make fuzz` runs it long.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"version = 1\nmode = \"strict\"\nthreshold = 1\n[[signers]]\nkey_id = \"sha256:" + strings.Repeat("a", 64) + "\"\n",
		"version = 1\n[[logs]]\npublic_key = \"x+1+AQ\"\n",
		`{"version":1,"allowedSigners":["sha256:` + strings.Repeat("b", 64) + `"],"logQuorum":0}`,
		"version = 1\nrequired_predicates = [\"a\", \"b\"]\nallowed_image_refs = [\"[\"]\n",
		"[[signers]]\nvalid_until = 2027-12-31T00:00:00Z\nvalid_from = 2028-01-01T00:00:00Z\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, t.TempDir())
		if err == nil && (p.Version != 1 || p.Threshold < 1) {
			t.Fatalf("accepted an invalid policy: %+v", p)
		}
		var es Errors
		if err != nil && !errors.As(err, &es) {
			t.Fatalf("error of type %T", err)
		}
	})
}

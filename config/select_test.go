package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
)

// writePolicies writes policies of each mode into dir.
func writePolicies(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, mode := range []string{"strict", "permissive", "audit"} {
		p := filepath.Join(dir, mode+".toml")
		if err := os.WriteFile(p, []byte(fmt.Sprintf("version = 1\nmode = %q\n[[signers]]\nkey_id = \"sha256:%064x\"\n", mode, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		out[mode] = p
	}
	return out
}

// TestSelect covers every combination of default profile, annotation and
// operator rules: the one decision the gate and the guard share.
func TestSelect(t *testing.T) {
	dir := t.TempDir()
	pol := writePolicies(t, dir)
	web := filepath.Join(dir, "web.toml")
	if err := os.WriteFile(web, []byte("name = \"web\"\n[network]\nconnect = \"deny\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	policies := fmt.Sprintf("[policies]\nstrict = %q\npermissive = %q\naudit = %q\n", pol["strict"], pol["permissive"], pol["audit"])
	webDecl := fmt.Sprintf("[profiles.web]\npath = %q\nlevel = \"balanced\"\n", web)

	type want struct{ profile, from, policy, err string }
	for _, tc := range []struct {
		name   string
		config string
		ann    map[string]string
		want   want
	}{
		{"no config", "", nil, want{profile: "balanced", from: "default"}},
		{"config default", `profile = "strict"`, nil, want{profile: "strict", from: "config"}},
		{"annotation tightens", `profile = "balanced"`, map[string]string{AnnotationProfile: "strict"}, want{profile: "strict", from: "annotation"}},
		{"annotation equal", `profile = "strict"`, map[string]string{AnnotationProfile: "strict"}, want{profile: "strict", from: "annotation"}},
		{"annotation loosens to dev", `profile = "strict"`, map[string]string{AnnotationProfile: "dev"}, want{err: "weaker than the container's default profile"}},
		{"annotation loosens to balanced", `profile = "strict"`, map[string]string{AnnotationProfile: "balanced"}, want{err: "may only tighten; allowed values: strict"}},
		{"annotation loosens under the default", "", map[string]string{AnnotationProfile: "dev"}, want{err: "weaker"}},
		{"inline TOML", `profile = "strict"`, map[string]string{AnnotationProfile: "name = \"x\"\nrequired = false\n"}, want{err: "is not a profile the operator made selectable"}},
		{"host path", `profile = "strict"`, map[string]string{AnnotationProfile: "/etc/vordr/dev.toml"}, want{err: "is not a profile the operator made selectable"}},
		{"fifo path", `profile = "strict"`, map[string]string{AnnotationProfile: "/tmp/fifo.toml"}, want{err: "never paths"}},
		{"unknown name", "", map[string]string{AnnotationProfile: "nosuch"}, want{err: "allowed values: balanced, hardened, strict"}},
		{"unknown name, strict default", `profile = "strict"`, map[string]string{AnnotationProfile: "nosuch"}, want{err: "allowed values: strict ("}},
		{"operator allows loosening", "profile = \"strict\"\n[annotations]\nloosen = [\"dev\"]\n", map[string]string{AnnotationProfile: "dev"}, want{profile: "dev", from: "annotation"}},
		{"operator narrows the list", "profile = \"balanced\"\n[annotations]\nprofiles = [\"balanced\"]\n", map[string]string{AnnotationProfile: "strict"}, want{err: "allowed values: balanced"}},
		{"operator allows none", "[annotations]\nprofiles = []\n", map[string]string{AnnotationProfile: "strict"}, want{err: "the operator allows no value"}},
		{"declared profile as default", "profile = \"web\"\n" + webDecl, nil, want{profile: "web", from: "config"}},
		{"declared profile selectable", "profile = \"dev\"\n[annotations]\nprofiles = [\"web\", \"strict\"]\n" + webDecl, map[string]string{AnnotationProfile: "web"}, want{profile: "web", from: "annotation"}},
		{"declared profile weaker", "profile = \"strict\"\n[annotations]\nprofiles = [\"web\"]\n" + webDecl, map[string]string{AnnotationProfile: "web"}, want{err: "weaker"}},
		{"no policy", "", nil, want{profile: "balanced", from: "default"}},
		{"default policy", "default_policy = \"strict\"\n" + policies, nil, want{profile: "balanced", from: "default", policy: "strict"}},
		{"policy annotation, no default", policies, map[string]string{AnnotationPolicy: "audit"}, want{profile: "balanced", from: "default", policy: "audit"}},
		{"policy annotation tightens", "default_policy = \"permissive\"\n" + policies, map[string]string{AnnotationPolicy: "strict"}, want{profile: "balanced", from: "default", policy: "strict"}},
		{"policy annotation loosens", "default_policy = \"strict\"\n" + policies, map[string]string{AnnotationPolicy: "audit"}, want{err: "weaker than the default policy"}},
		{"policy annotation loosens, allowed", "default_policy = \"strict\"\n[annotations]\nloosen = [\"audit\"]\n" + policies, map[string]string{AnnotationPolicy: "audit"}, want{profile: "balanced", from: "default", policy: "audit"}},
		{"policy annotation unknown", policies, map[string]string{AnnotationPolicy: "nosuch"}, want{err: "allowed values: audit, permissive, strict"}},
		{"policy annotation is a path", policies, map[string]string{AnnotationPolicy: pol["audit"]}, want{err: "is not a policy the operator made selectable"}},
		{"policy not selectable", "[annotations]\npolicies = [\"strict\"]\n" + policies, map[string]string{AnnotationPolicy: "audit"}, want{err: "allowed values: strict"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.config), "test")
			if err != nil {
				t.Fatal(err)
			}
			sel, err := cfg.Select(tc.ann)
			if tc.want.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want.err) {
					t.Fatalf("Select = %v, want error containing %q", err, tc.want.err)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Errorf("error is not InvalidArgument: %v", err)
				}
				if (tc.ann[AnnotationProfile] != "" || tc.ann[AnnotationPolicy] != "") && !errors.Is(err, ErrAnnotationRefused) {
					t.Errorf("error is not ErrAnnotationRefused: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sel.ProfileName != tc.want.profile || sel.ProfileFrom != tc.want.from || sel.Profile == nil || sel.Profile.Name != tc.want.profile {
				t.Errorf("profile = %q from %q (%v), want %q from %q", sel.ProfileName, sel.ProfileFrom, sel.Profile, tc.want.profile, tc.want.from)
			}
			if sel.PolicyName != tc.want.policy || (tc.want.policy != "") != (sel.Policy != nil) {
				t.Errorf("policy = %q (%v), want %q", sel.PolicyName, sel.Policy, tc.want.policy)
			}
		})
	}
}

func TestParseRefusesUndeclared(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`profile = "/etc/vordr/p.toml"`, "[profiles.NAME]"},
		{"profile = \"name = 1\"", "[profiles.NAME]"},
		{`profile = "nosuch"`, "no such profile"},
		{"[profiles.x]\npath = \"rel.toml\"\nlevel = \"strict\"\n", "must be absolute"},
		{"[profiles.x]\npath = \"/x.toml\"\nlevel = \"max\"\n", "level"},
		{"[profiles.strict]\npath = \"/x.toml\"\nlevel = \"strict\"\n", "built-in"},
		{"[annotations]\nprofiles = [\"nosuch\"]\n", "annotations.profiles"},
		{"[annotations]\npolicies = [\"nosuch\"]\n", "annotations.policies"},
		{"[annotations]\nloosen = [\"nosuch\"]\n", "annotations.loosen"},
		{"[policies]\np = \"rel.toml\"\n", "must be absolute"},
	} {
		if _, err := Parse([]byte(tc.body), "test"); err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.IsInvalidArgument(err) {
			t.Errorf("Parse(%q) = %v, want InvalidArgument containing %q", tc.body, err, tc.want)
		}
	}
}

// TestReadFile: operator files are regular, private to the operator and
// bounded; a FIFO or a device never blocks or grows the shim.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.toml")
	os.WriteFile(ok, []byte("x"), 0o644)
	if _, err := ReadFile(ok); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.toml")
	os.Symlink(ok, link)
	if _, err := ReadFile(link); err != nil {
		t.Errorf("symlink to a good file: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ww := filepath.Join(dir, "ww.toml")
	os.WriteFile(ww, []byte("x"), 0o644)
	os.Chmod(ww, 0o666)
	big := filepath.Join(dir, "big.toml")
	os.WriteFile(big, make([]byte, MaxFileSize+1), 0o644)
	for path, want := range map[string]string{
		fifo:             "not a regular file",
		"/dev/zero":      "not a regular file",
		dir:              "not a regular file",
		ww:               "writable by group or others",
		big:              "more than",
		dir + "/missing": "does not exist",
	} {
		if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadFile(%s) = %v, want %q", path, err, want)
		}
	}
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       Runc
	}{
		{"section", "[runc]\nSystemdCgroup = true\nBinaryName = \"/usr/bin/crun\"\nRoot = \"/r\"\n",
			Runc{SystemdCgroup: true, BinaryName: "/usr/bin/crun", Root: "/r"}},
		{"top level, as a runc.v2 entry writes it", "SystemdCgroup = true\nRoot = \"/top\"\n",
			Runc{SystemdCgroup: true, Root: "/top"}},
		{"section wins", "Root = \"/top\"\nIoUid = 5\n[runc]\nRoot = \"/sec\"\n",
			Runc{Root: "/sec", IoUid: 5}},
		{"empty", "", Runc{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.body), "test")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Runc != tc.want {
				t.Errorf("got %+v, want %+v", cfg.Runc, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"[runc]\nSystemdCgrup = true\n", `unknown key "runc.SystemdCgrup" (line 2)`},
		{"Bogus = 1\n", `unknown key "Bogus" (line 1)`},
		{"[runc]\nRoot = 5\n", "line 2"},
		{"[runc\n", "line 1"},
	} {
		_, err := Parse([]byte(tc.body), "test")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", tc.body, err, tc.want)
		}
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("Parse(%q) error is not InvalidArgument: %v", tc.body, err)
		}
	}
}

func TestFromOptions(t *testing.T) {
	t.Setenv("VORDR_CONFIG", "")
	path := filepath.Join(t.TempDir(), "vordr.toml")
	if err := os.WriteFile(path, []byte("[runc]\nRoot = \"/from-file\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustAny := func(v any) typeurl.Any {
		a, err := typeurl.MarshalAny(v)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		name string
		opts typeurl.Any
		want string // Runc.Root
	}{
		{"runc options", mustAny(&options.Options{Root: "/runc-root", SystemdCgroup: true}), "/runc-root"},
		{"runtimeoptions body", mustAny(&runtimeoptions.Options{ConfigBody: []byte("[runc]\nRoot = \"/body\"\n")}), "/body"},
		{"runtimeoptions path", mustAny(&runtimeoptions.Options{ConfigPath: path}), "/from-file"},
		{"none", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := FromOptions(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Runc.Root != tc.want {
				t.Errorf("Root %q, want %q", cfg.Runc.Root, tc.want)
			}
			if got := cfg.RuncOptions().Root; got != tc.want {
				t.Errorf("RuncOptions().Root %q, want %q", got, tc.want)
			}
		})
	}

	_, err := FromOptions(mustAny(durationpb.New(1)))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "google.protobuf.Duration") {
		t.Errorf("unknown type: %v", err)
	}
	_, err = FromOptions(mustAny(&runtimeoptions.Options{ConfigPath: "/nonexistent.toml"}))
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
}

func TestDefaultFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vordr.toml")
	if err := os.WriteFile(path, []byte("Root = \"/env\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VORDR_CONFIG", path)
	cfg, err := FromOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Runc.Root != "/env" || cfg.Source != path {
		t.Errorf("got %+v", cfg)
	}
}

func TestParseGuardSettings(t *testing.T) {
	cfg, err := Parse([]byte(`profile = "strict"
default_policy = "prod"
[policies]
prod = "/etc/vordr/prod.toml"
[events]
dir = "/var/log/x"
max_file_bytes = 1024
webhook = "http://127.0.0.1:9/alerts"
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Profile != "strict" || cfg.Policies["prod"] != "/etc/vordr/prod.toml" || cfg.DefaultPolicy != "prod" ||
		cfg.Events.Dir != "/var/log/x" || cfg.Events.MaxFileBytes != 1024 || cfg.Events.Webhook == "" {
		t.Errorf("got %+v", cfg)
	}
	if _, err := Parse([]byte("default_policy = \"nope\"\n"), "test"); err == nil || !strings.Contains(err.Error(), `default_policy "nope" is not defined`) {
		t.Errorf("undefined default policy: %v", err)
	}
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
)

// TestDeployerRuntimeOptions: with trust.runtime_options = "deployer" in the
// node config, a client's runtime options (ctr --runtime-config-path) cannot
// loosen the node's choice or point the shim at other files or binaries.
func TestDeployerRuntimeOptions(t *testing.T) {
	dir := t.TempDir()
	node := filepath.Join(dir, "runtime.toml")
	if err := os.WriteFile(node, []byte("profile = \"balanced\"\n[trust]\nruntime_options = \"deployer\"\n[runc]\nRoot = \"/node\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VORDR_CONFIG", node)
	body := func(s string) typeurl.Any {
		a, err := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigBody: []byte(s)})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	devFile := filepath.Join(dir, "dev.toml")
	os.WriteFile(devFile, []byte("profile = \"dev\"\n"), 0o644)
	pathOpt, _ := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigPath: devFile})
	nodeOpt, _ := typeurl.MarshalAnyToProto(&runtimeoptions.Options{ConfigPath: node})
	fakeRunc, _ := typeurl.MarshalAnyToProto(&options.Options{BinaryName: "/tmp/fake-runc"})
	okRunc, _ := typeurl.MarshalAnyToProto(&options.Options{Root: "/node", SystemdCgroup: true})

	for _, tc := range []struct {
		name    string
		opts    typeurl.Any
		err     string
		profile string
		root    string
	}{
		{"loosen by body", body(`profile = "dev"`), "weaker", "", ""},
		{"loosen by file", pathOpt, "weaker", "", ""},
		{"tighten by body", body(`profile = "strict"`), "", "strict", "/node"},
		{"runc root", body("[runc]\nRoot = \"/mine\"\n"), "runc.Root", "", ""},
		{"runc root, the node's", body("[runc]\nRoot = \"/node\"\nSystemdCgroup = true\n"), "", "balanced", "/node"},
		{"shim cgroup", body("[runc]\nShimCgroup = \"/evil\"\n"), "runc.ShimCgroup", "", ""},
		{"own policies", body("[policies]\nx = \"/tmp/x.toml\"\n"), "[policies] may be set by the operator only", "", ""},
		{"own profiles", body("[profiles.x]\npath = \"/tmp/x.toml\"\nlevel = \"strict\"\n"), "[profiles]", "", ""},
		{"own events dir", body("[events]\ndir = \"/tmp\"\n"), "[events]", "", ""},
		{"trust itself", body("[trust]\nruntime_options = \"operator\"\n"), "[trust]", "", ""},
		{"loosen list", body("[annotations]\nloosen = [\"dev\"]\n"), "[annotations]", "", ""},
		{"runc binary by body", body("[runc]\nBinaryName = \"/tmp/fake-runc\"\n"), "runc.BinaryName", "", ""},
		{"runc binary by runc options", fakeRunc, "runc.BinaryName", "", ""},
		{"runc options", okRunc, "", "balanced", "/node"},
		{"no pivot root", body("[runc]\nNoPivotRoot = true\n"), "NoPivotRoot", "", ""},
		{"the node file itself", nodeOpt, "", "balanced", "/node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := FromOptions(tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("FromOptions = %+v, %v; want InvalidArgument containing %q", cfg, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sel, err := cfg.Select(nil)
			if err != nil {
				t.Fatal(err)
			}
			if sel.ProfileName != tc.profile || cfg.Runc.Root != tc.root {
				t.Errorf("profile %q root %q, want %q %q", sel.ProfileName, cfg.Runc.Root, tc.profile, tc.root)
			}
		})
	}

	// Without the setting, runtime options are the operator's (CRI).
	os.WriteFile(node, []byte("profile = \"balanced\"\n"), 0o644)
	cfg, err := FromOptions(body(`profile = "dev"`))
	if err != nil || cfg.Profile != "dev" {
		t.Errorf("operator mode: %+v, %v", cfg, err)
	}
}

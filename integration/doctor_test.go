//go:build linux

package integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vordr-project/vordr/internal/daemon"
)

// TestDoctorInstall: `vordr doctor` checks the installation, not only the
// kernel: with the shim, containerd and runc on PATH and a valid runtime
// config it exits 0; a runtime config naming a policy that does not parse,
// or a PATH without the shim, makes it exit 1 and name the problem.
func TestDoctorInstall(t *testing.T) {
	bin := vordrBinary(t)
	shimDir, _ := filepath.Abs("../bin")
	toolchain := daemon.ToolchainDir()
	dir := t.TempDir()
	type check struct {
		Name     string `json:"name"`
		OK       bool   `json:"ok"`
		Required bool   `json:"required"`
		Detail   string `json:"detail"`
	}
	doctor := func(path, cfg string) (map[string]check, int) {
		cmd := exec.Command(bin, "doctor", "--json", "--containerd-confd", dir)
		cmd.Env = append(os.Environ(), "PATH="+path, "VORDR_CONFIG="+cfg, "VORDR_VERIFIER_CONFIG="+filepath.Join(dir, "none.toml"))
		out, err := cmd.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Install []check `json:"install"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("doctor --json: %v\n%s", err, out)
		}
		m := map[string]check{}
		for _, c := range rep.Install {
			m[c.Name] = c
		}
		return m, code
	}
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte(`profile = "balanced"`+"\n"), 0o600)
	path := shimDir + ":" + toolchain + ":/usr/sbin:/usr/bin:/sbin:/bin"
	m, code := doctor(path, good)
	for _, name := range []string{"shim", "shim-helper", "containerd", "runc", "runtime-config"} {
		if !m[name].OK {
			t.Errorf("doctor: %s: %s", name, m[name].Detail)
		}
	}
	if code != 0 {
		t.Errorf("doctor exits %d on a good install: %+v", code, m)
	}

	// A policy that does not parse.
	os.WriteFile(filepath.Join(dir, "bad.toml"), []byte("version = 1\nmode = \"lenient\"\n"), 0o600)
	broken := filepath.Join(dir, "broken.toml")
	os.WriteFile(broken, []byte("[policies]\nprod = \""+filepath.Join(dir, "bad.toml")+"\"\n"), 0o600)
	m, code = doctor(path, broken)
	if code != 1 || m["policy prod"].OK || !strings.Contains(m["policy prod"].Detail, "mode") {
		t.Errorf("doctor with a broken policy: exit %d, %+v", code, m["policy prod"])
	}

	// A shim without its helper, where alerts are to be posted: the
	// webhook would drop every alert.
	lone := filepath.Join(dir, "lone")
	os.MkdirAll(lone, 0o755)
	os.Symlink(filepath.Join(shimDir, "containerd-shim-vordr-v1"), filepath.Join(lone, "containerd-shim-vordr-v1"))
	hooked := filepath.Join(dir, "webhook.toml")
	os.WriteFile(hooked, []byte("[events]\nwebhook = \"https://alerts.example/hook\"\n"), 0o600)
	m, code = doctor(lone+":"+toolchain+":/usr/sbin:/usr/bin:/sbin:/bin", hooked)
	if code != 1 || m["shim-helper"].OK || !m["shim-helper"].Required {
		t.Errorf("doctor with no helper and a webhook: exit %d, %+v", code, m["shim-helper"])
	}

	// No shim on PATH.
	m, code = doctor(toolchain+":/usr/sbin:/usr/bin:/sbin:/bin", good)
	if code != 1 || m["shim"].OK {
		t.Errorf("doctor without the shim on PATH: exit %d, %+v", code, m["shim"])
	}
}

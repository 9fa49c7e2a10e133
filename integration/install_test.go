//go:build linux

package integration

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/plugin/verifier"
)

// TestMakeInstall installs into a temporary DESTDIR, as a packager does, and
// checks the tree: binaries, the verifier in its own bin_dir, the systemd
// unit pointing at the installed binary, sample configs that parse, shell
// completions and the man page; nothing lands outside DESTDIR; a second
// install keeps edited configs; uninstall removes all but the configs.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("skipping: make is not installed")
	}
	dest := t.TempDir()
	// A prefix that exists nowhere: if install ignored DESTDIR, it would
	// appear on the host.
	prefix := "/opt/vordr-install-test-" + filepath.Base(dest)
	_, etcErr := os.Stat("/etc/vordr")
	make := func(target string) string {
		cmd := exec.Command("make", "-C", "..", target, "DESTDIR="+dest, "PREFIX="+prefix)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
		return string(out)
	}
	make("install")
	root := filepath.Join(dest, prefix)
	want := map[string]os.FileMode{
		"bin/containerd-shim-vordr-v1":                 0o755,
		"bin/vordr":                                    0o755,
		"bin/vordr-snapshotter":                        0o755,
		"libexec/vordr/image-verifier/vordr-verifier":  0o755,
		"lib/systemd/system/vordr-snapshotter.service": 0o644,
		"lib/systemd/system/vordr-serve.service":       0o644,
		"share/bash-completion/completions/vordr":      0o644,
		"share/zsh/site-functions/_vordr":              0o644,
		"share/fish/vendor_completions.d/vordr.fish":   0o644,
		"share/man/man1/vordr.1":                       0o644,
		"share/doc/vordr/README.md":                    0o644,
		"../../etc/vordr/runtime.toml":                 0o644,
		"../../etc/vordr/verifier.toml":                0o644,
		"../../etc/vordr/serve.toml":                   0o644,
		"../../etc/vordr/policies/strict.toml":         0o644,
		"../../etc/vordr/policies/permissive.toml":     0o644,
	}
	for rel, mode := range want {
		p := filepath.Clean(filepath.Join(root, rel))
		if strings.HasPrefix(rel, "../../etc/") {
			p = filepath.Join(dest, strings.TrimPrefix(rel, "../.."))
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), mode)
		}
	}
	if _, err := os.Stat(prefix); !os.IsNotExist(err) {
		t.Errorf("install wrote outside DESTDIR: %s exists (%v)", prefix, err)
	}
	if _, err := os.Stat("/etc/vordr"); os.IsNotExist(etcErr) && !os.IsNotExist(err) {
		t.Errorf("install wrote /etc/vordr outside DESTDIR")
	}

	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if unit := read(filepath.Join(root, "lib/systemd/system/vordr-snapshotter.service")); !strings.Contains(unit, "ExecStart="+prefix+"/bin/vordr-snapshotter ") {
		t.Errorf("unit does not start the installed snapshotter:\n%s", unit)
	}
	if man := read(filepath.Join(root, "share/man/man1/vordr.1")); !strings.Contains(man, ".TH vordr 1") || !strings.Contains(man, "keygen") {
		t.Errorf("man page lacks its header or the commands:\n%.300s", man)
	}
	if c := read(filepath.Join(root, "share/bash-completion/completions/vordr")); !strings.Contains(c, "complete ") || !strings.Contains(c, " vordr") {
		t.Errorf("bash completion does not register for vordr:\n%s", c)
	}
	// The bash completion asks the installed program for words.
	out, err := exec.Command(filepath.Join(root, "bin/vordr"), "ctp", "--generate-bash-completion").Output()
	if err != nil || !strings.Contains(string(out), "verify") {
		t.Errorf("vordr ctp --generate-bash-completion: %v %q", err, out)
	}

	// The sample configs are valid: the runtime config as the shim reads
	// it, the verifier's, and the policies once the operator's key is there.
	etc := filepath.Join(dest, "etc/vordr")
	if _, err := config.Load(filepath.Join(etc, "runtime.toml")); err != nil {
		t.Errorf("sample runtime.toml: %v", err)
	}
	if _, err := verifier.LoadConfig(filepath.Join(etc, "verifier.toml")); err != nil {
		t.Errorf("sample verifier.toml: %v", err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	pem, _ := cryptoutils.MarshalPublicKeyToPEM(pub)
	os.WriteFile(filepath.Join(etc, "keys/release.pub"), pem, 0o644)
	for _, p := range []string{"strict", "permissive"} {
		pol, err := policy.Load(filepath.Join(etc, "policies", p+".toml"))
		if err != nil {
			t.Errorf("sample policy %s: %v", p, err)
		} else if string(pol.Mode) != p {
			t.Errorf("sample policy %s has mode %s", p, pol.Mode)
		}
	}

	// An operator's edit survives a reinstall.
	edited := read(filepath.Join(etc, "runtime.toml")) + "\n# edited\n"
	os.WriteFile(filepath.Join(etc, "runtime.toml"), []byte(edited), 0o644)
	make("install")
	if read(filepath.Join(etc, "runtime.toml")) != edited {
		t.Error("a reinstall replaced the operator's runtime.toml")
	}

	make("uninstall")
	var left []string
	filepath.Walk(dest, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			left = append(left, strings.TrimPrefix(p, dest))
		}
		return nil
	})
	sort.Strings(left)
	for _, p := range left {
		if !strings.HasPrefix(p, "/etc/vordr/") {
			t.Errorf("uninstall left %s", p)
		}
	}
}

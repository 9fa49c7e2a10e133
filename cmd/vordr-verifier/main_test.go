package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/imageverifier/bindir"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/plugin/verifier"
)

// fixture: the binary in a verifier bin_dir, a signing key, policies trusting
// it and bundles in a directory.
type fixture struct {
	binDir, bundles string
	policies        map[string]string // mode -> file
	signed          ocispec.Descriptor
	unsigned        ocispec.Descriptor
	otherKey        ocispec.Descriptor // signed by a key the policy does not trust
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{binDir: filepath.Join(dir, "bin"), bundles: filepath.Join(dir, "bundles"), policies: map[string]string{}}
	for _, d := range []string{f.binDir, f.bundles} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(f.binDir, "vordr-verifier"), ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	signer := func() (*keys.Signer, []byte) {
		priv, pub, err := keys.Generate(keys.Ed25519, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := keys.ParsePrivateKey(priv, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s, pub
	}
	trusted, pub := signer()
	other, _ := signer()
	if err := os.WriteFile(filepath.Join(dir, "release.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"strict", "permissive"} {
		p := filepath.Join(dir, m+".toml")
		body := fmt.Sprintf("version = 1\nmode = %q\nrequired_predicates = [%q]\n[[signers]]\nname = \"release\"\nkey = \"release.pub\"\n", m, ctp.PredicateSLSA)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		f.policies[m] = p
	}
	pack := func(marker string, s *keys.Signer) ocispec.Descriptor {
		img, err := testimage.Build("", testimage.Options{Name: "docker.io/vordr/v-" + marker + ":1", Files: []testimage.File{{Path: "/marker", Content: []byte(marker)}}})
		if err != nil {
			t.Fatal(err)
		}
		archive := filepath.Join(dir, marker+".tar")
		if err := img.WriteArchiveFile(archive); err != nil {
			t.Fatal(err)
		}
		opts := ctp.PackOptions{Name: marker, Version: "1", ImageRef: img.Name, Created: time.Unix(1700000000, 0).UTC()}
		if s != nil {
			opts.Signers = []*keys.Signer{s}
		}
		if _, err := ctp.Pack(context.Background(), archive, filepath.Join(f.bundles, marker+".ctp"), opts); err != nil {
			t.Fatal(err)
		}
		return img.Manifest
	}
	f.signed = pack("signed", trusted)
	f.unsigned = pack("unsigned", nil)
	f.otherKey = pack("otherkey", other)
	return f
}

func (f *fixture) config(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "verifier.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBindirProtocol drives the binary through containerd's own bindir
// image verifier, as the transfer service does before a pull.
func TestBindirProtocol(t *testing.T) {
	f := newFixture(t)
	iv := bindir.NewImageVerifier(&bindir.Config{BinDir: f.binDir, MaxVerifiers: 1, PerVerifierTimeout: 20 * 1e9})
	judge := func(desc ocispec.Descriptor) (bool, string) {
		t.Helper()
		j, err := iv.VerifyImage(context.Background(), "registry.test/app:1", desc)
		if err != nil {
			t.Fatal(err)
		}
		return j.OK, j.Reason
	}

	t.Setenv(verifier.EnvConfig, f.config(t, fmt.Sprintf("policy = %q\nbundle_dirs = [%q]\n", f.policies["strict"], f.bundles)))
	if ok, why := judge(f.signed); !ok || !strings.Contains(why, "signed.ctp verified") {
		t.Errorf("signed bundle: ok=%v %s", ok, why)
	}
	if ok, why := judge(f.unsigned); ok || !strings.Contains(why, "THRESHOLD_NOT_MET") {
		t.Errorf("unsigned bundle: ok=%v %s", ok, why)
	}
	if ok, why := judge(f.otherKey); ok || !strings.Contains(why, "otherkey.ctp") {
		t.Errorf("bundle signed by an untrusted key: ok=%v %s", ok, why)
	}
	unknown := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + strings.Repeat("ab", 32)), Size: 100}
	if ok, why := judge(unknown); ok || !strings.Contains(why, "no bundle for it") {
		t.Errorf("no bundle: ok=%v %s", ok, why)
	}
	index := f.signed
	index.MediaType = ocispec.MediaTypeImageIndex
	index.Digest = unknown.Digest
	if ok, why := judge(index); ok || !strings.Contains(why, "is an index") {
		t.Errorf("index: ok=%v %s", ok, why)
	}

	// Permissive: allowed, with the warning in the reason.
	t.Setenv(verifier.EnvConfig, f.config(t, fmt.Sprintf("policy = %q\nbundle_dirs = [%q]\n", f.policies["permissive"], f.bundles)))
	if ok, why := judge(unknown); !ok || !strings.Contains(why, "WARNING") {
		t.Errorf("permissive: ok=%v %s", ok, why)
	}

	// A broken config fails closed.
	t.Setenv(verifier.EnvConfig, f.config(t, "bundle_dirs = [\"/nonexistent\"]\n"))
	if ok, why := judge(f.signed); ok || !strings.Contains(why, "names no policy") {
		t.Errorf("no policy: ok=%v %s", ok, why)
	}
	t.Setenv(verifier.EnvConfig, filepath.Join(t.TempDir(), "missing.toml"))
	if ok, _ := judge(f.signed); ok {
		t.Error("missing config: allowed")
	}
}

// TestRunArgs checks the command line contract directly.
func TestRunArgs(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(t, fmt.Sprintf("policy = %q\nbundle_dirs = [%q]\n", f.policies["strict"], f.bundles))
	call := func(stdin string, args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append(args, "-config", cfg), strings.NewReader(stdin), &out, &errb)
		return code, out.String()
	}
	descJSON := fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, f.signed.MediaType, f.signed.Digest, f.signed.Size)
	if code, out := call(descJSON, "-name", "x", "-digest", f.signed.Digest.String(), "-stdin-media-type", ocispec.MediaTypeDescriptor); code != exitOK {
		t.Errorf("signed: exit %d %s", code, out)
	}
	if code, out := call(descJSON, "-name", "x", "-digest", f.unsigned.Digest.String(), "-stdin-media-type", ocispec.MediaTypeDescriptor); code != exitError || !strings.Contains(out, "stdin has digest") {
		t.Errorf("digest mismatch: exit %d %s", code, out)
	}
	if code, _ := call("", "-name", "x", "-digest", f.unsigned.Digest.String()); code != exitRejected {
		t.Errorf("unsigned without stdin: exit %d", code)
	}
	if code, _ := call("", "-digest", f.signed.Digest.String()); code != exitError {
		t.Errorf("no -name: exit %d", code)
	}
	if code, _ := call("", "-name", "x", "-digest", "md5:abc"); code != exitError {
		t.Errorf("bad digest: exit %d", code)
	}
}

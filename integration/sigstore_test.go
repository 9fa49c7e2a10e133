//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/ctp/sigstore"
	"github.com/vordr-project/vordr/ctp/sigstore/sigstoretest"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/plugin"
)

// TestGateSigstoreEvidence: a cosign user's keyless provenance (a sigstore
// bundle from a test CA standing in for Fulcio, logged in a test log standing
// in for Rekor) is the only evidence of an image. Imported under a policy
// naming the signer's identity, the image runs under the vordr runtime with
// that policy — the gate re-verifies the bundle at Create through
// vordr-verifier, so the shim links no sigstore code — and the same image is
// refused at Create when the operator's policy names another identity.
func TestGateSigstoreEvidence(t *testing.T) {
	ref := "docker.io/vordr/gate-sigstore:1"
	unsigned := makeBundle(t, bundleOpts{ref: ref, marker: "sigstore"})
	b, err := ctp.OpenFile(unsigned, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	manifest := b.ManifestDescriptor().Digest.String()
	b.Close()
	stmt := sigstoretest.Statement(t, "https://in-toto.io/Statement/v0.1", manifest, ctp.PredicateSLSAv02,
		map[string]any{"builder": map[string]any{"id": "https://ci.example/builder"}, "buildType": "https://example/build"})
	bj, trj := sigstoretest.Keyless(t, stmt, sigstoretest.Identity, sigstoretest.Issuer, true)
	path := filepath.Join(t.TempDir(), "app.ctp")
	if err := ctp.AttachSigstore(context.Background(), unsigned, path, [][]byte{bj}, ctp.Options{}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "trusted_root.json"), trj, 0o644); err != nil {
		t.Fatal(err)
	}
	writePolicy := func(name, subject string) string {
		p := filepath.Join(dir, name+".toml")
		body := fmt.Sprintf(`version = 1
mode = "strict"
required_predicates = [%q]
trusted_root = "trusted_root.json"
[[identities]]
name = "release CI"
issuer = %q
subject = %q
`, ctp.PredicateSLSAv02, sigstoretest.Issuer, subject)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := writePolicy("release", sigstoretest.Identity)
	other := writePolicy("other", "mallory@example.com")

	runtimeWith := func(defaultPolicy string) runtimeCase {
		return runtimeCase{name: "vordr-sigstore", runtime: vordrRuntime, options: func(d *daemon.Daemon) any {
			body := fmt.Sprintf("default_policy = %q\n[policies]\nrelease = %q\nother = %q\n[runc]\nRoot = %q\n[events]\ndir = %q\n[gate]\ncache_dir = %q\n",
				defaultPolicy, good, other, d.RuncRoot, filepath.Join(d.Dir, "events"), filepath.Join(d.Dir, "gate-cache-sigstore"))
			return &runtimeoptions.Options{ConfigBody: []byte(body)}
		}}
	}
	e := newEnv(t, shared, runtimeWith("release"))
	pol, err := policy.Load(good)
	if err != nil {
		t.Fatal(err)
	}
	// Import checks the bundle as the gate will.
	if _, err := plugin.Import(e.ctx, e.c, path, pol, plugin.ImportOptions{Verify: ctp.VerifyOptions{Sigstore: sigstore.PolicyVerifier{}}}); err != nil {
		t.Fatalf("import of a bundle with keyless sigstore evidence: %v", err)
	}
	removeImage(e, ref)

	code, out := e.runImage(ref, nil, "cat", "/etc/marker")
	if code != 0 || out.stdout.String() != "sigstore\n" {
		t.Fatalf("verified by its sigstore bundle: exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
	}

	// The operator trusts someone else: the same image is refused at
	// Create, saying why.
	e.rt = runtimeWith("other")
	_, _, err = e.startImage(ref, nil, "true")
	if err == nil {
		t.Fatal("an image whose only evidence is signed by an identity the policy does not name was created")
	}
	for _, want := range []string{ref, "UNKNOWN_KEY", "sigstore"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
}

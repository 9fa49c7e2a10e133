package sigstore

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/ctp/sigstore/sigstoretest"
)

const builder = "https://ci.example/builder@v1"

// packed packs a small rootfs into a .ctp with no signature of vordr's own.
func packed(t *testing.T) (path, manifest string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "rootfs/bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "rootfs/bin/app"), []byte("#!/bin/sh\necho app\n"), 0o755)
	path = filepath.Join(dir, "app.ctp")
	if _, err := ctp.Pack(context.Background(), filepath.Join(dir, "rootfs"), path, ctp.PackOptions{Name: "app", ImageRef: "registry.example/app:1", Created: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	b, err := ctp.OpenFile(path, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return path, b.ManifestDescriptor().Digest.String()
}

func provenance(t *testing.T, manifest string) []byte {
	return sigstoretest.Statement(t, StatementV01, manifest, ctp.PredicateSLSAv02, map[string]any{
		"builder": map[string]any{"id": builder}, "buildType": "https://example/build",
	})
}

func verifyCTP(t *testing.T, path, polTOML, dir string, opts ctp.VerifyOptions) (*ctp.Result, error) {
	t.Helper()
	p, err := policy.Parse([]byte(polTOML), dir)
	if err != nil {
		t.Fatalf("policy: %v\n%s", err, polTOML)
	}
	b, err := ctp.OpenFile(path, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return ctp.Verify(context.Background(), b, p, opts)
}

func attach(t *testing.T, path string, bundles ...[]byte) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "with-sigstore.ctp")
	if err := ctp.AttachSigstore(context.Background(), path, out, bundles, ctp.Options{}); err != nil {
		t.Fatal(err)
	}
	return out
}

func codeOf(err error) ctp.Code {
	var e *ctp.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// A cosign user's keyless provenance, attached to a .ctp, verifies under a
// policy naming the identity, its trusted root and the builder; the same
// bundle fails every policy that should refuse it.
func TestCTPWithKeylessSigstoreBundle(t *testing.T) {
	path, manifest := packed(t)
	bj, trj := sigstoretest.Keyless(t, provenance(t, manifest), sigstoretest.Identity, sigstoretest.Issuer, true)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "trusted_root.json"), trj, 0o644)
	withSS := attach(t, path, bj)

	pol := func(subject, builders string) string {
		return fmt.Sprintf(`version = 1
mode = "strict"
required_predicates = ["https://slsa.dev/provenance/v0.2"]
allowed_builders = [%q]
trusted_root = "trusted_root.json"
[[identities]]
name = "release CI"
issuer = %q
subject = %q
`, builders, sigstoretest.Issuer, subject)
	}
	opts := ctp.VerifyOptions{Sigstore: PolicyVerifier{}}
	res, err := verifyCTP(t, withSS, pol(sigstoretest.Identity, builder), dir, opts)
	if err != nil || res.Decision != ctp.Accept {
		t.Fatalf("keyless provenance refused: %v %+v", err, res)
	}
	if len(res.Signers) != 1 || res.Signers[0].KeyID != "identity:release CI" || res.Signers[0].Status != "valid" {
		t.Errorf("signers: %+v", res.Signers)
	}

	for name, tc := range map[string]struct {
		path, pol string
		opts      ctp.VerifyOptions
		code      ctp.Code
	}{
		"no sigstore verifier":  {withSS, pol(sigstoretest.Identity, builder), ctp.VerifyOptions{}, ctp.CodeInvalidSignature},
		"another identity":      {withSS, pol("mallory@example.com", builder), opts, ctp.CodeUnknownKey},
		"another builder":       {withSS, pol(sigstoretest.Identity, "https://evil.example/builder"), opts, ctp.CodePolicyDenied},
		"no sigstore bundle":    {path, pol(sigstoretest.Identity, builder), opts, ctp.CodeThresholdNotMet}, // vordr's unsigned statements
		"SLSA v1 required only": {withSS, `version = 1` + "\n" + `required_predicates = ["https://slsa.dev/provenance/v1"]` + "\n" + pol(sigstoretest.Identity, builder)[len("version = 1\nmode = \"strict\"\nrequired_predicates = [\"https://slsa.dev/provenance/v0.2\"]\n"):], opts, ctp.CodeMissingAttestation},
	} {
		res, err := verifyCTP(t, tc.path, tc.pol, dir, tc.opts)
		if codeOf(err) != tc.code || res == nil || res.Decision != ctp.Reject {
			t.Errorf("%s: want %s, got %v (%+v)", name, tc.code, err, res)
		}
	}

	// A keyless bundle about another image: refused although everything
	// else about it is right.
	other, _ := sigstoretest.Keyless(t, provenance(t, sigstoretest.DigestOf("another manifest")), sigstoretest.Identity, sigstoretest.Issuer, true)
	if res, err := verifyCTP(t, attach(t, path, other), pol(sigstoretest.Identity, builder), dir, opts); err == nil || res.Decision == ctp.Accept {
		t.Errorf("a statement about another image: accepted")
	}
}

// Keyed sigstore bundles count as signatures by the policy's signers: the
// threshold needs distinct signers over the same statement, keys and
// identities alike.
func TestCTPWithKeyedSigstoreBundles(t *testing.T) {
	path, manifest := packed(t)
	stmt := provenance(t, manifest)
	dir := t.TempDir()
	k1, k2 := mustKeyT(t), mustKeyT(t)
	pem := func(k crypto.Signer) string {
		b, _ := cryptoutils.MarshalPublicKeyToPEM(k.Public())
		return string(b)
	}
	keyless, trj := sigstoretest.Keyless(t, stmt, sigstoretest.Identity, sigstoretest.Issuer, true)
	os.WriteFile(filepath.Join(dir, "trusted_root.json"), trj, 0o644)
	pol := func(threshold int, ignoreTlog bool) string {
		return fmt.Sprintf(`version = 1
threshold = %d
sigstore_ignore_tlog = %v
trusted_root = "trusted_root.json"
[[signers]]
name = "one"
public_key = """%s"""
[[signers]]
name = "two"
public_key = """%s"""
[[identities]]
issuer = %q
subject = %q
`, threshold, ignoreTlog, pem(k1), pem(k2), sigstoretest.Issuer, sigstoretest.Identity)
	}
	opts := ctp.VerifyOptions{Sigstore: PolicyVerifier{}}
	b1 := sigstoretest.Keyed(t, stmt, k1)
	b2 := sigstoretest.Keyed(t, stmt, k2)

	one := attach(t, path, b1)
	if res, err := verifyCTP(t, one, pol(1, true), dir, opts); err != nil || res.Decision != ctp.Accept {
		t.Errorf("one keyed bundle, threshold 1: %v", err)
	}
	// A keyed bundle nobody logged needs sigstore_ignore_tlog.
	if _, err := verifyCTP(t, one, pol(1, false), dir, opts); codeOf(err) != ctp.CodeUnknownKey {
		t.Errorf("keyed bundle without a log entry, tlog required: want %s, got %v", ctp.CodeUnknownKey, err)
	}
	if _, err := verifyCTP(t, one, pol(2, true), dir, opts); codeOf(err) != ctp.CodeThresholdNotMet {
		t.Errorf("one signer, threshold 2: want %s, got %v", ctp.CodeThresholdNotMet, err)
	}
	// The same signer twice is still one signer.
	again := sigstoretest.Keyed(t, stmt, k1) // a fresh signature (ECDSA is randomised), same key
	if _, err := verifyCTP(t, attach(t, path, b1, again), pol(2, true), dir, opts); codeOf(err) != ctp.CodeThresholdNotMet {
		t.Errorf("one key signing twice, threshold 2: want %s, got %v", ctp.CodeThresholdNotMet, err)
	}
	if res, err := verifyCTP(t, attach(t, path, b1, b2), pol(2, true), dir, opts); err != nil || res.Decision != ctp.Accept {
		t.Errorf("two keys, threshold 2: %v", err)
	}
	// A key and an identity are two signers.
	if res, err := verifyCTP(t, attach(t, path, b1, keyless), pol(2, true), dir, opts); err != nil || res.Decision != ctp.Accept {
		t.Errorf("a key and an identity, threshold 2: %v", err)
	}
	// A signature over a different statement is another attestation.
	b2other := sigstoretest.Keyed(t, sigstoretest.Statement(t, StatementV1, manifest, ctp.PredicateSLSAv02, map[string]any{"builder": map[string]any{"id": "x"}}), k2)
	if _, err := verifyCTP(t, attach(t, path, b1, b2other), pol(2, true), dir, opts); codeOf(err) != ctp.CodeThresholdNotMet {
		t.Errorf("two keys over two statements, threshold 2: want %s, got %v", ctp.CodeThresholdNotMet, err)
	}
	// Attaching is idempotent and the bundle stays well-formed.
	twice := attach(t, attach(t, path, b1), b1)
	b, err := ctp.OpenFile(twice, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(b.Attestations().SigstoreBundles); n != 1 {
		t.Errorf("attaching the same bundle twice keeps %d copies", n)
	}
	b.Close()
	if err := ctp.AttachSigstore(context.Background(), path, filepath.Join(t.TempDir(), "x.ctp"), [][]byte{[]byte(`{"payloadType":"x"}`)}, ctp.Options{}); err == nil {
		t.Error("attaching a non-bundle succeeded")
	}
}

func mustKeyT(t *testing.T) *ecdsa.PrivateKey { return mustKey(t) }

// A signed vulnerability scan (cosign attest --type vuln, Trivy's report)
// is held to the policy's [vulnerabilities] bounds; without one the rule
// cannot be satisfied.
func TestCTPVulnerabilityRules(t *testing.T) {
	path, manifest := packed(t)
	k := mustKeyT(t)
	pemB, _ := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	finished := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	vuln := sigstoretest.Statement(t, StatementV01, manifest, ctp.PredicateVuln, map[string]any{
		"scanner": map[string]any{"uri": "pkg:github/aquasecurity/trivy@v0.50.0", "result": map[string]any{"Results": []any{
			map[string]any{"Vulnerabilities": []any{
				map[string]any{"VulnerabilityID": "CVE-2024-0001", "Severity": "CRITICAL"},
				map[string]any{"VulnerabilityID": "CVE-2024-0002", "Severity": "HIGH"},
				map[string]any{"VulnerabilityID": "CVE-2024-0003", "Severity": "HIGH"},
			}},
		}}},
		"metadata": map[string]any{"scanStartedOn": finished, "scanFinishedOn": finished},
	})
	withScan := attach(t, path, sigstoretest.Keyed(t, vuln, k), sigstoretest.Keyed(t, provenance(t, manifest), k))
	withoutScan := attach(t, path, sigstoretest.Keyed(t, provenance(t, manifest), k))
	pol := func(rules string) string {
		return fmt.Sprintf("version = 1\nsigstore_ignore_tlog = true\n[vulnerabilities]\n%s\n[[signers]]\npublic_key = \"\"\"%s\"\"\"\n", rules, pemB)
	}
	opts := ctp.VerifyOptions{Sigstore: PolicyVerifier{}}
	for name, tc := range map[string]struct {
		path, rules string
		code        ctp.Code
	}{
		"within bounds":     {withScan, "max_critical = 1\nmax_high = 2", ""},
		"too many critical": {withScan, "max_critical = 0", ctp.CodePolicyDenied},
		"too many high":     {withScan, "max_high = 1", ctp.CodePolicyDenied},
		"scan fresh enough": {withScan, "max_age = \"1d\"", ""},
		"scan too old":      {withScan, "max_age = \"1h\"\nmax_critical = 5", ctp.CodePolicyDenied},
		"no scan":           {withoutScan, "max_critical = 5", ctp.CodeMissingAttestation},
	} {
		res, err := verifyCTP(t, tc.path, pol(tc.rules), t.TempDir(), opts)
		switch {
		case tc.code == "" && (err != nil || res.Decision != ctp.Accept):
			t.Errorf("%s: %v", name, err)
		case tc.code != "" && codeOf(err) != tc.code:
			t.Errorf("%s: want %s, got %v", name, tc.code, err)
		}
	}
}

// With sigstore evidence only, manifest.toml is signed by nobody: its
// image_ref must not decide allowed_image_refs / denied_image_refs. The
// names judged are the signed statements' subjects (an attack found in
// review: a dev tool's signed manifest repacked as "prod/app" passed).
func TestCTPImageRefsNeedASignedName(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "rootfs/bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "rootfs/bin/tool"), []byte("#!/bin/sh\n"), 0o755)
	path := filepath.Join(dir, "claims-prod.ctp")
	// The attacker's manifest.toml claims a production name.
	if _, err := ctp.Pack(context.Background(), filepath.Join(dir, "rootfs"), path, ctp.PackOptions{Name: "app", ImageRef: "registry.example/prod/app:1", Created: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	b, err := ctp.OpenFile(path, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	manifest := b.ManifestDescriptor().Digest.String()
	b.Close()
	stmtNamed := func(name string) []byte {
		data, _ := json.Marshal(map[string]any{
			"_type": StatementV01, "predicateType": ctp.PredicateSLSAv02,
			"subject":   []map[string]any{{"name": name, "digest": map[string]string{"sha256": strings.TrimPrefix(manifest, "sha256:")}}},
			"predicate": map[string]any{"builder": map[string]any{"id": builder}},
		})
		return data
	}
	k := mustKeyT(t)
	pemB, _ := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	pol := fmt.Sprintf("version = 1\nsigstore_ignore_tlog = true\nallowed_image_refs = [\"registry.example/prod/*\"]\ndenied_image_refs = [\"registry.example/dev/*\"]\n[[signers]]\npublic_key = \"\"\"%s\"\"\"\n", pemB)
	opts := ctp.VerifyOptions{Sigstore: PolicyVerifier{}}

	// The trusted key signed the dev tool, under its own name.
	devSigned := attach(t, path, sigstoretest.Keyed(t, stmtNamed("registry.example/dev/debug-tool"), k))
	if _, err := verifyCTP(t, devSigned, pol, dir, opts); codeOf(err) != ctp.CodePolicyDenied {
		t.Errorf("a dev tool's signed manifest under an unsigned prod image_ref: want %s, got %v", ctp.CodePolicyDenied, err)
	}
	// Signed under the production name: accepted.
	prodSigned := attach(t, path, sigstoretest.Keyed(t, stmtNamed("registry.example/prod/app"), k))
	if res, err := verifyCTP(t, prodSigned, pol, dir, opts); err != nil || res.Decision != ctp.Accept {
		t.Errorf("signed under the production name: %v", err)
	}
	// A statement with no name for the image: nothing to judge, refused.
	unnamed := attach(t, path, sigstoretest.Keyed(t, stmtNamed(""), k))
	if _, err := verifyCTP(t, unnamed, pol, dir, opts); codeOf(err) != ctp.CodePolicyDenied {
		t.Errorf("no signed name: want %s, got %v", ctp.CodePolicyDenied, err)
	}
}

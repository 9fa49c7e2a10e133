package ctp

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
)

func TestPackSignVerify(t *testing.T) {
	f := newFixture(t)
	res, err := verifyFile(f.bundle, f.policy)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Decision != Accept {
		t.Fatalf("decision %s", res.Decision)
	}
	if len(res.Predicates) != 2 || res.Predicates[0] != PredicateSLSA || res.Predicates[1] != PredicateSPDX {
		t.Errorf("predicates %v", res.Predicates)
	}
	if len(res.Signers) != 1 || res.Signers[0].Status != "valid" || res.Signers[0].KeyID != f.signer.ID || res.Signers[0].Name != "release" {
		t.Errorf("signers %+v", res.Signers)
	}
	if len(res.Logs) != 2 || res.Logs[0].Status != "verified" {
		t.Errorf("logs %+v", res.Logs)
	}

	b, err := OpenFile(f.bundle, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	m := b.Manifest()
	if m.Name != "app" || m.ImageRef != "example.com/app:1.0.0" || m.ImageDigest != b.ManifestDescriptor().Digest.String() {
		t.Errorf("manifest %+v", m)
	}
	if got := b.Index().Manifests[0].Annotations[ocispec.AnnotationRefName]; got != "example.com/app:1.0.0" {
		t.Errorf("index ref %q", got)
	}
	if c := b.Config(); c.Config.Cmd[0] != "/bin/hello" || c.Created == nil || !c.Created.Equal(testTime) {
		t.Errorf("config %+v", c)
	}
	// The SBOM lists the files with digests and the installed dpkg packages.
	var sbom string
	for _, env := range b.Attestations().Attestations {
		st, err := statementOf(&env)
		if err != nil {
			t.Fatal(err)
		}
		if st.PredicateType == PredicateSPDX {
			sbom = string(st.Predicate)
		}
	}
	for _, want := range []string{`"spdxVersion":"SPDX-2.3"`, `"fileName":"./bin/hello"`, `pkg:deb/busybox@1:1.36.1-9?arch=amd64`, `pkg:deb/libc6@2.36-9`} {
		if !strings.Contains(sbom, want) {
			t.Errorf("SBOM lacks %s", want)
		}
	}
	if strings.Contains(sbom, "removed") {
		t.Error("SBOM lists a package that is not installed")
	}
	// Blobs stream out verified, children first.
	blobs := b.Blobs()
	if blobs[len(blobs)-1].Digest != b.ManifestDescriptor().Digest {
		t.Error("manifest is not last in Blobs()")
	}
	for _, d := range blobs {
		r, err := b.OpenBlob(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(r); err != nil {
			t.Fatalf("blob %s: %v", d.Digest, err)
		}
		if int64(buf.Len()) != d.Size {
			t.Errorf("blob %s: %d bytes, want %d", d.Digest, buf.Len(), d.Size)
		}
	}
}

func TestSignAgainKeepsSignatures(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := Sign(ctx, f.bundle, f.bundle, []*keys.Signer{f.signer2}, Options{}); err != nil {
		t.Fatal(err)
	}
	// Signing again with a key that already signed changes nothing.
	before, _ := os.ReadFile(f.bundle)
	if err := Sign(ctx, f.bundle, f.bundle, []*keys.Signer{f.signer, f.signer2}, Options{}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(f.bundle)
	if !bytes.Equal(before, after) {
		t.Error("re-signing with the same keys changed the bundle")
	}
	b, err := OpenFile(f.bundle, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range b.Attestations().Attestations {
		if len(env.Signatures) != 2 {
			t.Errorf("%d signatures, want 2", len(env.Signatures))
		}
	}
	b.Close()
	// Threshold 2 needs both signers, and both signatures must be logged.
	pol := strings.Replace(f.polTOML, "threshold = 1", "threshold = 2", 1) + `
[[signers]]
name = "second"
key = "second.pub"
`
	p := f.loadPolicy(t, pol)
	if _, err := verifyFile(f.bundle, p); CodeOf(err) != CodeInsufficientLogCoverage {
		t.Fatalf("second signature unlogged: got %v, want INSUFFICIENT_LOG_COVERAGE", err)
	}
	f.logAll(t, f.bundle, f.log)
	if _, err := verifyFile(f.bundle, p); err != nil {
		t.Fatalf("threshold 2 with both signers logged: %v", err)
	}
	// The old entries (for an older tree) still verify next to the new ones.
	res, _ := verifyFile(f.bundle, p)
	if len(res.Logs) != 6 {
		t.Errorf("%d log entries, want 6", len(res.Logs))
	}
}

func TestPackDeterministic(t *testing.T) {
	root := smallRootfs(t)
	s, _ := newSigner(t, keys.Ed25519)
	dir := t.TempDir()
	var outs [][]byte
	for i, comp := range []Compression{CompressionNone, CompressionNone, CompressionGzip, CompressionGzip, CompressionZstd, CompressionZstd} {
		out := filepath.Join(dir, string(rune('a'+i))+".ctp")
		// Touch the tree between runs: the mtimes must not leak into the bundle.
		now := testTime.AddDate(0, 0, i)
		os.Chtimes(filepath.Join(root, "etc/os-release"), now, now)
		_, err := Pack(context.Background(), root, out, PackOptions{Name: "app", Created: testTime, Compression: comp, Signers: []*keys.Signer{s}})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(out)
		outs = append(outs, data)
	}
	for i := 0; i < len(outs); i += 2 {
		if !bytes.Equal(outs[i], outs[i+1]) {
			t.Errorf("pack %d and %d differ", i, i+1)
		}
	}
	// The compressed forms hold the same image (the provenance records the
	// compression, so the attestations differ).
	for _, i := range []int{2, 4} {
		b, err := Open(bytes.NewReader(outs[i]), int64(len(outs[i])), Options{})
		if err != nil {
			t.Fatalf("open compressed %d: %v", i, err)
		}
		if b.ManifestDescriptor().Digest != mustOpen(t, outs[0]).ManifestDescriptor().Digest {
			t.Errorf("compressed bundle %d differs in content", i)
		}
		b.Close()
	}
}

func mustOpen(t *testing.T, data []byte) *Bundle {
	t.Helper()
	b, err := Open(bytes.NewReader(data), int64(len(data)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestVerifyFailures(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	other := newFixture(t) // a second, independently signed bundle

	check := func(name string, p *policy.Policy, path string, want Code) {
		t.Helper()
		res, err := verifyFile(path, p)
		if CodeOf(err) != want {
			t.Errorf("%s: got %v, want %s", name, err, want)
			return
		}
		if res == nil || res.Decision != Reject || res.ErrorCode != want {
			t.Errorf("%s: result %+v", name, res)
		}
	}

	// Unknown key: the policy trusts another key.
	p := f.loadPolicy(t, strings.Replace(f.polTOML, "release.pub", "second.pub", 1))
	check("unknown key", p, f.bundle, CodeUnknownKey)

	// Expired key.
	p = f.loadPolicy(t, strings.Replace(f.polTOML, "2099-12-31", "2025-01-01", 1))
	check("expired key", p, f.bundle, CodeExpiredKey)
	// Not yet valid is the same kind.
	p = f.loadPolicy(t, strings.Replace(f.polTOML, "valid_until = 2099-12-31T00:00:00Z", "valid_from = 2026-01-01T00:00:00Z", 1))
	check("not yet valid", p, f.bundle, CodeExpiredKey)

	// Threshold not met: two signers required, one signed.
	p = f.loadPolicy(t, strings.Replace(f.polTOML, "threshold = 1", "threshold = 2", 1)+"\n[[signers]]\nkey = \"second.pub\"\n")
	check("threshold", p, f.bundle, CodeThresholdNotMet)

	// Missing attestation.
	p = f.loadPolicy(t, strings.Replace(f.polTOML, `"https://spdx.dev/Document"`, `"https://example.com/vuln-scan/v1"`, 1))
	check("missing predicate", p, f.bundle, CodeMissingAttestation)

	// Policy denied: image ref and builder restrictions.
	p = f.loadPolicy(t, strings.Replace(f.polTOML, "threshold = 1", "threshold = 1\nallowed_image_refs = [\"registry.internal/*\"]", 1))
	check("image ref", p, f.bundle, CodePolicyDenied)
	p = f.loadPolicy(t, strings.Replace(f.polTOML, "threshold = 1", "threshold = 1\nallowed_builders = [\"https://ci.example.com\"]", 1))
	check("builder", p, f.bundle, CodePolicyDenied)
	p = f.loadPolicy(t, strings.Replace(f.polTOML, "threshold = 1", "threshold = 1\nallowed_builders = [\""+BuilderID+"\"]\nallowed_image_refs = [\"example.com/*\"]", 1))
	if _, err := verifyFile(f.bundle, p); err != nil {
		t.Errorf("allowed builder and ref: %v", err)
	}

	// Insufficient log coverage: an unsigned-by-log bundle with quorum 1.
	plain := filepath.Join(t.TempDir(), "plain.ctp")
	if _, err := Pack(ctx, smallRootfs(t), plain, PackOptions{Name: "app", Created: testTime, Signers: []*keys.Signer{f.signer}}); err != nil {
		t.Fatal(err)
	}
	check("no log entries", f.policy, plain, CodeInsufficientLogCoverage)
	// Entries from a log the policy does not trust do not count either.
	f.logAll(t, plain, other.log)
	check("untrusted log", f.policy, plain, CodeInsufficientLogCoverage)
	res, _ := verifyFile(plain, f.policy)
	if res.Logs[0].Status != "untrusted" {
		t.Errorf("log status %q, want untrusted", res.Logs[0].Status)
	}
	// Quorum 0 accepts it.
	p = f.loadPolicy(t, strings.Replace(f.polTOML, "log_quorum = 1", "log_quorum = 0", 1))
	if _, err := verifyFile(plain, p); err != nil {
		t.Errorf("quorum 0: %v", err)
	}

	// Unsigned bundle.
	unsigned := filepath.Join(t.TempDir(), "unsigned.ctp")
	if _, err := Pack(ctx, smallRootfs(t), unsigned, PackOptions{Name: "app", Created: testTime}); err != nil {
		t.Fatal(err)
	}
	check("unsigned", p, unsigned, CodeThresholdNotMet)

	// Permissive and audit modes allow with the error recorded.
	for mode, want := range map[string]Decision{"permissive": Warn, "audit": Audit} {
		p = f.loadPolicy(t, strings.Replace(strings.Replace(f.polTOML, "release.pub", "second.pub", 1), `"strict"`, `"`+mode+`"`, 1))
		res, err := verifyFile(f.bundle, p)
		if err != nil || res.Decision != want || res.ErrorCode != CodeUnknownKey {
			t.Errorf("%s: %v %+v", mode, err, res)
		}
	}
}

// TestSubjectMismatch transplants validly signed attestations of one bundle
// into another.
func TestSubjectMismatch(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	root := smallRootfs(t)
	writeTree(t, root, map[string]string{"etc/motd": "different image\n"})
	other := filepath.Join(dir, "other.ctp")
	if _, err := Pack(context.Background(), root, other, PackOptions{Name: "app", Version: "1.0.0", ImageRef: "example.com/app:1.0.0", Created: testTime}); err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(f.bundle)
	dst, _ := os.ReadFile(other)
	se, de := readRaw(t, src), readRaw(t, dst)
	de[len(de)-1].data = se[len(se)-1].data // attestations/bundle.json
	out := writeRaw(t, de)
	_, err := verifyBytes(out, f.policy)
	if CodeOf(err) != CodeSubjectMismatch {
		t.Fatalf("got %v, want SUBJECT_MISMATCH", err)
	}
}

func TestInvalidSignature(t *testing.T) {
	f := newFixture(t)
	data, _ := os.ReadFile(f.bundle)
	entries := readRaw(t, data)
	b := mustOpen(t, data)
	att := cloneAttestations(b.Attestations())
	// Re-sign a different payload and put that signature on the original
	// envelope: a signature over a different payload.
	env := att.Attestations[0]
	forged := *newEnvelopeLike(t, &env, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	if err := forged.Sign(f.signer, f.signer.ID); err != nil {
		t.Fatal(err)
	}
	att.Attestations[0].Signatures = []dsseSignature{forged.Signatures[0]}
	entries[len(entries)-1].data = mustCanonical(t, att)
	_, err := verifyBytes(writeRaw(t, entries), f.policy)
	if CodeOf(err) != CodeInvalidSignature {
		t.Fatalf("got %v, want INVALID_SIGNATURE", err)
	}
	if !errors.Is(err, &Error{Code: CodeInvalidSignature}) {
		t.Error("errors.Is does not match on code")
	}
}

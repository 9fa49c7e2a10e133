package evidence

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
)

type testBundle struct {
	path string
	pol  *policy.Policy
	b    *ctp.Bundle
}

// packSigned packs a tiny rootfs and signs it; the policy trusts the key.
func packSigned(t *testing.T, content string, mode policy.Mode) testBundle {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "hello"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	priv, pub, err := keys.Generate(keys.Ed25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.ParsePrivateKey(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "release.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "app.ctp")
	if _, err := ctp.Pack(context.Background(), root, out, ctp.PackOptions{
		Name: "app", Version: "1", ImageRef: "example.com/app:1", Created: time.Unix(1700000000, 0).UTC(),
		Signers: []*keys.Signer{s},
	}); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse([]byte("version = 1\nmode = \""+string(mode)+"\"\n[[signers]]\nkey = \"release.pub\"\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ctp.OpenFile(out, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return testBundle{path: out, pol: pol, b: b}
}

// evidenceFrom builds the evidence Import would leave in containerd.
func evidenceFrom(t *testing.T, tb testBundle) *Evidence {
	t.Helper()
	b := tb.b
	md := b.ManifestDescriptor()
	img := images.Image{Name: "example.com/app:1", Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md.Digest, Size: md.Size},
		Labels: map[string]string{
			LabelAttestations: digest.FromBytes(b.AttestationsJSON()).String(),
			LabelManifestTOML: digest.FromBytes(b.ManifestTOML()).String(),
		}}
	e, err := Of(img)
	if err != nil {
		t.Fatal(err)
	}
	e.attestJSON, e.manifestTOML = b.AttestationsJSON(), b.ManifestTOML()
	read := func(d digest.Digest) []byte {
		ra, err := b.ReaderAt(d)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, ra.Size())
		if _, err := ra.ReadAt(data, 0); err != nil {
			t.Fatal(err)
		}
		return data
	}
	e.manifestJSON = read(md.Digest)
	e.manifest = b.ImageManifest()
	e.configJSON = read(e.manifest.Config.Digest)
	e.config = b.Config()
	return e
}

func TestEvidenceVerify(t *testing.T) {
	ctx := context.Background()
	a := packSigned(t, "a\n", policy.Strict)
	e := evidenceFrom(t, a)
	res, err := e.Verify(ctx, a.pol, ctp.VerifyOptions{})
	if err != nil || res.Decision != ctp.Accept {
		t.Fatalf("verify stored evidence: %v %+v", err, res)
	}
	if e.ChainID() == "" || e.ChainID() != digest.Digest(a.b.Config().RootFS.DiffIDs[0]) {
		t.Errorf("chain id %s, diff ids %v", e.ChainID(), a.b.Config().RootFS.DiffIDs)
	}

	// The attestations of another image do not verify for this one.
	b := packSigned(t, "b\n", policy.Strict)
	eb := evidenceFrom(t, b)
	e2 := evidenceFrom(t, a)
	e2.attestJSON = eb.attestJSON
	if _, err := e2.Verify(ctx, b.pol, ctp.VerifyOptions{}); ctp.CodeOf(err) != ctp.CodeSubjectMismatch {
		t.Errorf("foreign attestations: %v, want %s", err, ctp.CodeSubjectMismatch)
	}
	// Nor does another image's manifest.toml.
	e3 := evidenceFrom(t, a)
	e3.manifestTOML = eb.manifestTOML
	if _, err := e3.Verify(ctx, a.pol, ctp.VerifyOptions{}); ctp.CodeOf(err) != ctp.CodeSubjectMismatch {
		t.Errorf("foreign manifest.toml: %v, want %s", err, ctp.CodeSubjectMismatch)
	}
	// A policy that trusts another key refuses.
	if _, err := e.Verify(ctx, b.pol, ctp.VerifyOptions{}); ctp.CodeOf(err) != ctp.CodeUnknownKey {
		t.Errorf("untrusted signer: %v, want %s", err, ctp.CodeUnknownKey)
	}
	// A flipped byte anywhere in the attestations is refused.
	for i := 0; i < len(e.attestJSON); i += 97 {
		e4 := evidenceFrom(t, a)
		e4.attestJSON = append([]byte(nil), e4.attestJSON...)
		e4.attestJSON[i] ^= 0x01
		if res, err := e4.Verify(ctx, a.pol, ctp.VerifyOptions{}); err == nil {
			t.Fatalf("byte %d flipped in the attestations: accepted (%+v)", i, res)
		}
	}
}

func TestEvidenceOfUnverifiedImage(t *testing.T) {
	_, err := Of(images.Image{Name: "x", Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest}})
	if err == nil {
		t.Fatal("an image without vordr labels has evidence")
	}
}

func TestPolicyDigest(t *testing.T) {
	a := packSigned(t, "a\n", policy.Strict)
	b := packSigned(t, "a\n", policy.Strict)
	da, err := PolicyDigest(a.pol)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := PolicyDigest(b.pol)
	if da == db {
		t.Error("policies trusting different keys have the same digest")
	}
	again, _ := PolicyDigest(a.pol)
	if again != da {
		t.Error("policy digest not stable")
	}
	p := *a.pol
	p.Mode = policy.Permissive
	if d, _ := PolicyDigest(&p); d == da {
		t.Error("mode does not change the policy digest")
	}
}

package ctp

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// partsOf splits an opened bundle into the parts a registry carries.
func partsOf(t *testing.T, b *Bundle) Parts {
	t.Helper()
	return Parts{
		ManifestTOML:     b.ManifestTOML(),
		AttestationsJSON: b.AttestationsJSON(),
		Blobs:            b.Blobs(),
		Open: func(d ocispec.Descriptor) (io.ReadCloser, error) {
			return b.OpenBlob(d.Digest)
		},
	}
}

// TestAssembleByteIdentical: a signed, logged bundle split into its parts and
// assembled again is the same file, so its digest (recorded by import) holds
// across a registry round trip, and it still verifies.
func TestAssembleByteIdentical(t *testing.T) {
	f := newFixture(t)
	b, err := OpenFile(f.bundle, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	out := filepath.Join(t.TempDir(), "again.ctp")
	if err := Assemble(out, partsOf(t, b)); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(f.bundle)
	got, _ := os.ReadFile(out)
	if !bytes.Equal(want, got) {
		t.Fatalf("assembled bundle differs from the original (%d vs %d bytes)", len(got), len(want))
	}
	res, err := verifyFile(out, f.policy)
	if err != nil || res.Decision != Accept {
		t.Fatalf("assembled bundle: %+v, %v", res, err)
	}
}

// TestAssembleRefuses: parts that cannot make a bundle are refused with the
// reason, and nothing is left at the output path.
func TestAssembleRefuses(t *testing.T) {
	f := newFixture(t)
	b, err := OpenFile(f.bundle, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "x.ctp")

	p := partsOf(t, b)
	p.Blobs = p.Blobs[:len(p.Blobs)-1] // without the image manifest
	if err := Assemble(out, p); CodeOf(err) != "MALFORMED_BUNDLE" || !strings.Contains(err.Error(), "MISSING_ENTRY") {
		t.Errorf("without the image manifest: %v (%s)", err, CodeOf(err))
	}

	p = partsOf(t, b)
	p.ManifestTOML = []byte("ctp_version = 1\n")
	if err := Assemble(out, p); CodeOf(err) == "" {
		t.Errorf("bad manifest.toml: %v", err)
	}

	p = partsOf(t, b)
	layer := b.Layers()[0]
	p.Open = func(d ocispec.Descriptor) (io.ReadCloser, error) {
		if d.Digest == layer.Digest {
			return io.NopCloser(bytes.NewReader(make([]byte, d.Size))), nil
		}
		return b.OpenBlob(d.Digest)
	}
	if err := Assemble(out, p); err == nil {
		t.Errorf("a layer whose content does not match its digest was written")
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused assembly left %s: %v", out, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused assembly left temporary files: %v", ents)
	}
}

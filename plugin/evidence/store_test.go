package evidence

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

func TestEvidenceStore(t *testing.T) {
	dir := t.TempDir()
	md := digest.FromString("manifest")
	img := images.Image{Name: "x", Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md}}
	if _, err := OfStore(img, dir); !errors.Is(err, ErrNoEvidence) {
		t.Fatalf("empty store: %v", err)
	}
	if err := WriteStore(dir, md, []byte("att-1"), []byte("toml-1")); err != nil {
		t.Fatal(err)
	}
	// Replaced, not merged.
	if err := WriteStore(dir, md, []byte("att-2"), []byte("toml-2")); err != nil {
		t.Fatal(err)
	}
	ev, err := OfStore(img, dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.attestJSON) != "att-2" || ev.Attestations != digest.FromString("att-2") || ev.ManifestTOML != digest.FromString("toml-2") || !ev.FromStore() {
		t.Errorf("read back %q %s %s", ev.attestJSON, ev.Attestations, ev.ManifestTOML)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("store left %d entries, want 1", len(ents))
	}

	// What is not a small regular file is refused, without blocking or
	// following a link.
	base := filepath.Join(dir, md.Encoded())
	att := filepath.Join(base, storeAttestations)
	os.Remove(att)
	if err := unix.Mkfifo(att, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OfStore(img, dir); err == nil || errors.Is(err, ErrNoEvidence) {
		t.Errorf("FIFO: %v", err)
	}
	os.Remove(att)
	os.WriteFile(filepath.Join(dir, "elsewhere"), []byte("att"), 0o600)
	os.Symlink(filepath.Join(dir, "elsewhere"), att)
	if _, err := OfStore(img, dir); err == nil || errors.Is(err, ErrNoEvidence) {
		t.Errorf("symlink: %v", err)
	}
	os.Remove(att)
	f, _ := os.Create(att)
	f.Truncate(65 << 20)
	f.Close()
	if _, err := OfStore(img, dir); err == nil {
		t.Error("oversize evidence read")
	}
	if err := WriteStore(dir, "sha256:bad", nil, nil); err == nil {
		t.Error("bad digest accepted")
	}
}

func TestEvidenceStorePruned(t *testing.T) {
	dir := t.TempDir()
	var newest digest.Digest
	for i := 0; i < 5; i++ {
		newest = digest.FromString(fmt.Sprint("manifest ", i))
		if err := WriteStore(dir, newest, []byte("a"), []byte("t")); err != nil {
			t.Fatal(err)
		}
		// Distinct mtimes, oldest first.
		os.Chtimes(filepath.Join(dir, newest.Encoded()), time.Now().Add(time.Duration(i-10)*time.Minute), time.Now().Add(time.Duration(i-10)*time.Minute))
	}
	pruneStore(dir, 2)
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("%d entries left, want 2", len(ents))
	}
	if _, err := os.Stat(filepath.Join(dir, newest.Encoded())); err != nil {
		t.Errorf("the newest entry was pruned: %v", err)
	}
}

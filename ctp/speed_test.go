package ctp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layoutWithLayers writes an OCI image layout whose layers are the given
// uncompressed tars, in order.
func layoutWithLayers(t testing.TB, layers [][]byte) string {
	t.Helper()
	dir := t.TempDir()
	put := func(data []byte, mt string) ocispec.Descriptor {
		d := digest.FromBytes(data)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
	}
	var descs []ocispec.Descriptor
	var diffIDs []digest.Digest
	for _, l := range layers {
		d := put(l, ocispec.MediaTypeImageLayer)
		descs = append(descs, d)
		diffIDs = append(diffIDs, d.Digest)
	}
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Created: &testTime,
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}}
	cj, _ := json.Marshal(cfg)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: put(cj, ocispec.MediaTypeImageConfig), Layers: descs}
	m.SchemaVersion = 2
	mj, _ := json.Marshal(m)
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{put(mj, ocispec.MediaTypeImageManifest)}}
	idx.SchemaVersion = 2
	ij, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ij, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(layoutFileContent), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestVerifyBlobsDeterministicError: with several bad layers, parallel
// verification reports the same error as a sequential one, the first bad
// layer in manifest order, however the hashing is scheduled. The first bad
// layer is much larger than the second, so a verifier that reported whichever
// failure came first in time would report the second.
func TestVerifyBlobsDeterministicError(t *testing.T) {
	sizes := []int{1 << 10, 8 << 20, 1 << 10, 4 << 10}
	var layers [][]byte
	for i, n := range sizes {
		content := bytes.Repeat([]byte{byte('a' + i)}, n)
		layers = append(layers, tarOf(t, map[string]string{"f" + strconv.Itoa(i): string(content)}))
	}
	out := filepath.Join(t.TempDir(), "b.ctp")
	if _, err := Pack(context.Background(), layoutWithLayers(t, layers), out, PackOptions{Name: "x", Created: testTime}); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	descs := mustOpen(t, good).Layers()
	// Corrupt layers 1 and 2 (manifest order) in their file content.
	bad := map[string]bool{blobPath(descs[1].Digest): true, blobPath(descs[2].Digest): true}
	es := readRaw(t, good)
	for i := range es {
		if bad[es[i].hdr.Name] {
			es[i].data = bytes.Clone(es[i].data)
			es[i].data[len(es[i].data)/2] ^= 0x01
		}
	}
	corrupt := writeRaw(t, es)
	b := mustOpen(t, corrupt)

	want := blobPath(descs[1].Digest)
	check := func(name string, err error) {
		t.Helper()
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%s: got %v, want a *ctp.Error", name, err)
		}
		if e.Code != CodeMalformedBundle || e.Reason != ReasonDigestMismatch || e.Path != want {
			t.Fatalf("%s: got %s/%s at %s, want %s/%s at %s", name, e.Code, e.Reason, e.Path, CodeMalformedBundle, ReasonDigestMismatch, want)
		}
	}
	seq := b.verifyBlobs(context.Background(), 1)
	check("sequential", seq)
	for i := range 20 {
		for _, w := range []int{2, 4} {
			err := b.verifyBlobs(context.Background(), w)
			check("parallel "+strconv.Itoa(w)+" #"+strconv.Itoa(i), err)
			if err.Error() != seq.Error() {
				t.Fatalf("parallel error %q differs from sequential %q", err, seq)
			}
		}
	}
	check("VerifyBlobs", b.VerifyBlobs(context.Background()))

	// The intact bundle verifies either way; a cancelled context is reported.
	g := mustOpen(t, good)
	for _, w := range []int{1, 2, 4} {
		if err := g.verifyBlobs(context.Background(), w); err != nil {
			t.Fatalf("workers %d: intact bundle: %v", w, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.VerifyBlobs(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v", err)
	}
}

// TestPackRootfsChangedBetweenPasses: a rootfs is tarred twice (measured,
// then streamed into the bundle); a file changed in between must fail the
// pack rather than produce a bundle whose layer does not match its digest,
// and leave no output.
func TestPackRootfsChangedBetweenPasses(t *testing.T) {
	root := smallRootfs(t)
	big := filepath.Join(root, "usr", "share", "big")
	if err := os.MkdirAll(filepath.Dir(big), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, bytes.Repeat([]byte{'x'}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "b.ctp")
	changed := false
	opts := PackOptions{Name: "x", Created: testTime, Progress: func(stage string, done, total int64) {
		if stage == "write" && !changed {
			changed = true
			// Same size, other content: only the digests can tell.
			if err := os.WriteFile(big, bytes.Repeat([]byte{'y'}, 1<<20), 0o644); err != nil {
				t.Error(err)
			}
		}
	}}
	_, err := Pack(context.Background(), root, out, opts)
	if !changed {
		t.Fatal("the write stage was never reported")
	}
	if err == nil || !strings.Contains(err.Error(), "changed while packing") {
		t.Fatalf("pack of a tree that changed while packing: got %v", err)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Fatalf("output left behind after failure: %v", serr)
	}
	// A file that grows in between fails too.
	changed = false
	opts.Progress = func(stage string, done, total int64) {
		if stage == "write" && !changed {
			changed = true
			f, err := os.OpenFile(big, os.O_APPEND|os.O_WRONLY, 0)
			if err == nil {
				_, err = f.Write([]byte("more"))
				f.Close()
			}
			if err != nil {
				t.Error(err)
			}
		}
	}
	if _, err := Pack(context.Background(), root, out, opts); err == nil || !changed {
		t.Fatalf("pack of a tree that grew while packing: got %v (grown: %v)", err, changed)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Fatalf("output left behind after failure: %v", serr)
	}
	if err := os.WriteFile(big, bytes.Repeat([]byte{'y'}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// Unchanged from now on, the tree packs, and the SBOM describes it.
	if _, err := Pack(context.Background(), root, out, PackOptions{Name: "x", Created: testTime}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	b := mustOpen(t, data)
	if err := b.VerifyBlobs(context.Background()); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(bytes.Repeat([]byte{'y'}, 1<<20))
	if !strings.Contains(sbomOf(t, b), hex.EncodeToString(sum[:])) {
		t.Error("the SBOM does not list the file's new content")
	}
}

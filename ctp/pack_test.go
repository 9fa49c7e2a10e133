package ctp

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vordr-project/vordr/ctp/keys"
)

func tarOf(t testing.TB, files map[string]string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range sortedKeys(files) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(files[name])), Mode: 0o644})
		tw.Write([]byte(files[name]))
	}
	tw.Close()
	return buf.Bytes()
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// ociLayout writes a two-layer OCI image layout (gzip base layer, plain tar
// upper layer with a whiteout) and returns its directory and manifest digest.
func ociLayout(t testing.TB) (string, digest.Digest) {
	dir := t.TempDir()
	put := func(data []byte) ocispec.Descriptor {
		d := digest.FromBytes(data)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{Digest: d, Size: int64(len(data))}
	}
	l1raw := tarOf(t, map[string]string{"etc/a": "a\n", "etc/b": "b\n", "lib/apk/db/installed": "P:musl\nV:1.2.5-r0\nA:x86_64\n\nP:busybox\nV:1.36.1-r29\n"})
	l2raw := tarOf(t, map[string]string{"etc/.wh.b": "", "etc/c": "c\n"})
	l1 := put(gz(t, l1raw))
	l1.MediaType = ocispec.MediaTypeImageLayerGzip
	l2 := put(l2raw)
	l2.MediaType = ocispec.MediaTypeImageLayer
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "arm64"}, Created: &testTime,
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(l1raw), digest.FromBytes(l2raw)}}}
	cj, _ := json.MarshalIndent(cfg, "", "   ") // not canonical on purpose: kept byte for byte
	c := put(cj)
	c.MediaType = ocispec.MediaTypeImageConfig
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: c, Layers: []ocispec.Descriptor{l1, l2}}
	m.SchemaVersion = 2
	mj, _ := json.MarshalIndent(m, "", "  ")
	md := put(mj)
	md.MediaType = ocispec.MediaTypeImageManifest
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "example.com/base:3"}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	idx.SchemaVersion = 2
	ij, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(dir, "index.json"), ij, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(layoutFileContent), 0o644)
	return dir, md.Digest
}

func sbomOf(t testing.TB, b *Bundle) string {
	for _, env := range b.Attestations().Attestations {
		st, err := statementOf(&env)
		if err != nil {
			t.Fatal(err)
		}
		if st.PredicateType == PredicateSPDX {
			return string(st.Predicate)
		}
	}
	t.Fatal("no SBOM")
	return ""
}

func dirToTar(t testing.TB, dir string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		rel, _ := filepath.Rel(dir, p)
		if rel == "." || fi.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(p)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: filepath.ToSlash(rel), Size: int64(len(data)), Mode: 0o644})
		tw.Write(data)
		return nil
	})
	tw.Close()
	return buf.Bytes()
}

func TestPackOCILayoutAndArchive(t *testing.T) {
	layout, md := ociLayout(t)
	s, pub := newSigner(t, keys.Ed25519)
	out := t.TempDir()
	archive := filepath.Join(out, "image.tar")
	if err := os.WriteFile(archive, dirToTar(t, layout), 0o644); err != nil {
		t.Fatal(err)
	}
	gzArchive := filepath.Join(out, "image.tar.gz")
	os.WriteFile(gzArchive, gz(t, dirToTar(t, layout)), 0o644)
	for _, src := range []string{layout, archive, gzArchive} {
		dst := filepath.Join(out, filepath.Base(src)+".ctp")
		res, err := Pack(context.Background(), src, dst, PackOptions{Name: "base", ImageRef: "example.com/base:3", Signers: []*keys.Signer{s}, Architecture: "arm64"})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		// An OCI manifest is kept byte for byte: same digest as the source.
		if res.ManifestDigest != md {
			t.Errorf("%s: manifest digest %s, want %s", src, res.ManifestDigest, md)
		}
		b, err := OpenFile(dst, Options{})
		if err != nil {
			t.Fatal(err)
		}
		k, _ := keys.ParsePublicKey(pub)
		p := policyFor(k)
		if _, err := Verify(context.Background(), b, p, VerifyOptions{Now: testTime}); err != nil {
			t.Fatalf("%s: verify: %v", src, err)
		}
		sbom := sbomOf(t, b)
		for _, want := range []string{`"./etc/a"`, `"./etc/c"`, "pkg:apk/musl@1.2.5-r0?arch=x86_64", "pkg:apk/busybox@1.36.1-r29"} {
			if !strings.Contains(sbom, want) {
				t.Errorf("%s: SBOM lacks %s", src, want)
			}
		}
		if strings.Contains(sbom, `"./etc/b"`) {
			t.Errorf("%s: SBOM lists a whited-out file", src)
		}
		if !b.Manifest().Created.Equal(testTime) {
			t.Errorf("%s: created %v, want the config's", src, b.Manifest().Created)
		}
		b.Close()
	}
	// The wrong platform is not silently packed.
	if _, err := Pack(context.Background(), layout, filepath.Join(out, "x.ctp"), PackOptions{Name: "x", Architecture: "s390x"}); err == nil {
		t.Error("packed an image for the wrong platform")
	}
	if _, err := os.Stat(filepath.Join(out, "x.ctp")); !os.IsNotExist(err) {
		t.Error("failed pack left an output file")
	}
}

func TestPackDockerSave(t *testing.T) {
	dir := t.TempDir()
	layer := tarOf(t, map[string]string{"bin/app": "binary\n"})
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(layer).String() + `","` + digest.FromBytes(layer).String() + `"]}}`)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)), Mode: 0o644})
		tw.Write(data)
	}
	add("cfg.json", cfg)
	add("aaa/layer.tar", layer)
	// docker save links repeated layers.
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bbb/layer.tar", Linkname: "../aaa/layer.tar"})
	add("manifest.json", []byte(`[{"Config":"cfg.json","RepoTags":["app:1"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}]`))
	tw.Close()
	src := filepath.Join(dir, "save.tar")
	os.WriteFile(src, buf.Bytes(), 0o644)
	s, pub := newSigner(t, keys.ECDSAP256)
	dst := filepath.Join(dir, "app.ctp")
	res, err := Pack(context.Background(), src, dst, PackOptions{Name: "app", ImageRef: "app:1", Signers: []*keys.Signer{s}})
	if err != nil {
		t.Fatal(err)
	}
	if res.SourceKind != "docker-archive" || res.Layers != 2 {
		t.Errorf("%+v", res)
	}
	k, _ := keys.ParsePublicKey(pub)
	if _, err := verifyFile(dst, policyFor(k)); err != nil {
		t.Fatal(err)
	}
	// An archive entry escaping the archive is refused.
	buf.Reset()
	tw = tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "x", Linkname: "../../etc/passwd"})
	tw.Close()
	os.WriteFile(src, buf.Bytes(), 0o644)
	if _, err := Pack(context.Background(), src, dst+"2", PackOptions{Name: "app"}); err == nil {
		t.Error("archive with escaping link accepted")
	}
}

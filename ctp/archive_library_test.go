package ctp

// go-containerregistry's pkg/v1/tarball measured against pack's own reading
// of a docker-save archive (docs/libraries.md). On an uncompressed archive
// in a seekable file the library is faster: it reads layers in place (its
// per-file lookups rescan only tar headers, seeking over data), while pack
// first extracts the archive to a temporary directory. It cannot read a
// compressed archive in place (each lookup would decompress from the start)
// nor an OCI archive, and its layout reader reads manifests and configs
// unbounded and without checking their digests, which readLayoutBlob does.

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/opencontainers/go-digest"
)

// dockerSave writes a docker-save archive of n uncompressed layers of size
// bytes each (one random file per layer).
func dockerSave(b *testing.B, n int, size int64) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "image.tar")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	var layers []string
	var diffIDs []digest.Digest
	for i := 0; i < n; i++ {
		content := make([]byte, size)
		rand.Read(content)
		layer := tarBytes(b, fmt.Sprintf("file%d", i), content)
		d := digest.FromBytes(layer)
		name := d.Encoded() + "/layer.tar"
		add(name, layer)
		layers = append(layers, name)
		diffIDs = append(diffIDs, d)
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cfgName := digest.FromBytes(cfg).Encoded() + ".json"
	add(cfgName, cfg)
	man, _ := json.Marshal([]dockerManifestEntry{{Config: cfgName, RepoTags: []string{"example.com/app:1"}, Layers: layers}})
	add("manifest.json", man)
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

func tarBytes(b *testing.B, name string, content []byte) []byte {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
		tw.Write(content)
		pw.CloseWithError(tw.Close())
	}()
	out, err := io.ReadAll(pr)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// Both benchmarks open a docker-save archive of 8 layers of 8 MiB and read
// every layer once, checking it against its digest: the input side of
// `vordr ctp pack image.tar`.
func BenchmarkDockerArchive_Handwritten(b *testing.B) {
	src := dockerSave(b, 8, 8<<20)
	b.SetBytes(8 * 8 << 20)
	for b.Loop() {
		dir := b.TempDir()
		if err := extractArchive(context.Background(), src, dir); err != nil {
			b.Fatal(err)
		}
		var entries []dockerManifestEntry
		data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil || json.Unmarshal(data, &entries) != nil {
			b.Fatal("manifest.json", err)
		}
		for _, l := range entries[0].Layers {
			d, _, _, err := hashFile(filepath.Join(dir, l))
			if err != nil || d.Encoded() != filepath.Dir(l) {
				b.Fatalf("layer %s: %v %v", l, d, err)
			}
		}
		os.RemoveAll(dir)
	}
}

func BenchmarkDockerArchive_GoContainerregistry(b *testing.B) {
	src := dockerSave(b, 8, 8<<20)
	b.SetBytes(8 * 8 << 20)
	for b.Loop() {
		img, err := tarball.ImageFromPath(src, nil)
		if err != nil {
			b.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil {
			b.Fatal(err)
		}
		for _, l := range layers {
			want, err := l.DiffID()
			if err != nil {
				b.Fatal(err)
			}
			rc, err := l.Uncompressed()
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.Copy(h, rc); err != nil {
				b.Fatal(err)
			}
			rc.Close()
			if fmt.Sprintf("%x", h.Sum(nil)) != want.Hex {
				b.Fatalf("layer %s does not match", want)
			}
		}
	}
}

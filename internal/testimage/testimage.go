//go:build linux

// Package testimage builds container images for tests, the demo and
// benchmarks without a registry: a static busybox image, a Kubernetes pause
// image, or an image of any directory. Images are one gzip layer and are
// written as an OCI image layout directory or as an OCI archive that
// `ctr image import` and containerd's Client.Import accept and name.
//
// Output is deterministic: the same input gives byte-identical blobs and
// therefore the same digests, so tests can compare digests across runs and
// machines with the same busybox and Go toolchain.
package testimage

import (
	"bytes"
	"compress/gzip"
	_ "crypto/sha256" // go-digest panics unless the hash is linked in
	"encoding/json"
	"fmt"
	"runtime"
	"strings"

	"github.com/distribution/reference"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationImageName is the index.json annotation containerd's importer
// reads the full image name from (images.AnnotationImageName in containerd;
// repeated here so this package does not depend on containerd).
const AnnotationImageName = "io.containerd.image.name"

// DefaultPath is the PATH of every image unless Options.Env sets one.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options shape an image. The zero value is usable; each builder documents
// its defaults.
type Options struct {
	// Name is the image reference recorded in index.json, for example
	// "docker.io/vordr/busybox:test". Short forms are normalized the way
	// containerd's CRI does ("vordr/busybox" → "docker.io/vordr/busybox:latest").
	Name string
	// Files are added after the builder's own files and replace them at
	// the same path.
	Files []File

	// Image configuration. Nil slices take the builder's defaults; Env
	// always gets DefaultPath unless it sets PATH itself.
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
	Labels     map[string]string

	// Architecture of the image config and platform; runtime.GOARCH when
	// empty. It must match the binaries in the image.
	Architecture string

	// BusyboxPath is the static busybox Busybox copies; /bin/busybox (from
	// Debian's busybox-static) when empty.
	BusyboxPath string

	// PauseBinary is a prebuilt pause binary for Pause; when empty Pause
	// compiles the embedded source with GoTool ("go" from PATH when empty).
	PauseBinary string
	GoTool      string
}

// Image is a built image held in memory. Descriptors are those of index.json,
// the manifest and the config; write it out with WriteLayout or WriteArchive.
type Image struct {
	// Name is the normalized reference the image is imported as.
	Name string
	// Manifest is the descriptor in index.json, with platform and name
	// annotations. Its digest is what containerd records as the image target.
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
	Layers   []ocispec.Descriptor
	// DiffIDs are the digests of the uncompressed layers (rootfs.diff_ids).
	DiffIDs []digest.Digest

	index []byte
	blobs map[digest.Digest][]byte
}

// Build makes an image of the directory tree at dir, plus opts.Files. An empty
// dir starts from an empty root filesystem. Owners become 0:0 and times a
// fixed epoch; hard links are kept; device nodes, sockets and FIFOs are
// refused.
func Build(dir string, opts Options) (*Image, error) {
	r := rootfs{}
	if dir != "" {
		if err := r.addDir(dir); err != nil {
			return nil, err
		}
	}
	if opts.Name == "" {
		opts.Name = "docker.io/vordr/image:test"
	}
	return build(r, opts)
}

// build adds opts.Files to r and assembles the image.
func build(r rootfs, opts Options) (*Image, error) {
	for _, f := range opts.Files {
		if err := r.add(f); err != nil {
			return nil, err
		}
	}
	name, tag, err := normalizeName(opts.Name)
	if err != nil {
		return nil, err
	}
	arch := opts.Architecture
	if arch == "" {
		arch = runtime.GOARCH
	}

	tarball, err := r.layer()
	if err != nil {
		return nil, err
	}
	gz, err := gzipDeterministic(tarball)
	if err != nil {
		return nil, err
	}

	img := &Image{Name: name, blobs: map[digest.Digest][]byte{}}
	diffID := digest.FromBytes(tarball)
	img.DiffIDs = []digest.Digest{diffID}
	img.Layers = []ocispec.Descriptor{img.addBlob(ocispec.MediaTypeImageLayerGzip, gz)}

	platform := ocispec.Platform{Architecture: arch, OS: "linux"}
	config := ocispec.Image{
		// No Created: a timestamp would change the digest on every build.
		Platform: platform,
		Config: ocispec.ImageConfig{
			User:       opts.User,
			Env:        withPath(opts.Env),
			Entrypoint: opts.Entrypoint,
			Cmd:        opts.Cmd,
			WorkingDir: opts.WorkingDir,
			Labels:     opts.Labels,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: img.DiffIDs},
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("encode image config: %w", err)
	}
	img.Config = img.addBlob(ocispec.MediaTypeImageConfig, configJSON)

	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.Config,
		Layers:    img.Layers,
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return nil, fmt.Errorf("encode image manifest: %w", err)
	}
	img.Manifest = img.addBlob(ocispec.MediaTypeImageManifest, manifestJSON)
	img.Manifest.Platform = &platform
	// Both names, as containerd's own exporter writes them: containerd's
	// importers take the full name from AnnotationImageName; other OCI tools
	// read only the tag from ref.name.
	img.Manifest.Annotations = map[string]string{
		AnnotationImageName:       name,
		ocispec.AnnotationRefName: tag,
	}

	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{img.Manifest},
	}
	if img.index, err = json.Marshal(index); err != nil {
		return nil, fmt.Errorf("encode image index: %w", err)
	}
	return img, nil
}

func (img *Image) addBlob(mediaType string, b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	img.blobs[d] = b
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// Blob returns the content of a blob of the image (layer, config or
// manifest).
func (img *Image) Blob(d digest.Digest) ([]byte, bool) {
	b, ok := img.blobs[d]
	return b, ok
}

// IndexJSON returns the image's index.json.
func (img *Image) IndexJSON() []byte { return bytes.Clone(img.index) }

// normalizeName returns the full reference and its tag. Digest references
// are refused: the digest of a test image is computed, not chosen.
func normalizeName(s string) (name, tag string, err error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return "", "", fmt.Errorf("image name %q: %w; use a reference like docker.io/vordr/busybox:test", s, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return "", "", fmt.Errorf("image name %q has a digest; give a tag instead, the digest is computed", s)
	}
	tagged := reference.TagNameOnly(named).(reference.Tagged)
	return tagged.String(), tagged.Tag(), nil
}

func withPath(env []string) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			return env
		}
	}
	return append([]string{DefaultPath}, env...)
}

// gzipDeterministic compresses b with an empty gzip header (no name, no
// time; Go writes OS "unknown"), so the compressed bytes depend only on b
// and the Go version.
func gzipDeterministic(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("compress layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress layer: %w", err)
	}
	return buf.Bytes(), nil
}

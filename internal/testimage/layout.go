//go:build linux

package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layoutFile is the content of the oci-layout file.
var layoutFile = []byte(`{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`)

// files returns the OCI image layout as (path, content) pairs in a fixed
// order: blobs by digest, then index.json and oci-layout.
func (img *Image) files() []layoutEntry {
	digests := make([]digest.Digest, 0, len(img.blobs))
	for d := range img.blobs {
		digests = append(digests, d)
	}
	sort.Slice(digests, func(i, j int) bool { return digests[i] < digests[j] })
	out := make([]layoutEntry, 0, len(digests)+2)
	for _, d := range digests {
		out = append(out, layoutEntry{blobPath(d), img.blobs[d]})
	}
	return append(out,
		layoutEntry{ocispec.ImageIndexFile, img.index},
		layoutEntry{ocispec.ImageLayoutFile, layoutFile},
	)
}

type layoutEntry struct {
	path    string // slash-separated, relative to the layout root
	content []byte
}

func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// WriteLayout writes the image as an OCI image layout in dir, creating dir if
// needed. An existing index.json is replaced, so dir holds this image only;
// blobs of other images are left in place.
func (img *Image) WriteLayout(dir string) error {
	for _, f := range img.files() {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write OCI layout: %w", err)
		}
		if err := os.WriteFile(p, f.content, 0o644); err != nil {
			return fmt.Errorf("write OCI layout: %w", err)
		}
	}
	return nil
}

// WriteArchive writes the image as an OCI archive: a tar of the OCI image
// layout, as `ctr image import` and containerd's Client.Import read it. The
// bytes are deterministic.
func (img *Image) WriteArchive(w io.Writer) error {
	tw := tar.NewWriter(w)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch})
	}
	if err := dir("blobs/"); err != nil {
		return fmt.Errorf("write OCI archive: %w", err)
	}
	if err := dir("blobs/" + digest.Canonical.String() + "/"); err != nil {
		return fmt.Errorf("write OCI archive: %w", err)
	}
	for _, f := range img.files() {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.path,
			Mode:     0o644,
			Size:     int64(len(f.content)),
			ModTime:  epoch,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write OCI archive: %w", err)
		}
		if _, err := io.Copy(tw, bytes.NewReader(f.content)); err != nil {
			return fmt.Errorf("write OCI archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write OCI archive: %w", err)
	}
	return nil
}

// WriteArchiveFile writes the OCI archive to path atomically (a temporary
// file renamed into place), so a concurrent reader — another test process
// sharing a cached archive — never sees a partial file.
func (img *Image) WriteArchiveFile(path string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write OCI archive %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = img.WriteArchive(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("write OCI archive %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write OCI archive %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write OCI archive %s: %w", path, err)
	}
	return nil
}

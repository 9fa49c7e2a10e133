package ctp

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Compression of a whole bundle file.
type Compression string

const (
	CompressionNone Compression = ""
	CompressionGzip Compression = "gzip"
	CompressionZstd Compression = "zstd"
)

// blobSource is a blob to be copied into a bundle; open is called once.
type blobSource struct {
	desc ocispec.Descriptor
	open func() (io.ReadCloser, error)
}

type contents struct {
	manifestTOML []byte
	indexJSON    []byte
	blobs        []blobSource
	attestJSON   []byte
}

// fixedTime is the mtime of every bundle entry: entry metadata carries no
// information, so two packs of the same input are byte-identical.
var fixedTime = time.Unix(0, 0).UTC()

func writeEntry(tw *tar.Writer, name string, size int64, r io.Reader) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o644,
		ModTime:  fixedTime,
		Format:   tar.FormatUSTAR,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := copyBuffered(tw, r)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("ctp: %s: wrote %d bytes, expected %d", name, n, size)
	}
	return nil
}

// writeTar writes the bundle entries in their canonical order: manifest.toml,
// the OCI layout (index, then blobs sorted by digest), attestations last so
// that sign and attach-log only rewrite the tail.
func writeTar(w io.Writer, c contents) error {
	tw := tar.NewWriter(w)
	small := func(name string, data []byte) error {
		return writeEntry(tw, name, int64(len(data)), bytesReader(data))
	}
	if err := small(ManifestPath, c.manifestTOML); err != nil {
		return err
	}
	if err := small(LayoutFilePath, []byte(layoutFileContent)); err != nil {
		return err
	}
	if err := small(IndexPath, c.indexJSON); err != nil {
		return err
	}
	blobs := append([]blobSource(nil), c.blobs...)
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].desc.Digest < blobs[j].desc.Digest })
	for i, bs := range blobs {
		if i > 0 && bs.desc.Digest == blobs[i-1].desc.Digest {
			continue // the same content referenced twice is stored once
		}
		rc, err := bs.open()
		if err != nil {
			return err
		}
		// Re-hash while copying: a source that changed since it was
		// measured must not produce a bundle that lies about its content.
		// The hash runs on another core, beside the reads and writes.
		h := sha256.New()
		ha := newAsyncWriter(h)
		err = writeEntry(tw, blobPath(bs.desc.Digest), bs.desc.Size, io.TeeReader(rc, ha))
		ha.Close() // hash.Hash.Write never fails
		rc.Close()
		if err != nil {
			// A rootfs that grew since it was measured fails here
			// (archive/tar: write too long).
			return fmt.Errorf("ctp: copying blob %s: %w", bs.desc.Digest, err)
		}
		if digest.NewDigest(digest.SHA256, h) != bs.desc.Digest {
			return fmt.Errorf("ctp: blob %s changed while packing", bs.desc.Digest)
		}
	}
	if err := small(BundleJSONPath, c.attestJSON); err != nil {
		return err
	}
	return tw.Close()
}

// writeFileAtomic writes a bundle through fn into a temporary file next to
// path and renames it into place only when everything succeeded: a failed
// pack, sign or attach never leaves a partial or modified output.
func writeFileAtomic(path string, comp Compression, fn func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var w io.Writer = tmp
	var zc io.WriteCloser
	switch comp {
	case CompressionNone:
	case CompressionGzip:
		zc, err = gzip.NewWriterLevel(tmp, gzip.DefaultCompression)
	case CompressionZstd:
		// One encoder goroutine keeps the output independent of the machine.
		zc, err = zstd.NewWriter(tmp, zstd.WithEncoderConcurrency(1))
	default:
		err = fmt.Errorf("ctp: unknown compression %q", comp)
	}
	if err != nil {
		return err
	}
	if zc != nil {
		w = zc
	}
	if err = fn(w); err != nil {
		return err
	}
	if zc != nil {
		if err = zc.Close(); err != nil {
			return err
		}
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// rewrite copies b into path with a new attestations/bundle.json.
func (b *Bundle) rewrite(path string, comp Compression, attestJSON []byte) error {
	var blobs []blobSource
	for _, d := range b.Blobs() {
		e := b.entries[blobPath(d.Digest)]
		blobs = append(blobs, blobSource{desc: ocispec.Descriptor{Digest: d.Digest, Size: e.size}, open: func() (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(b.ra, e.off, e.size)), nil
		}})
	}
	return writeFileAtomic(path, comp, func(w io.Writer) error {
		return writeTar(w, contents{manifestTOML: b.manifestTOML, indexJSON: b.indexJSON, blobs: blobs, attestJSON: attestJSON})
	})
}

// CompressionOf reports how the bundle file at path is compressed.
func CompressionOf(path string) (Compression, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var magic [4]byte
	n, _ := io.ReadFull(f, magic[:])
	return Compression(compression(magic[:n])), nil
}

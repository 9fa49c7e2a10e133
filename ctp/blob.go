package ctp

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest returns the parsed manifest.toml.
func (b *Bundle) Manifest() Manifest { return b.manifest }

// ManifestTOML returns manifest.toml as stored (its digest is a statement subject).
func (b *Bundle) ManifestTOML() []byte { return b.manifestTOML }

// Index returns oci-layout/index.json.
func (b *Bundle) Index() ocispec.Index { return b.index }

// IndexJSON returns oci-layout/index.json as stored.
func (b *Bundle) IndexJSON() []byte { return b.indexJSON }

// ManifestDescriptor describes the image manifest (the digest every statement
// names, and what an image record in containerd should point at).
func (b *Bundle) ManifestDescriptor() ocispec.Descriptor { return b.manifestDesc }

// ImageManifest returns the parsed OCI image manifest.
func (b *Bundle) ImageManifest() ocispec.Manifest { return b.image }

// Config returns the parsed OCI image config.
func (b *Bundle) Config() ocispec.Image { return b.config }

// Layers returns the layer descriptors in manifest order.
func (b *Bundle) Layers() []ocispec.Descriptor { return b.image.Layers }

// Blobs returns every blob descriptor with children before parents (layers,
// config, manifest), the order in which to write them into a content store so
// that nothing ever references missing content.
func (b *Bundle) Blobs() []ocispec.Descriptor {
	out := append([]ocispec.Descriptor(nil), b.image.Layers...)
	return append(out, b.image.Config, b.manifestDesc)
}

// Attestations returns attestations/bundle.json.
func (b *Bundle) Attestations() AttestationBundle { return b.attest }

// AttestationsJSON returns attestations/bundle.json as stored.
func (b *Bundle) AttestationsJSON() []byte { return b.attestJSON }

// Entries returns the regular-file entry names in archive order.
func (b *Bundle) Entries() []string { return append([]string(nil), b.order...) }

// BlobReaderAt gives random access to a blob's stored bytes without checking
// them; it satisfies containerd's content.ReaderAt. Call VerifyBlobs (or
// Verify) first, or use OpenBlob.
type BlobReaderAt struct{ *io.SectionReader }

// Close does nothing: the Bundle owns the file.
func (BlobReaderAt) Close() error { return nil }

// ReaderAt returns random access to the blob d.
func (b *Bundle) ReaderAt(d digest.Digest) (BlobReaderAt, error) {
	if checkDigest(d) != nil {
		return BlobReaderAt{}, malformed(ReasonInvalidField, string(d), "not a sha256 digest")
	}
	e, ok := b.entries[blobPath(d)]
	if !ok {
		return BlobReaderAt{}, malformed(ReasonMissingEntry, string(d), "no such blob in bundle")
	}
	return BlobReaderAt{io.NewSectionReader(b.ra, e.off, e.size)}, nil
}

// OpenBlob returns a streaming reader of blob d that fails, in place of
// io.EOF, with a DIGEST_MISMATCH error if the content is not what d names.
// The importer streams these into containerd's content store.
func (b *Bundle) OpenBlob(d digest.Digest) (*BlobReader, error) {
	ra, err := b.ReaderAt(d)
	if err != nil {
		return nil, err
	}
	return &BlobReader{r: ra.SectionReader, d: d, h: sha256.New(), size: ra.Size()}, nil
}

// BlobReader is a verifying blob reader.
type BlobReader struct {
	r    io.Reader
	d    digest.Digest
	h    hash.Hash
	size int64
	err  error
}

// Size is the blob's length.
func (r *BlobReader) Size() int64 { return r.size }

// Digest is the blob's expected digest.
func (r *BlobReader) Digest() digest.Digest { return r.d }

func (r *BlobReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		if digest.NewDigest(digest.SHA256, r.h) != r.d {
			err = malformed(ReasonDigestMismatch, blobPath(r.d), "content does not match its digest")
		}
		r.err = err
		if n > 0 {
			return n, nil
		}
	}
	return n, err
}

// Close does nothing; it lets BlobReader be an io.ReadCloser.
func (r *BlobReader) Close() error { return nil }

// hashBufSize is large enough that per-call overhead vanishes next to SHA-256.
const hashBufSize = 1 << 20

// VerifyBlobs checks every layer blob against its digest (manifest and config
// were checked by Open), hashing independent layers in parallel, one per core
// (SHA-256 of one stream cannot use more than one core, so a bundle of n equal
// layers verifies up to min(n, GOMAXPROCS) times faster than one at a time).
//
// The error is the same whatever the scheduling: that of the first failing
// layer in manifest order, exactly what a sequential check would report.
func (b *Bundle) VerifyBlobs(ctx context.Context) error {
	return b.verifyBlobs(ctx, runtime.GOMAXPROCS(0))
}

// verifyBlobs is VerifyBlobs with at most workers layers hashed at once;
// workers <= 1 checks them one after another (tests and the benchmark compare
// the two).
func (b *Bundle) verifyBlobs(ctx context.Context, workers int) error {
	// A layer listed twice is the same entry: hash it once.
	var layers []digest.Digest
	seen := map[digest.Digest]bool{}
	for _, l := range b.image.Layers {
		if !seen[l.Digest] {
			seen[l.Digest] = true
			layers = append(layers, l.Digest)
		}
	}
	workers = max(1, min(workers, len(layers)))
	if len(layers) == 0 {
		return ctx.Err()
	}
	// Small bundles (the common case for latency) need no megabyte buffers;
	// memory is bounded by one buffer per worker.
	var bufSize int64 = 4096
	for _, d := range layers {
		bufSize = max(bufSize, min(b.entries[blobPath(d)].size, hashBufSize))
	}
	// failed is the lowest index known to be bad. Layers after it are
	// abandoned (their result cannot be reported); layers before it are
	// finished, since one of them may be bad too and must win.
	var failed atomic.Int64
	failed.Store(int64(len(layers)))
	errs := make([]error, len(layers))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bufSize)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(layers)) || i > failed.Load() {
					return
				}
				abandon := func() bool { return i > failed.Load() }
				err := b.verifyBlob(ctx, layers[i], buf, abandon)
				if err == errAbandoned {
					return
				}
				errs[i] = err
				if err != nil {
					for {
						f := failed.Load()
						if i >= f || failed.CompareAndSwap(f, i) {
							break
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// errAbandoned stops hashing a layer whose result no longer matters.
var errAbandoned = errors.New("abandoned")

func (b *Bundle) verifyBlob(ctx context.Context, d digest.Digest, buf []byte, abandon func() bool) error {
	e := b.entries[blobPath(d)]
	h := sha256.New()
	for off := int64(0); off < e.size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		if abandon() {
			return errAbandoned
		}
		n := min(int64(len(buf)), e.size-off)
		if _, err := b.ra.ReadAt(buf[:n], e.off+off); err != nil {
			return malformedErr(ReasonTruncated, blobPath(d), err)
		}
		h.Write(buf[:n])
		off += n
	}
	if digest.NewDigest(digest.SHA256, h) != d {
		return malformed(ReasonDigestMismatch, blobPath(d), "content does not match its digest")
	}
	return nil
}

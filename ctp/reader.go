package ctp

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pelletier/go-toml/v2"

	"github.com/vordr-project/vordr/ctp/canonical"
)

// Options control Open.
type Options struct {
	Limits  Limits // zero value means DefaultLimits
	TempDir string // where a compressed bundle is decompressed; "" = os.TempDir()
}

// Bundle is an opened, structurally validated bundle. Opening checks the tar
// structure, every path, manifest.toml, the OCI layout, index.json, the image
// manifest and config (their digests included) and the attestation bundle's
// syntax. Layer digests are checked by VerifyBlobs (called by Verify) and
// again by every reader OpenBlob returns.
type Bundle struct {
	ra      io.ReaderAt
	size    int64
	tmp     *os.File // decompressed copy, removed by Close
	closer  io.Closer
	entries map[string]entry
	order   []string // entry names in archive order

	manifest     Manifest
	manifestTOML []byte
	indexJSON    []byte
	index        ocispec.Index
	manifestDesc ocispec.Descriptor
	image        ocispec.Manifest
	imageJSON    []byte
	config       ocispec.Image
	configJSON   []byte
	attest       AttestationBundle
	attestJSON   []byte
}

type entry struct {
	off, size int64
}

// OpenFile opens the bundle at path. Close the Bundle to release the file.
func OpenFile(path string, opts Options) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	b, err := Open(f, fi.Size(), opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	if b.tmp == nil {
		b.closer = f
	} else {
		f.Close()
	}
	return b, nil
}

// Open validates the bundle in r (size bytes). A gzip- or zstd-compressed
// bundle is first decompressed, within Limits, into a temporary file that
// Close removes. The caller keeps ownership of r.
func Open(r io.ReaderAt, size int64, opts Options) (*Bundle, error) {
	lim := opts.Limits
	if lim == (Limits{}) {
		lim = DefaultLimits
	}
	b := &Bundle{ra: r, size: size, entries: map[string]entry{}}
	var magic [4]byte
	n, _ := r.ReadAt(magic[:], 0)
	if kind := compression(magic[:n]); kind != "" {
		tmp, tsize, err := decompress(io.NewSectionReader(r, 0, size), size, kind, lim, opts.TempDir)
		if err != nil {
			return nil, err
		}
		b.ra, b.size, b.tmp = tmp, tsize, tmp
	}
	if err := b.load(lim); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Close releases the bundle's resources.
func (b *Bundle) Close() error {
	var err error
	if b.tmp != nil {
		name := b.tmp.Name()
		err = b.tmp.Close()
		os.Remove(name)
		b.tmp = nil
	}
	if b.closer != nil {
		if cerr := b.closer.Close(); err == nil {
			err = cerr
		}
		b.closer = nil
	}
	return err
}

func compression(magic []byte) string {
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	}
	return ""
}

// bombGuard stops a decompression that exceeds the size or ratio limit.
type bombGuard struct {
	w          io.Writer
	n, in, max int64
	ratio      int64
}

var errBomb = errors.New("decompressed size exceeds limit")

func (g *bombGuard) Write(p []byte) (int, error) {
	g.n += int64(len(p))
	if g.n > g.max || (g.ratio > 0 && g.n > ratioGrace && g.n > g.in*g.ratio) {
		return 0, errBomb
	}
	return g.w.Write(p)
}

func decompress(sr io.Reader, size int64, kind string, lim Limits, dir string) (*os.File, int64, error) {
	// gzip reads through a bufio.Reader it is given (rather than its own),
	// so what follows the stream can be inspected afterwards.
	r := bufio.NewReader(sr)
	var zr io.Reader
	switch kind {
	case "gzip":
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, 0, malformedErr(ReasonCompression, "", err)
		}
		// A bundle is one gzip stream; trailing members would let two readers
		// see different content.
		gz.Multistream(false)
		defer gz.Close()
		// Name, comment and extra fields carry bytes nothing verifies
		// (§1): refused. MTIME, XFL and OS are outside the promise (§1).
		if gz.Name != "" || gz.Comment != "" || len(gz.Extra) > 0 {
			return nil, 0, malformed(ReasonCompression, "", "gzip header name, comment or extra field: not allowed in a bundle")
		}
		zr = gz
	case "zstd":
		zd, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, 0, malformedErr(ReasonCompression, "", err)
		}
		defer zd.Close()
		zr = zd
	}
	tmp, err := os.CreateTemp(dir, "ctp-*.tar")
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*os.File, int64, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, 0, err
	}
	g := &bombGuard{w: tmp, max: lim.MaxDecompressed, in: size, ratio: lim.MaxCompressionRatio}
	if _, err := io.Copy(g, zr); err != nil {
		if errors.Is(err, errBomb) {
			return fail(malformed(ReasonTooLarge, "", "decompression bomb: output over %d bytes or ratio over %d:1", lim.MaxDecompressed, lim.MaxCompressionRatio))
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fail(err)
		}
		return fail(malformedErr(ReasonCompression, "", err))
	}
	if kind == "gzip" {
		// Nothing may follow the gzip stream.
		if _, err := r.Peek(1); err != io.EOF {
			return fail(malformed(ReasonCompression, "", "data after the compressed stream"))
		}
	}
	return tmp, g.n, nil
}

// seekPos tracks the position of the section reader tar reads from, so data
// offsets of entries are known and blobs can be served with ReadAt.
func (b *Bundle) load(lim Limits) error {
	sr := io.NewSectionReader(b.ra, 0, b.size)
	tr := tar.NewReader(sr)
	var next int64 // where the next header must start
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return malformedErr(ReasonTruncated, "", err)
			}
			return malformedErr(ReasonTarFormat, "", err)
		}
		if len(b.order) >= lim.MaxEntries {
			return malformed(ReasonTooLarge, "", "more than %d entries", lim.MaxEntries)
		}
		off, _ := sr.Seek(0, io.SeekCurrent)
		if err := b.checkHeader(hdr, off, next); err != nil {
			return err
		}
		if err := b.addEntry(hdr, off); err != nil {
			return err
		}
		next = off + (hdr.Size+511)/512*512
	}
	end, _ := sr.Seek(0, io.SeekCurrent)
	// tar stops at the end-of-archive marker; whatever follows must be the
	// zero padding some writers add, never data another reader might see.
	if err := b.checkZero(end, b.size-end, "trailing data after end of archive"); err != nil {
		return err
	}
	return b.parse(lim)
}

// checkHeader rejects what archive/tar reads past without a word: extension
// headers (PAX, GNU long names) before an entry, whose records would change
// the entry's meaning outside the checksum, and the byte after the
// checksum's NUL, which no checksum covers.
func (b *Bundle) checkHeader(hdr *tar.Header, off, want int64) error {
	if off-512 != want {
		return malformed(ReasonTarFormat, hdr.Name, "extension headers (PAX/GNU) are not allowed; entries are plain ustar")
	}
	var blk [512]byte
	if _, err := b.ra.ReadAt(blk[:], off-512); err != nil {
		return malformedErr(ReasonTruncated, hdr.Name, err)
	}
	sum := blk[148:156]
	for _, c := range sum[:6] {
		if c < '0' || c > '7' {
			return malformed(ReasonTarFormat, hdr.Name, "checksum field not in canonical form")
		}
	}
	if sum[6] != 0 || sum[7] != ' ' {
		return malformed(ReasonTarFormat, hdr.Name, "checksum field not in canonical form")
	}
	// POSIX ustar only: archive/tar also reads GNU ("ustar  \x00") and old
	// v7 headers, and the regular-file typeflag NUL, each a second encoding
	// of the same entry (§1).
	if string(blk[257:265]) != "ustar\x0000" {
		return malformed(ReasonTarFormat, hdr.Name, "not a POSIX ustar header (magic %q)", blk[257:265])
	}
	if t := blk[156]; t != tar.TypeReg && t != tar.TypeDir {
		if t == 0 {
			return malformed(ReasonTarFormat, hdr.Name, "typeflag NUL: regular files are typeflag '0'")
		}
	}
	return nil
}

func (b *Bundle) checkZero(off, n int64, what string) error {
	buf := make([]byte, min(n, 32<<10))
	for n > 0 {
		c := min(n, int64(len(buf)))
		if _, err := b.ra.ReadAt(buf[:c], off); err != nil {
			return malformedErr(ReasonTruncated, "", err)
		}
		for _, x := range buf[:c] {
			if x != 0 {
				return malformed(ReasonTarFormat, "", "%s", what)
			}
		}
		off += c
		n -= c
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (b *Bundle) addEntry(hdr *tar.Header, off int64) error {
	name := hdr.Name
	switch {
	case strings.HasPrefix(name, "/"):
		return malformed(ReasonAbsolutePath, name, "absolute path")
	case name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || strings.HasSuffix(name, "/.."):
		return malformed(ReasonPathTraversal, name, "path leaves the bundle")
	}
	switch hdr.Typeflag {
	case tar.TypeSymlink, tar.TypeLink:
		return malformed(ReasonLink, name, "links are not allowed in a bundle (target %q)", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return malformed(ReasonSpecialFile, name, "device nodes and FIFOs are not allowed")
	case tar.TypeDir:
		switch name {
		case LayoutDir, "oci-layout/blobs/", BlobsDir, AttestationsDir:
		default:
			return malformed(ReasonUnexpectedEntry, name, "unexpected directory")
		}
		if _, dup := b.entries[name]; dup {
			return malformed(ReasonDuplicateEntry, name, "duplicate entry")
		}
		b.entries[name] = entry{off: off}
		return nil
	case tar.TypeReg:
	default:
		return malformed(ReasonUnexpectedEntry, name, "unsupported tar entry type %q", hdr.Typeflag)
	}
	if path.Clean(name) != name {
		return malformed(ReasonUnexpectedEntry, name, "path is not in clean form")
	}
	switch {
	case name == ManifestPath, name == LayoutFilePath, name == IndexPath, name == BundleJSONPath:
	case strings.HasPrefix(name, BlobsDir) && isHex64(strings.TrimPrefix(name, BlobsDir)):
	default:
		return malformed(ReasonUnexpectedEntry, name, "not part of the v1 bundle layout")
	}
	if _, dup := b.entries[name]; dup {
		return malformed(ReasonDuplicateEntry, name, "duplicate entry")
	}
	if hdr.Size < 0 || off+hdr.Size > b.size {
		return malformed(ReasonTruncated, name, "entry data runs past the end of the file")
	}
	// tar skips the padding after the data without looking at it; require
	// zeros so that no byte of the file is meaningless.
	end := off + hdr.Size
	if pad := (512 - end%512) % 512; pad > 0 {
		if end+pad > b.size {
			return malformed(ReasonTruncated, name, "archive ends inside entry padding")
		}
		if err := b.checkZero(end, pad, "non-zero tar padding"); err != nil {
			err.(*Error).Path = name
			return err
		}
	}
	b.entries[name] = entry{off: off, size: hdr.Size}
	b.order = append(b.order, name)
	return nil
}

func (b *Bundle) readSmall(name string, max int64) ([]byte, error) {
	e, ok := b.entries[name]
	if !ok || (e.size == 0 && strings.HasSuffix(name, "/")) {
		return nil, malformed(ReasonMissingEntry, name, "required entry missing")
	}
	if e.size > max {
		return nil, malformed(ReasonTooLarge, name, "%d bytes, limit %d", e.size, max)
	}
	buf := make([]byte, e.size)
	if _, err := b.ra.ReadAt(buf, e.off); err != nil {
		return nil, err
	}
	return buf, nil
}

func jsonErr(name string, err error) *Error {
	switch {
	case errors.Is(err, canonical.ErrDuplicateKey):
		return malformedErr(ReasonDuplicateKey, name, err)
	case errors.Is(err, canonical.ErrNotCanonical):
		return malformedErr(ReasonNonCanonical, name, err)
	case errors.Is(err, canonical.ErrTooLarge):
		return malformedErr(ReasonTooLarge, name, err)
	}
	return malformedErr(ReasonSyntax, name, err)
}

func (b *Bundle) parse(lim Limits) error {
	layout, err := b.readSmall(LayoutFilePath, 4096)
	if err != nil {
		return err
	}
	if string(layout) != layoutFileContent {
		return malformed(ReasonInvalidField, LayoutFilePath, "must be exactly %s", layoutFileContent)
	}

	if b.manifestTOML, err = b.readSmall(ManifestPath, lim.MaxManifestTOML); err != nil {
		return err
	}
	if err := parseManifestTOML(b.manifestTOML, &b.manifest); err != nil {
		return err
	}
	imageDigest := digest.Digest(b.manifest.ImageDigest)

	// The image manifest, named by manifest.toml (which every statement
	// covers), anchors everything else.
	b.imageJSON, b.manifestDesc, err = b.readBlobJSON(imageDigest, lim.MaxImageJSON)
	if err != nil {
		return err
	}
	if err := canonical.Unmarshal(b.imageJSON, &b.image, canonical.Options{AllowUnknown: true}); err != nil {
		return jsonErr(blobPath(imageDigest), err)
	}
	if b.image.SchemaVersion != 2 || b.image.MediaType != ocispec.MediaTypeImageManifest {
		return malformed(ReasonMediaType, blobPath(imageDigest), "image manifest must have schemaVersion 2 and mediaType %s (got %d, %q)", ocispec.MediaTypeImageManifest, b.image.SchemaVersion, b.image.MediaType)
	}
	b.manifestDesc.MediaType = ocispec.MediaTypeImageManifest

	if b.indexJSON, err = b.readSmall(IndexPath, lim.MaxIndexJSON); err != nil {
		return err
	}
	if err := canonical.Unmarshal(b.indexJSON, &b.index, canonical.Options{RequireCanonical: true}); err != nil {
		return jsonErr(IndexPath, err)
	}
	want, err := indexJSON(b.manifestDesc, b.manifest.ImageRef)
	if err != nil {
		return err
	}
	// index.json is not content-addressed, so it must be exactly the one
	// derivable from manifest.toml; anything else is a place to hide data.
	if !bytes.Equal(want, b.indexJSON) {
		return malformed(ReasonInvalidField, IndexPath, "must list exactly the image manifest %s named by manifest.toml", imageDigest)
	}

	cd := b.image.Config
	if cd.MediaType != ocispec.MediaTypeImageConfig {
		return malformed(ReasonMediaType, "config", "config media type %q, want %s", cd.MediaType, ocispec.MediaTypeImageConfig)
	}
	if len(b.image.Layers) > lim.MaxLayers {
		return malformed(ReasonTooLarge, "layers", "%d layers, limit %d", len(b.image.Layers), lim.MaxLayers)
	}
	var got ocispec.Descriptor
	if b.configJSON, got, err = b.readBlobJSON(cd.Digest, lim.MaxImageJSON); err != nil {
		return err
	}
	if got.Size != cd.Size {
		return malformed(ReasonInvalidField, blobPath(cd.Digest), "size %d, descriptor says %d", got.Size, cd.Size)
	}
	if err := canonical.Unmarshal(b.configJSON, &b.config, canonical.Options{AllowUnknown: true}); err != nil {
		return jsonErr(blobPath(cd.Digest), err)
	}
	if b.config.RootFS.Type != "layers" || len(b.config.RootFS.DiffIDs) != len(b.image.Layers) {
		return malformed(ReasonInvalidField, blobPath(cd.Digest), "rootfs must be of type layers with one diff_id per layer")
	}
	referenced := map[string]bool{blobPath(imageDigest): true, blobPath(cd.Digest): true}
	for i, l := range b.image.Layers {
		if !layerMediaTypes[l.MediaType] {
			return malformed(ReasonMediaType, fmt.Sprintf("layers[%d]", i), "unsupported layer media type %q", l.MediaType)
		}
		if err := checkDigest(l.Digest); err != nil {
			return err
		}
		p := blobPath(l.Digest)
		e, ok := b.entries[p]
		if !ok {
			return malformed(ReasonMissingEntry, p, "layer blob missing")
		}
		if e.size != l.Size {
			return malformed(ReasonInvalidField, p, "size %d, descriptor says %d", e.size, l.Size)
		}
		referenced[p] = true
	}
	for _, name := range b.order {
		if strings.HasPrefix(name, BlobsDir) && !referenced[name] {
			return malformed(ReasonUnexpectedEntry, name, "blob not referenced by the image")
		}
	}

	if b.attestJSON, err = b.readSmall(BundleJSONPath, lim.MaxAttestationJSON); err != nil {
		return err
	}
	if err := canonical.Unmarshal(b.attestJSON, &b.attest, canonical.Options{RequireCanonical: true, MaxSize: int(lim.MaxAttestationJSON)}); err != nil {
		return jsonErr(BundleJSONPath, err)
	}
	if b.attest.MediaType != BundleMediaType || b.attest.Version != currentBundleVersion {
		return malformed(ReasonMediaType, BundleJSONPath, "mediaType %q version %d, want %s version %d", b.attest.MediaType, b.attest.Version, BundleMediaType, currentBundleVersion)
	}
	if b.attest.Attestations == nil || b.attest.LogEntries == nil {
		return malformed(ReasonInvalidField, BundleJSONPath, "attestations and logEntries must be arrays")
	}
	for i, env := range b.attest.Attestations {
		if env.Signatures == nil {
			return malformed(ReasonInvalidField, BundleJSONPath, "attestations[%d].signatures must be an array", i)
		}
	}
	seen := map[string]bool{}
	for i, sb := range b.attest.SigstoreBundles {
		if !isSigstoreBundle([]byte(sb)) {
			return malformed(ReasonMediaType, BundleJSONPath, "sigstoreBundles[%d] is not a sigstore bundle (a JSON object with mediaType application/vnd.dev.sigstore.bundle…)", i)
		}
		if seen[sb] {
			return malformed(ReasonDuplicateEntry, BundleJSONPath, "sigstoreBundles[%d] appears twice", i)
		}
		seen[sb] = true
	}
	return nil
}

// isSigstoreBundle checks the shape only; the content is checked by the
// sigstore verifier.
func isSigstoreBundle(data []byte) bool {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	return json.Unmarshal(data, &probe) == nil && strings.HasPrefix(probe.MediaType, "application/vnd.dev.sigstore.bundle")
}

var layerMediaTypes = map[string]bool{
	ocispec.MediaTypeImageLayer:     true,
	ocispec.MediaTypeImageLayerGzip: true,
	ocispec.MediaTypeImageLayerZstd: true,
}

func blobPath(d digest.Digest) string { return BlobsDir + d.Encoded() }

func checkDigest(d digest.Digest) error {
	// Checked by hand: go-digest's accessors panic on a string without ':'.
	if h, ok := strings.CutPrefix(string(d), "sha256:"); !ok || !isHex64(h) {
		return malformed(ReasonInvalidField, string(d), "digests must be sha256:<64 lowercase hex>")
	}
	return nil
}

// readBlobJSON reads a small blob and checks its content against its name.
func (b *Bundle) readBlobJSON(d digest.Digest, max int64) ([]byte, ocispec.Descriptor, error) {
	if err := checkDigest(d); err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	p := blobPath(d)
	data, err := b.readSmall(p, max)
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	if digest.FromBytes(data) != d {
		return nil, ocispec.Descriptor{}, malformed(ReasonDigestMismatch, p, "content does not match its digest")
	}
	return data, ocispec.Descriptor{Digest: d, Size: int64(len(data))}, nil
}

func parseManifestTOML(data []byte, m *Manifest) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return malformed(ReasonSyntax, ManifestPath, "line %d column %d: %v", row, col, de)
		}
		return malformedErr(ReasonSyntax, ManifestPath, err)
	}
	if m.CTPVersion != currentCTPVersion {
		return malformed(ReasonInvalidField, ManifestPath, "ctp_version %d, want %d", m.CTPVersion, currentCTPVersion)
	}
	if m.Name == "" {
		return malformed(ReasonInvalidField, ManifestPath, "name is empty")
	}
	if err := checkDigest(digest.Digest(m.ImageDigest)); err != nil {
		return malformedErr(ReasonInvalidField, ManifestPath, err)
	}
	return nil
}

// indexJSON renders the only index.json a bundle may carry.
func indexJSON(md ocispec.Descriptor, ref string) ([]byte, error) {
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md.Digest, Size: md.Size}
	if ref != "" {
		d.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{d}}
	idx.SchemaVersion = 2
	return canonical.Marshal(idx)
}

package ctp

// Limits bound what a bundle reader accepts, so hostile input cannot exhaust
// memory or disk. Every value is documented in docs/ctp-format.md.
type Limits struct {
	MaxEntries          int   // tar entries
	MaxManifestTOML     int64 // manifest.toml bytes
	MaxIndexJSON        int64 // index.json bytes
	MaxImageJSON        int64 // OCI manifest and config blob bytes
	MaxAttestationJSON  int64 // attestations/bundle.json bytes
	MaxLayers           int   // layers in the image manifest
	MaxDecompressed     int64 // bytes after gzip/zstd decompression of the bundle
	MaxCompressionRatio int64 // decompressed:compressed, enforced beyond ratioGrace
}

// ratioGrace is the decompressed size up to which the ratio limit is not
// checked: small, highly compressible bundles (a tiny rootfs) are normal.
const ratioGrace = 64 << 20

// DefaultLimits are used when Options.Limits is zero.
var DefaultLimits = Limits{
	MaxEntries:          4096,
	MaxManifestTOML:     1 << 20,
	MaxIndexJSON:        1 << 20,
	MaxImageJSON:        4 << 20,
	MaxAttestationJSON:  64 << 20,
	MaxLayers:           512,
	MaxDecompressed:     32 << 30,
	MaxCompressionRatio: 1024,
}

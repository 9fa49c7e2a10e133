package ctp

import (
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Parts are the pieces a bundle is made of when they travel separately, as
// they do through a registry (the image as an OCI manifest, the evidence as a
// referrer of it): Assemble puts them back together into a .ctp.
type Parts struct {
	// ManifestTOML and AttestationsJSON are the exact bytes of
	// manifest.toml and attestations/bundle.json: statements name
	// manifest.toml by digest, and nothing in a bundle may be re-encoded.
	ManifestTOML     []byte
	AttestationsJSON []byte
	// Blobs are the image manifest (named by manifest.toml's image_digest),
	// its config and its layers, in any order.
	Blobs []ocispec.Descriptor
	// Open returns a blob's content; Assemble re-hashes it while writing.
	Open func(ocispec.Descriptor) (io.ReadCloser, error)
}

// Assemble writes the bundle made of p to path (atomically: a failure leaves
// nothing at path), uncompressed, in the canonical entry order of §1, with
// the one index.json §2.3 allows. A bundle that vordr packed uncompressed is
// rebuilt byte for byte from its parts, so its file digest is unchanged.
//
// Assemble checks only what it needs to write the archive (manifest.toml
// parses, the image manifest is among the blobs, blob contents match their
// digests); the result is meant to be opened and verified with OpenFile and
// Verify like any other bundle, which checks everything else.
func Assemble(path string, p Parts) error {
	var m Manifest
	if err := parseManifestTOML(p.ManifestTOML, &m); err != nil {
		return err
	}
	if p.Open == nil {
		return fmt.Errorf("ctp: assemble: no blob opener")
	}
	var md *ocispec.Descriptor
	blobs := make([]blobSource, 0, len(p.Blobs))
	for _, d := range p.Blobs {
		if err := checkDigest(d.Digest); err != nil {
			return malformedErr(ReasonInvalidField, string(d.Digest), err)
		}
		if d.Digest == digest.Digest(m.ImageDigest) {
			md = &d
		}
		blobs = append(blobs, blobSource{desc: d, open: func() (io.ReadCloser, error) { return p.Open(d) }})
	}
	if md == nil {
		return malformed(ReasonMissingEntry, ManifestPath, "image_digest %s is not among the %d blobs given", m.ImageDigest, len(p.Blobs))
	}
	idx, err := indexJSON(*md, m.ImageRef)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, CompressionNone, func(w io.Writer) error {
		return writeTar(w, contents{manifestTOML: p.ManifestTOML, indexJSON: idx, blobs: blobs, attestJSON: p.AttestationsJSON})
	})
}

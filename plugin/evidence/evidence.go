// Package evidence re-verifies what vordr stored in containerd at import: an
// image record's labels name the attestations and manifest.toml in the
// content store, and the evidence is checked again under a policy. It works
// on containerd's store interfaces, not on a client, so the shim links no
// client code (each shim process would pay its start-up cost).
package evidence

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pelletier/go-toml/v2"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/canonical"
	"github.com/vordr-project/vordr/ctp/policy"
)

// Evidence is what an imported image carries to be re-verified: the image
// record, the digests its labels point at, and (once loaded) the blobs.
type Evidence struct {
	Image images.Image
	// Attestations and ManifestTOML are the digests named by the image's
	// vordr labels.
	Attestations, ManifestTOML digest.Digest

	attestJSON, manifestTOML, manifestJSON, configJSON []byte
	manifest                                           ocispec.Manifest
	config                                             ocispec.Image
	fromStore                                          bool
}

// ErrNoEvidence is wrapped when an image carries no vordr attestations: it
// was not imported from a verified bundle (plain `ctr image import`, a pull).
var ErrNoEvidence = fmt.Errorf("image has no vordr attestations; import it from a signed bundle with `vordr import`: %w", errdefs.ErrNotFound)

// Of reads the evidence digests from an image record without
// touching the content store.
func Of(img images.Image) (*Evidence, error) {
	e := &Evidence{Image: img}
	a, t := img.Labels[LabelAttestations], img.Labels[LabelManifestTOML]
	if a == "" || t == "" {
		return nil, fmt.Errorf("image %s: %w", img.Name, ErrNoEvidence)
	}
	var err error
	if e.Attestations, err = digest.Parse(a); err != nil {
		return nil, fmt.Errorf("image %s: label %s=%q: %v: %w", img.Name, LabelAttestations, a, err, errdefs.ErrInvalidArgument)
	}
	if e.ManifestTOML, err = digest.Parse(t); err != nil {
		return nil, fmt.Errorf("image %s: label %s=%q: %v: %w", img.Name, LabelManifestTOML, t, err, errdefs.ErrInvalidArgument)
	}
	if img.Target.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("image %s: target is %s, a verified image points at one OCI image manifest: %w", img.Name, img.Target.MediaType, errdefs.ErrInvalidArgument)
	}
	return e, nil
}

// Key identifies the evidence for caching: image manifest, attestations and
// manifest.toml digests.
func (e *Evidence) Key() string {
	return e.Image.Target.Digest.String() + "|" + e.Attestations.String() + "|" + e.ManifestTOML.String()
}

// Load reads the evidence blobs from the content store, checking every one
// against its digest (a blob changed on disk is not what its name says).
func (e *Evidence) Load(ctx context.Context, cs content.Provider) error {
	read := func(what string, d digest.Digest, max int64) ([]byte, error) {
		ra, err := cs.ReaderAt(ctx, ocispec.Descriptor{Digest: d})
		if err != nil {
			if errdefs.IsNotFound(err) {
				return nil, fmt.Errorf("image %s: %s %s is missing from the content store; re-import the bundle: %w", e.Image.Name, what, d, err)
			}
			return nil, fmt.Errorf("image %s: read %s %s: %w", e.Image.Name, what, d, err)
		}
		defer ra.Close()
		if ra.Size() > max {
			return nil, fmt.Errorf("image %s: %s %s is %d bytes, limit %d: %w", e.Image.Name, what, d, ra.Size(), max, errdefs.ErrInvalidArgument)
		}
		data := make([]byte, ra.Size())
		if _, err := ra.ReadAt(data, 0); err != nil && err != io.EOF {
			return nil, fmt.Errorf("image %s: read %s %s: %w", e.Image.Name, what, d, err)
		}
		if digest.FromBytes(data) != d {
			return nil, fmt.Errorf("image %s: %s %s in the content store does not match its digest (changed after import): %w", e.Image.Name, what, d, errdefs.ErrDataLoss)
		}
		return data, nil
	}
	lim := ctp.DefaultLimits
	var err error
	// Evidence from the store (OfStore) comes with these two read.
	if e.attestJSON == nil {
		if e.attestJSON, err = read("attestation bundle", e.Attestations, lim.MaxAttestationJSON); err != nil {
			return err
		}
	}
	if e.manifestTOML == nil {
		if e.manifestTOML, err = read("manifest.toml", e.ManifestTOML, lim.MaxManifestTOML); err != nil {
			return err
		}
	}
	if e.manifestJSON, err = read("image manifest", e.Image.Target.Digest, lim.MaxImageJSON); err != nil {
		return err
	}
	if err := canonical.Unmarshal(e.manifestJSON, &e.manifest, canonical.Options{AllowUnknown: true}); err != nil {
		return fmt.Errorf("image %s: manifest: %v: %w", e.Image.Name, err, errdefs.ErrInvalidArgument)
	}
	if e.configJSON, err = read("image config", e.manifest.Config.Digest, lim.MaxImageJSON); err != nil {
		return err
	}
	if err := canonical.Unmarshal(e.configJSON, &e.config, canonical.Options{AllowUnknown: true}); err != nil {
		return fmt.Errorf("image %s: config: %v: %w", e.Image.Name, err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// FromBlobs is the evidence of img made of blobs fetched elsewhere (an
// image's referrers in a registry, by the pull-time verifier) instead of
// loaded from the content store. The image manifest must be img's target and
// the config the one it names; Verify then judges it as it judges stored
// evidence.
func FromBlobs(img images.Image, attestJSON, manifestTOML, manifestJSON, configJSON []byte) (*Evidence, error) {
	lim := ctp.DefaultLimits
	switch {
	case img.Target.MediaType != ocispec.MediaTypeImageManifest:
		return nil, fmt.Errorf("image %s: target is %s, a verified image points at one OCI image manifest: %w", img.Name, img.Target.MediaType, errdefs.ErrInvalidArgument)
	case digest.FromBytes(manifestJSON) != img.Target.Digest:
		return nil, fmt.Errorf("image %s: the manifest given is not %s: %w", img.Name, img.Target.Digest, errdefs.ErrInvalidArgument)
	case int64(len(attestJSON)) > lim.MaxAttestationJSON, int64(len(manifestTOML)) > lim.MaxManifestTOML,
		int64(len(manifestJSON)) > lim.MaxImageJSON, int64(len(configJSON)) > lim.MaxImageJSON:
		return nil, fmt.Errorf("image %s: evidence larger than the bundle format's limits: %w", img.Name, errdefs.ErrInvalidArgument)
	}
	e := &Evidence{Image: img, Attestations: digest.FromBytes(attestJSON), ManifestTOML: digest.FromBytes(manifestTOML),
		attestJSON: attestJSON, manifestTOML: manifestTOML, manifestJSON: manifestJSON, configJSON: configJSON}
	if err := canonical.Unmarshal(manifestJSON, &e.manifest, canonical.Options{AllowUnknown: true}); err != nil {
		return nil, fmt.Errorf("image %s: manifest: %v: %w", img.Name, err, errdefs.ErrInvalidArgument)
	}
	if digest.FromBytes(configJSON) != e.manifest.Config.Digest {
		return nil, fmt.Errorf("image %s: the config given is not %s: %w", img.Name, e.manifest.Config.Digest, errdefs.ErrInvalidArgument)
	}
	if err := canonical.Unmarshal(configJSON, &e.config, canonical.Options{AllowUnknown: true}); err != nil {
		return nil, fmt.Errorf("image %s: config: %v: %w", img.Name, err, errdefs.ErrInvalidArgument)
	}
	return e, nil
}

// Layers returns the signed manifest's layer descriptors with the signed
// config's diff ids, bottom first. Call after Load.
func (e *Evidence) Layers() ([]ocispec.Descriptor, []digest.Digest, error) {
	if len(e.manifest.Layers) != len(e.config.RootFS.DiffIDs) {
		return nil, nil, fmt.Errorf("image %s: manifest lists %d layers, config %d diff ids: %w", e.Image.Name, len(e.manifest.Layers), len(e.config.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
	}
	return e.manifest.Layers, e.config.RootFS.DiffIDs, nil
}

// ChainID is the chain id of the image's top layer: the parent a container
// snapshot prepared from this image must have. Call after Load.
func (e *Evidence) ChainID() digest.Digest {
	if len(e.config.RootFS.DiffIDs) == 0 {
		return ""
	}
	return identity.ChainID(e.config.RootFS.DiffIDs)
}

// Verify re-verifies the stored attestations against the image's manifest
// digest under p: signatures, signer windows, threshold, subjects (the image
// manifest and manifest.toml), log proofs, required predicates and the
// policy's restrictions. Layer bytes are not re-hashed: containerd stored them
// by digest and the container's snapshot is checked against the chain of the
// signed config's diff ids instead. Call after Load.
//
// The result and error are those of ctp.Verify.
func (e *Evidence) Verify(ctx context.Context, p *policy.Policy, opts ctp.VerifyOptions) (*ctp.Result, error) {
	var m ctp.Manifest
	if err := toml.Unmarshal(e.manifestTOML, &m); err != nil {
		return nil, &ctp.Error{Code: ctp.CodeMalformedBundle, Reason: ctp.ReasonSyntax, Path: ctp.ManifestPath, Err: err}
	}
	if m.ImageDigest != e.Image.Target.Digest.String() {
		return nil, &ctp.Error{Code: ctp.CodeSubjectMismatch, Path: ctp.ManifestPath,
			Msg: fmt.Sprintf("the stored manifest.toml is for image %s, but image %s points at %s", m.ImageDigest, e.Image.Name, e.Image.Target.Digest)}
	}
	tarball, err := e.skeleton(m.ImageRef)
	if err != nil {
		return nil, err
	}
	b, err := ctp.Open(tarball, tarball.Size(), ctp.Options{})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	opts.SkipBlobs = true
	return ctp.Verify(ctx, b, p, opts)
}

// skeleton lays the evidence out as a v1 bundle whose layer entries read as
// zeros: with SkipBlobs, ctp.Verify checks everything but layer bytes, and a
// reader that ever looked at them would see a digest mismatch and refuse.
func (e *Evidence) skeleton(imageRef string) (*segments, error) {
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: e.Image.Target.Digest, Size: int64(len(e.manifestJSON))}
	if imageRef != "" {
		md.Annotations = map[string]string{ocispec.AnnotationRefName: imageRef}
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	idx.SchemaVersion = 2
	indexJSON, err := canonical.Marshal(idx)
	if err != nil {
		return nil, err
	}
	s := &segments{}
	s.file(ctp.LayoutFilePath, []byte(`{"imageLayoutVersion":"1.0.0"}`), -1)
	s.file(ctp.IndexPath, indexJSON, -1)
	s.file(ctp.ManifestPath, e.manifestTOML, -1)
	s.file(ctp.BlobsDir+e.Image.Target.Digest.Encoded(), e.manifestJSON, -1)
	s.file(ctp.BlobsDir+e.manifest.Config.Digest.Encoded(), e.configJSON, -1)
	seen := map[digest.Digest]bool{e.Image.Target.Digest: true, e.manifest.Config.Digest: true}
	for _, l := range e.manifest.Layers {
		if seen[l.Digest] || l.Digest.Validate() != nil {
			continue // the reader reports it
		}
		seen[l.Digest] = true
		s.file(ctp.BlobsDir+l.Digest.Encoded(), nil, l.Size)
	}
	s.file(ctp.BundleJSONPath, e.attestJSON, -1)
	s.zeros(1024) // end of archive
	return s, nil
}

// segments is an io.ReaderAt over a tar assembled from byte slices and runs
// of zeros.
type segments struct {
	segs []segment
	size int64
}

type segment struct {
	off  int64
	data []byte // nil: zeros
	n    int64
}

func (s *segments) add(data []byte, n int64) {
	if n == 0 {
		return
	}
	s.segs = append(s.segs, segment{off: s.size, data: data, n: n})
	s.size += n
}

func (s *segments) zeros(n int64) { s.add(nil, n) }

// file appends a ustar entry; data nil with size >= 0 is a run of zeros.
func (s *segments) file(name string, data []byte, size int64) {
	if size < 0 {
		size = int64(len(data))
	}
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	// A header-only write: the data is appended as its own segment.
	_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR})
	s.add(hdr.Bytes()[:512], 512)
	s.add(data, size)
	if pad := (512 - size%512) % 512; pad > 0 {
		s.zeros(pad)
	}
}

func (s *segments) Size() int64 { return s.size }

func (s *segments) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].off+s.segs[i].n > off })
	n := 0
	for ; i < len(s.segs) && n < len(p); i++ {
		sg := s.segs[i]
		rel := off + int64(n) - sg.off
		c := int(min(int64(len(p)-n), sg.n-rel))
		if sg.data == nil {
			clear(p[n : n+c])
		} else {
			copy(p[n:n+c], sg.data[rel:])
		}
		n += c
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ContainerGetter and ImageGetter are the lookups ContainerImage needs (a
// containers.Store and an images.Store have them).
type (
	ContainerGetter interface {
		Get(ctx context.Context, id string) (containers.Container, error)
	}
	ImageGetter interface {
		Get(ctx context.Context, name string) (images.Image, error)
	}
)

// ContainerImage returns a container's record and the record of the image
// it was created from.
func ContainerImage(ctx context.Context, cs ContainerGetter, is ImageGetter, id string) (containers.Container, images.Image, error) {
	c, err := cs.Get(ctx, id)
	if err != nil {
		return c, images.Image{}, fmt.Errorf("look up container %s in containerd: %w", id, err)
	}
	if c.Image == "" {
		return c, images.Image{}, fmt.Errorf("container %s was created without an image, so its rootfs cannot be traced to verified content: %w", id, ErrNoEvidence)
	}
	img, err := is.Get(ctx, c.Image)
	if err != nil {
		return c, images.Image{}, fmt.Errorf("container %s: image %s: %w", id, c.Image, err)
	}
	return c, img, nil
}

// CheckSnapshot checks that the container's rootfs snapshot was prepared on
// the image's top layer: its parent in sn (the container's snapshotter) is
// chainID.
func CheckSnapshot(ctx context.Context, sn snapshots.Snapshotter, c containers.Container, chainID digest.Digest) error {
	if c.SnapshotKey == "" || c.Snapshotter == "" {
		return fmt.Errorf("container %s has no snapshot, so its rootfs cannot be traced to the image's layers: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	info, err := sn.Stat(ctx, c.SnapshotKey)
	if err != nil {
		return fmt.Errorf("container %s: snapshot %s in %s: %w", c.ID, c.SnapshotKey, c.Snapshotter, err)
	}
	if chainID == "" || info.Parent != chainID.String() {
		return fmt.Errorf("container %s: rootfs snapshot %s has parent %q, not the image's top layer %s: the rootfs does not descend from the verified image: %w",
			c.ID, c.SnapshotKey, info.Parent, chainID, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// Labels on an imported image record that name its evidence.
const (
	// LabelAttestations is the digest of the attestation bundle
	// (attestations/bundle.json) stored in the content store.
	LabelAttestations = "vordr.io/attestations"
	// LabelManifestTOML is the digest of the bundle's manifest.toml, stored
	// next to the attestations: every statement names it as a subject.
	LabelManifestTOML = "vordr.io/ctp.manifest"
)

// ErrNotVerified is wrapped when stored evidence exists but does not verify
// under the policy (or a permissive/audit policy let a failure through: a
// warning is not a verification).
var ErrNotVerified = errors.New("the stored attestations do not verify")

// VerifyStored loads img's evidence from the content store and
// re-verifies it under p. Only an Accept counts: in permissive or audit mode a
// failing check returns an error wrapping ErrNotVerified and the *ctp.Error
// details, so callers decide by their own mode what a failure means.
// The returned Evidence has ChainID available.
func VerifyStored(ctx context.Context, cs content.Provider, img images.Image, p *policy.Policy, opts ctp.VerifyOptions) (*Evidence, error) {
	ev, err := Of(img)
	if err != nil {
		return nil, err
	}
	if err := ev.Load(ctx, cs); err != nil {
		return nil, err
	}
	res, err := ev.Verify(ctx, p, opts)
	if err == nil && res.Decision != ctp.Accept {
		err = &ctp.Error{Code: res.ErrorCode, Reason: res.Reason, Msg: res.Message}
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w: %w", img.Name, ErrNotVerified, err)
	}
	return ev, nil
}

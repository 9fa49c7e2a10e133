package referrers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/vordr-project/vordr/ctp"
)

// Candidate is one evidence referrer reassembled into a bundle.
type Candidate struct {
	// Image is the image manifest's descriptor as resolved from the ref.
	Image ocispec.Descriptor
	// Evidence is the referrer whose evidence the bundle carries.
	Evidence ocispec.Descriptor
	// Path is the reassembled .ctp, removed when the callback returns.
	Path string
}

// PullOptions tune Pull.
type PullOptions struct {
	Options
	// TempDir receives the reassembled bundle; "" is os.TempDir(). It needs
	// room for the whole image.
	TempDir string
}

// Pull resolves ref to an image manifest, lists its evidence referrers (the
// API, or the tag schema where the registry has no API), and for each, newest
// first, reassembles the .ctp the image was pushed from and calls use with it.
// It stops at the first candidate use accepts (returns nil) and returns the
// joined errors if none is accepted, wrapping errNoEvidence (IsNoEvidence)
// when there is no evidence referrer at all.
//
// Nothing is verified here: use is expected to verify and import (as
// plugin.Import does), so what the registry served is judged by exactly the
// rules a bundle file is. Pull checks only what it needs to assemble: that
// every blob is the digest it is named by, sizes are within the format's
// limits, and the evidence names this image.
func Pull(ctx context.Context, ref string, opts PullOptions, use func(Candidate) error) error {
	repo, r, err := opts.repository(ref)
	if err != nil {
		return err
	}
	if r.Reference == "" {
		return fmt.Errorf("pull %s: no tag or digest; name the image as REPOSITORY:TAG or REPOSITORY@sha256:HEX", ref)
	}
	mdesc, err := repo.Resolve(ctx, r.Reference)
	if err != nil {
		return fmt.Errorf("pull %s: resolve: %w", ref, err)
	}
	switch mdesc.MediaType {
	case ocispec.MediaTypeImageManifest:
	case ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
		return fmt.Errorf("pull %s: it is an image index (%s); a vordr bundle signs one image manifest, so pull the platform's manifest by digest (REPOSITORY@sha256:HEX)", ref, mdesc.MediaType)
	default:
		return fmt.Errorf("pull %s: manifest media type %q: a vordr bundle holds an OCI image manifest (%s); was the image pushed with `vordr push`?", ref, mdesc.MediaType, ocispec.MediaTypeImageManifest)
	}
	manifestJSON, err := fetchAll(ctx, repo, mdesc, maxManifestSize)
	if err != nil {
		return fmt.Errorf("pull %s: image manifest: %w", ref, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(manifestJSON, &m); err != nil {
		return fmt.Errorf("pull %s: image manifest %s: %w", ref, mdesc.Digest, err)
	}
	subject := ocispec.Descriptor{MediaType: mdesc.MediaType, Digest: mdesc.Digest, Size: mdesc.Size}

	// Listed unfiltered: a registry that ignores the artifactType filter
	// makes oras-go filter by the listed artifactType, and some registries
	// list the config media type there instead of the manifest's
	// artifactType (go-containerregistry's does).
	var listed []ocispec.Descriptor
	err = repo.Referrers(ctx, subject, "", func(rs []ocispec.Descriptor) error {
		listed = append(listed, rs...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("pull %s: list referrers of %s: %w", ref, mdesc.Digest, err)
	}
	var cands []ocispec.Descriptor
	for _, d := range listed {
		if d.MediaType != ocispec.MediaTypeImageManifest {
			continue
		}
		switch d.ArtifactType {
		case ArtifactTypeEvidence:
		case "", ocispec.MediaTypeEmptyJSON:
			// Ambiguous listing: tryCandidate reads the manifest's own
			// artifactType and skips what is not evidence.
		default:
			continue
		}
		cands = append(cands, d)
	}
	if len(cands) == 0 {
		return fmt.Errorf("pull %s: image %s has %w (artifactType %s) among its %d referrers; push it with `vordr push BUNDLE %s`", ref, mdesc.Digest, errNoEvidence, ArtifactTypeEvidence, len(listed), ref)
	}
	// Newest first, by the created annotation the referrer carries; ties
	// (and unannotated referrers) by digest, so the order is stable.
	sort.SliceStable(cands, func(i, j int) bool {
		ci, cj := cands[i].Annotations[ocispec.AnnotationCreated], cands[j].Annotations[ocispec.AnnotationCreated]
		if ci != cj {
			return ci > cj
		}
		return cands[i].Digest < cands[j].Digest
	})

	blobs := append([]ocispec.Descriptor{m.Config}, m.Layers...)
	var errs []error
	for _, ev := range cands {
		err := tryCandidate(ctx, repo, opts.TempDir, mdesc, manifestJSON, blobs, ev, use)
		if err == nil {
			return nil
		}
		if errors.Is(err, errNotEvidence) {
			continue
		}
		errs = append(errs, fmt.Errorf("evidence referrer %s: %w", ev.Digest, err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("pull %s: image %s has %w (artifactType %s) among its %d referrers; push it with `vordr push BUNDLE %s`", ref, mdesc.Digest, errNoEvidence, ArtifactTypeEvidence, len(listed), ref)
	}
	return fmt.Errorf("pull %s: no evidence referrer of %s was accepted: %w", ref, mdesc.Digest, errors.Join(errs...))
}

// errNotEvidence marks a referrer that turned out not to be vordr evidence
// (listed ambiguously by the registry).
var errNotEvidence = errors.New("not a vordr evidence referrer")

func tryCandidate(ctx context.Context, repo *remote.Repository, tempDir string, mdesc ocispec.Descriptor, manifestJSON []byte, blobs []ocispec.Descriptor, ev ocispec.Descriptor, use func(Candidate) error) error {
	raw, err := fetchAll(ctx, repo, ev, maxManifestSize)
	if err != nil {
		return err
	}
	var rm ocispec.Manifest
	if err := json.Unmarshal(raw, &rm); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if rm.ArtifactType != ArtifactTypeEvidence {
		return fmt.Errorf("%w: artifactType %q", errNotEvidence, rm.ArtifactType)
	}
	if rm.Subject == nil || rm.Subject.Digest != mdesc.Digest {
		return fmt.Errorf("its subject is not image %s", mdesc.Digest)
	}
	var tomlDesc, attDesc *ocispec.Descriptor
	for i, l := range rm.Layers {
		switch l.MediaType {
		case MediaTypeManifestTOML:
			if tomlDesc != nil {
				return fmt.Errorf("two %s layers", l.MediaType)
			}
			tomlDesc = &rm.Layers[i]
		case ctp.BundleMediaType:
			if attDesc != nil {
				return fmt.Errorf("two %s layers", l.MediaType)
			}
			attDesc = &rm.Layers[i]
		default:
			return fmt.Errorf("unexpected layer media type %q (want %s and %s)", l.MediaType, MediaTypeManifestTOML, ctp.BundleMediaType)
		}
	}
	if tomlDesc == nil || attDesc == nil {
		return fmt.Errorf("it lacks a %s or a %s layer", MediaTypeManifestTOML, ctp.BundleMediaType)
	}
	manifestTOML, err := fetchAll(ctx, repo, *tomlDesc, maxManifestTOMLSize)
	if err != nil {
		return fmt.Errorf("manifest.toml: %w", err)
	}
	attJSON, err := fetchAll(ctx, repo, *attDesc, maxAttestationsSize)
	if err != nil {
		return fmt.Errorf("attestations: %w", err)
	}

	dir, err := os.MkdirTemp(tempDir, "vordr-pull-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "pulled.ctp")
	all := append([]ocispec.Descriptor{{MediaType: mdesc.MediaType, Digest: mdesc.Digest, Size: mdesc.Size}}, blobs...)
	err = ctp.Assemble(path, ctp.Parts{
		ManifestTOML:     manifestTOML,
		AttestationsJSON: attJSON,
		Blobs:            all,
		// Layers stream from the registry straight into the bundle (which
		// re-hashes them); nothing else of the image touches the disk.
		Open: func(d ocispec.Descriptor) (io.ReadCloser, error) {
			if d.Digest == mdesc.Digest {
				return io.NopCloser(bytes.NewReader(manifestJSON)), nil
			}
			rc, err := repo.Blobs().Fetch(ctx, d)
			if err != nil {
				return nil, fmt.Errorf("fetch blob %s: %w", d.Digest, err)
			}
			return rc, nil
		},
	})
	if err != nil {
		return fmt.Errorf("reassemble the bundle: %w", err)
	}
	return use(Candidate{Image: mdesc, Evidence: ev, Path: path})
}

// fetchAll reads a manifest or small blob, refusing more than limit bytes
// and content that is not its digest.
func fetchAll(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, limit int64) ([]byte, error) {
	if d.Size < 0 || d.Size > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", d.Digest, d.Size, limit)
	}
	if err := d.Digest.Validate(); err != nil || d.Digest.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("digest %q: only sha256 digests are accepted", d.Digest)
	}
	var rc io.ReadCloser
	var err error
	switch d.MediaType {
	case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex:
		rc, err = repo.Manifests().Fetch(ctx, d)
	default:
		rc, err = repo.Blobs().Fetch(ctx, d)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", d.Digest, err)
	}
	defer rc.Close()
	data, err := content.ReadAll(rc, d)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", d.Digest, err)
	}
	return data, nil
}

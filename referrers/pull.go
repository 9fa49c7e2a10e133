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
	return walk(ctx, "pull", ref, opts.Options, func(repo *remote.Repository, img *image, ev *Found) error {
		dir, err := os.MkdirTemp(opts.TempDir, "vordr-pull-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "pulled.ctp")
		all := append([]ocispec.Descriptor{img.desc, img.manifest.Config}, img.manifest.Layers...)
		err = ctp.Assemble(path, ctp.Parts{
			ManifestTOML:     ev.ManifestTOML,
			AttestationsJSON: ev.AttestationsJSON,
			Blobs:            all,
			// Layers stream from the registry straight into the bundle
			// (which re-hashes them); nothing else of the image touches
			// the disk.
			Open: func(d ocispec.Descriptor) (io.ReadCloser, error) {
				if d.Digest == img.desc.Digest {
					return io.NopCloser(bytes.NewReader(img.manifestJSON)), nil
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
		return use(Candidate{Image: img.desc, Evidence: ev.Referrer, Path: path})
	})
}

// Found is one evidence referrer's content with what of the image it needs
// to be verified without the layers (plugin/evidence re-verifies it so).
type Found struct {
	// Image is the image manifest's descriptor; ManifestJSON and ConfigJSON
	// its manifest and config, checked against their digests.
	Image                    ocispec.Descriptor
	ManifestJSON, ConfigJSON []byte
	// Referrer is the evidence referrer; ManifestTOML and AttestationsJSON
	// its layers, checked against their digests.
	Referrer                       ocispec.Descriptor
	ManifestTOML, AttestationsJSON []byte
}

// Evidence finds the evidence of the image at ref like Pull, without the
// layers: for each evidence referrer, newest first, it calls use until use
// accepts one. It is what a pull-time verifier needs to judge an image
// before containerd fetches it.
func Evidence(ctx context.Context, ref string, opts Options, use func(*Found) error) error {
	return walk(ctx, "find evidence of", ref, opts, func(repo *remote.Repository, img *image, ev *Found) error {
		if img.configJSON == nil {
			var err error
			if img.configJSON, err = fetchAll(ctx, repo, img.manifest.Config, maxManifestSize); err != nil {
				return fmt.Errorf("image config: %w", err)
			}
		}
		ev.ManifestJSON, ev.ConfigJSON = img.manifestJSON, img.configJSON
		return use(ev)
	})
}

// image is the resolved image manifest.
type image struct {
	desc                     ocispec.Descriptor
	manifestJSON, configJSON []byte
	manifest                 ocispec.Manifest
}

// walk resolves ref, lists its evidence referrers and calls each with every
// one's evidence until each accepts one.
func walk(ctx context.Context, verb, ref string, opts Options, each func(*remote.Repository, *image, *Found) error) error {
	repo, r, err := opts.repository(ref)
	if err != nil {
		return err
	}
	if r.Reference == "" {
		return fmt.Errorf("%s %s: no tag or digest; name the image as REPOSITORY:TAG or REPOSITORY@sha256:HEX", verb, ref)
	}
	mdesc, err := repo.Resolve(ctx, r.Reference)
	if err != nil {
		return fmt.Errorf("%s %s: resolve: %w", verb, ref, err)
	}
	switch mdesc.MediaType {
	case ocispec.MediaTypeImageManifest:
	case ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
		return fmt.Errorf("%s %s: it is an image index (%s); a vordr bundle signs one image manifest, so name the platform's manifest by digest (REPOSITORY@sha256:HEX)", verb, ref, mdesc.MediaType)
	default:
		return fmt.Errorf("%s %s: manifest media type %q: a vordr bundle holds an OCI image manifest (%s); was the image pushed with `vordr push`?", verb, ref, mdesc.MediaType, ocispec.MediaTypeImageManifest)
	}
	img := &image{desc: ocispec.Descriptor{MediaType: mdesc.MediaType, Digest: mdesc.Digest, Size: mdesc.Size}}
	if img.manifestJSON, err = fetchAll(ctx, repo, img.desc, maxManifestSize); err != nil {
		return fmt.Errorf("%s %s: image manifest: %w", verb, ref, err)
	}
	if err := json.Unmarshal(img.manifestJSON, &img.manifest); err != nil {
		return fmt.Errorf("%s %s: image manifest %s: %w", verb, ref, mdesc.Digest, err)
	}

	// Listed unfiltered: a registry that ignores the artifactType filter
	// makes oras-go filter by the listed artifactType, and some registries
	// list the config media type there instead of the manifest's
	// artifactType (go-containerregistry's does).
	var listed []ocispec.Descriptor
	err = repo.Referrers(ctx, img.desc, "", func(rs []ocispec.Descriptor) error {
		listed = append(listed, rs...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s %s: list referrers of %s: %w", verb, ref, mdesc.Digest, err)
	}
	var cands []ocispec.Descriptor
	for _, d := range listed {
		if d.MediaType != ocispec.MediaTypeImageManifest {
			continue
		}
		switch d.ArtifactType {
		case ArtifactTypeEvidence:
		case "", ocispec.MediaTypeEmptyJSON:
			// Ambiguous listing: fetchEvidence reads the manifest's own
			// artifactType and skips what is not evidence.
		default:
			continue
		}
		cands = append(cands, d)
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

	var errs []error
	for _, d := range cands {
		ev, err := fetchEvidence(ctx, repo, img.desc, d)
		if errors.Is(err, errNotEvidence) {
			continue
		}
		if err == nil {
			if err = each(repo, img, ev); err == nil {
				return nil
			}
		}
		errs = append(errs, fmt.Errorf("evidence referrer %s: %w", d.Digest, err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("%s %s: image %s has %w (artifactType %s) among its %d referrers; push it with `vordr push BUNDLE %s`", verb, ref, mdesc.Digest, errNoEvidence, ArtifactTypeEvidence, len(listed), ref)
	}
	return fmt.Errorf("%s %s: no evidence referrer of %s was accepted: %w", verb, ref, mdesc.Digest, errors.Join(errs...))
}

// errNotEvidence marks a referrer that turned out not to be vordr evidence
// (listed ambiguously by the registry).
var errNotEvidence = errors.New("not a vordr evidence referrer")

// fetchEvidence reads an evidence referrer and its two layers.
func fetchEvidence(ctx context.Context, repo *remote.Repository, subject, ev ocispec.Descriptor) (*Found, error) {
	raw, err := fetchAll(ctx, repo, ev, maxManifestSize)
	if err != nil {
		return nil, err
	}
	var rm ocispec.Manifest
	if err := json.Unmarshal(raw, &rm); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if rm.ArtifactType != ArtifactTypeEvidence {
		return nil, fmt.Errorf("%w: artifactType %q", errNotEvidence, rm.ArtifactType)
	}
	if rm.Subject == nil || rm.Subject.Digest != subject.Digest {
		return nil, fmt.Errorf("its subject is not image %s", subject.Digest)
	}
	var tomlDesc, attDesc *ocispec.Descriptor
	for i, l := range rm.Layers {
		switch l.MediaType {
		case MediaTypeManifestTOML:
			if tomlDesc != nil {
				return nil, fmt.Errorf("two %s layers", l.MediaType)
			}
			tomlDesc = &rm.Layers[i]
		case ctp.BundleMediaType:
			if attDesc != nil {
				return nil, fmt.Errorf("two %s layers", l.MediaType)
			}
			attDesc = &rm.Layers[i]
		default:
			return nil, fmt.Errorf("unexpected layer media type %q (want %s and %s)", l.MediaType, MediaTypeManifestTOML, ctp.BundleMediaType)
		}
	}
	if tomlDesc == nil || attDesc == nil {
		return nil, fmt.Errorf("it lacks a %s or a %s layer", MediaTypeManifestTOML, ctp.BundleMediaType)
	}
	f := &Found{Image: subject, Referrer: ev}
	if f.ManifestTOML, err = fetchAll(ctx, repo, *tomlDesc, maxManifestTOMLSize); err != nil {
		return nil, fmt.Errorf("manifest.toml: %w", err)
	}
	if f.AttestationsJSON, err = fetchAll(ctx, repo, *attDesc, maxAttestationsSize); err != nil {
		return nil, fmt.Errorf("attestations: %w", err)
	}
	return f, nil
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

package referrers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/vordr-project/vordr/ctp"
)

// PushResult says what Push wrote.
type PushResult struct {
	// Image is the image manifest (the referrers' subject).
	Image ocispec.Descriptor
	// Evidence is the vordr evidence referrer.
	Evidence ocispec.Descriptor
	// Sigstore are the referrers holding the bundle's sigstore bundles, one
	// each, in cosign's layout.
	Sigstore []ocispec.Descriptor
	// Uploaded and Skipped count blobs by whether the registry already had
	// them.
	Uploaded, Skipped int
}

// Push writes the bundle at bundlePath to the registry: its image under ref
// (a tag, or a digest that must be the image's), then the evidence referrer
// and one referrer per sigstore bundle, all with the image manifest as
// subject. Bytes are pushed exactly as the bundle holds them, so the digests
// the attestations name stay valid. Blobs the registry has are not sent
// again; pushing the same bundle twice writes the same manifests.
//
// Push does not verify signatures (the registry is not a trust boundary: the
// puller verifies), but it refuses a bundle that is not well-formed and
// every layer is re-hashed as it is sent.
func Push(ctx context.Context, bundlePath, ref string, opts Options) (*PushResult, error) {
	repo, r, err := opts.repository(ref)
	if err != nil {
		return nil, err
	}
	b, err := ctp.OpenFile(bundlePath, ctp.Options{})
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", bundlePath, err)
	}
	defer b.Close()

	mdesc := b.ManifestDescriptor()
	mdesc.MediaType = ocispec.MediaTypeImageManifest
	if r.Reference != "" {
		if d, err := r.Digest(); err == nil && d != mdesc.Digest {
			return nil, fmt.Errorf("push %s to %s: the reference names digest %s but the bundle's image is %s; push to a tag, or to @%s", bundlePath, ref, d, mdesc.Digest, mdesc.Digest)
		}
	}
	res := &PushResult{Image: mdesc}

	// Children first, so the registry never holds a manifest whose content
	// is missing.
	for _, d := range b.Blobs() {
		if d.Digest == mdesc.Digest {
			continue
		}
		uploaded, err := pushBlob(ctx, repo, d, func() (io.ReadCloser, error) { return b.OpenBlob(d.Digest) })
		if err != nil {
			return nil, fmt.Errorf("push %s: blob %s: %w", bundlePath, d.Digest, err)
		}
		res.count(uploaded)
	}
	manifestJSON, err := readAll(b, mdesc)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", bundlePath, err)
	}
	tag := r.Reference
	if _, err := r.Digest(); err == nil || tag == "" {
		err = repo.Push(ctx, mdesc, bytes.NewReader(manifestJSON))
	} else {
		err = repo.PushReference(ctx, mdesc, bytes.NewReader(manifestJSON), tag)
	}
	if err != nil {
		return nil, fmt.Errorf("push %s: image manifest %s to %s: %w", bundlePath, mdesc.Digest, ref, err)
	}

	// The evidence referrer: manifest.toml and attestations/bundle.json
	// as they are, annotated with the bundle's creation time (not the
	// clock), so the same bundle always makes the same referrer.
	created := b.Manifest().Created.UTC().Format(time.RFC3339)
	evLayers := []struct {
		mediaType, title string
		data             []byte
	}{
		{MediaTypeManifestTOML, ctp.ManifestPath, b.ManifestTOML()},
		{ctp.BundleMediaType, ctp.BundleJSONPath, b.AttestationsJSON()},
	}
	var layers []ocispec.Descriptor
	var blobs [][]byte
	for _, l := range evLayers {
		layers = append(layers, ocispec.Descriptor{
			MediaType: l.mediaType, Digest: digest.FromBytes(l.data), Size: int64(len(l.data)),
			Annotations: map[string]string{ocispec.AnnotationTitle: l.title},
		})
		blobs = append(blobs, l.data)
	}
	res.Evidence, err = pushReferrer(ctx, repo, res, mdesc, ArtifactTypeEvidence, layers, blobs, map[string]string{
		ocispec.AnnotationCreated: created,
		"vordr.io/bundle-name":    b.Manifest().Name,
	})
	if err != nil {
		return nil, fmt.Errorf("push %s: evidence referrer: %w", bundlePath, err)
	}

	// Sigstore bundles are inside attestations/bundle.json already; they
	// are pushed again as cosign lays them out so that sigstore tools find
	// them on the image too.
	for i, sb := range b.Attestations().SigstoreBundles {
		data := []byte(sb)
		mt, contentKind, pred, err := sigstoreBundleInfo(data)
		if err != nil {
			return nil, fmt.Errorf("push %s: sigstore bundle %d: %w", bundlePath, i, err)
		}
		ann := map[string]string{ocispec.AnnotationCreated: created}
		if contentKind != "" {
			ann[annotationBundleContent] = contentKind
		}
		if pred != "" {
			ann[annotationBundlePredicate] = pred
		}
		d, err := pushReferrer(ctx, repo, res, mdesc, mt,
			[]ocispec.Descriptor{{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}}, [][]byte{data}, ann)
		if err != nil {
			return nil, fmt.Errorf("push %s: sigstore bundle referrer %d: %w", bundlePath, i, err)
		}
		res.Sigstore = append(res.Sigstore, d)
	}
	return res, nil
}

func (r *PushResult) count(uploaded bool) {
	if uploaded {
		r.Uploaded++
	} else {
		r.Skipped++
	}
}

// pushReferrer pushes an artifact manifest (empty config, as OCI 1.1
// recommends for artifacts) with the given layers and subject. oras-go keeps
// the referrers tag schema's index up to date when the registry does not
// index the subject itself.
func pushReferrer(ctx context.Context, repo *remote.Repository, res *PushResult, subject ocispec.Descriptor, artifactType string, layers []ocispec.Descriptor, blobs [][]byte, ann map[string]string) (ocispec.Descriptor, error) {
	empty := ocispec.DescriptorEmptyJSON
	uploaded, err := pushBlob(ctx, repo, empty, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(empty.Data)), nil })
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("empty config: %w", err)
	}
	res.count(uploaded)
	for i, l := range layers {
		data := blobs[i]
		uploaded, err := pushBlob(ctx, repo, l, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("%s: %w", l.MediaType, err)
		}
		res.count(uploaded)
	}
	subj := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       ocispec.Descriptor{MediaType: empty.MediaType, Digest: empty.Digest, Size: empty.Size},
		Layers:       layers,
		Subject:      &subj,
		Annotations:  ann,
	}
	m.SchemaVersion = 2
	raw, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, ArtifactType: artifactType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := repo.Push(ctx, desc, bytes.NewReader(raw)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	return desc, nil
}

// pushBlob uploads one blob unless the registry has it; it reports whether
// it uploaded.
func pushBlob(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, open func() (io.ReadCloser, error)) (bool, error) {
	if err := checkContext(ctx, "push"); err != nil {
		return false, err
	}
	exists, err := repo.Blobs().Exists(ctx, d)
	if err != nil {
		return false, fmt.Errorf("ask the registry for it: %w", err)
	}
	if exists {
		return false, nil
	}
	rc, err := open()
	if err != nil {
		return false, err
	}
	defer rc.Close()
	// The verifying reader stops an upload whose bytes are not the digest:
	// the registry would refuse it too, but only after taking all of it.
	vr := content.NewVerifyReader(rc, d)
	if err := repo.Blobs().Push(ctx, d, vr); err != nil {
		return false, err
	}
	return true, nil
}

func readAll(b *ctp.Bundle, d ocispec.Descriptor) ([]byte, error) {
	r, err := b.OpenBlob(d.Digest)
	if err != nil {
		return nil, err
	}
	return content.ReadAll(r, d)
}

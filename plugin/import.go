package plugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
)

// DefaultSnapshotter is where Import unpacks when ImportOptions.Snapshotter is
// empty.
const DefaultSnapshotter = "overlayfs"

// ImportOptions tune Import.
type ImportOptions struct {
	// Name is the image record's name; empty means manifest.toml's image_ref,
	// else "<name>:<version>" from manifest.toml.
	Name string
	// Snapshotter to unpack into; DefaultSnapshotter when empty.
	Snapshotter string
	// Verify is passed to ctp.Verify (Now, extra keys).
	Verify ctp.VerifyOptions
	// Bundle opens the file (limits, temporary directory).
	Bundle ctp.Options
	// Progress, if set, is called while blobs are written ("verify",
	// "write", "unpack" stages), from the importing goroutine.
	Progress func(stage string, done, total int64)
}

// ImportResult says what Import committed.
type ImportResult struct {
	// Image is the image record as created or updated.
	Image images.Image
	// Verification is ctp.Verify's result.
	Verification *ctp.Result
	// BundleDigest is the sha256 of the .ctp file.
	BundleDigest digest.Digest
	// Attestations and ManifestTOML describe the evidence blobs stored in the
	// content store.
	Attestations, ManifestTOML ocispec.Descriptor
	// PolicyDigest identifies the policy the bundle was verified under.
	PolicyDigest digest.Digest
	// Snapshotter and ChainID name the unpacked top snapshot.
	Snapshotter string
	ChainID     digest.Digest
	// Updated is true when an image record of that name existed and now
	// points at the bundle's image.
	Updated bool
}

// Import verifies the bundle at bundlePath against pol and, only if the policy
// lets it in, commits it to containerd: every blob is streamed into the
// content store (digests checked on the way in and by containerd on commit),
// the attestation bundle and manifest.toml are stored as content too, the
// image is unpacked into the snapshotter, its snapshot chain is labelled, and
// last the image record is created (or updated) with labels saying what was
// verified and GC references that keep the evidence alive with the image.
//
// Everything is written under a containerd lease. On any failure the lease is
// deleted synchronously, so containerd's garbage collector removes whatever
// was written: no image record, no snapshot, no content is left.
//
// A verification failure is returned wrapping the *ctp.Error, so
// ctp.CodeOf(err) gives its stable code.
func Import(ctx context.Context, client *containerd.Client, bundlePath string, pol *policy.Policy, opts ImportOptions) (res *ImportResult, retErr error) {
	if client == nil {
		return nil, fmt.Errorf("import %s: no containerd client: %w", bundlePath, errdefs.ErrInvalidArgument)
	}
	if pol == nil {
		return nil, fmt.Errorf("import %s: a policy is required; nothing is imported unverified: %w", bundlePath, errdefs.ErrInvalidArgument)
	}
	polDigest, err := PolicyDigest(pol)
	if err != nil {
		return nil, err
	}
	b, err := ctp.OpenFile(bundlePath, opts.Bundle)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", bundlePath, err)
	}
	defer b.Close()

	// The bundle's own digest is hashed while the blobs are verified.
	type fileSum struct {
		d   digest.Digest
		err error
	}
	sumc := make(chan fileSum, 1)
	go func() {
		d, err := fileDigest(ctx, bundlePath)
		sumc <- fileSum{d, err}
	}()
	if opts.Progress != nil {
		opts.Progress("verify", 0, 1)
	}
	vres, verr := ctp.Verify(ctx, b, pol, opts.Verify)
	sum := <-sumc
	if verr != nil {
		return nil, fmt.Errorf("import %s: verification failed, nothing was imported: %w", bundlePath, verr)
	}
	if vres.Decision == ctp.Reject {
		return nil, fmt.Errorf("import %s: verification rejected the bundle, nothing was imported: %s", bundlePath, vres.Message)
	}
	if opts.Progress != nil {
		opts.Progress("verify", 1, 1)
	}
	if sum.err != nil {
		return nil, fmt.Errorf("import %s: hash bundle: %w", bundlePath, sum.err)
	}

	m := b.Manifest()
	name := opts.Name
	if name == "" {
		name = m.ImageRef
	}
	if name == "" {
		name = m.Name
		if m.Version != "" {
			name += ":" + m.Version
		}
	}
	snName := opts.Snapshotter
	if snName == "" {
		snName = DefaultSnapshotter
	}
	res = &ImportResult{Verification: vres, BundleDigest: sum.d, PolicyDigest: polDigest, Snapshotter: snName}

	// Everything below is written under one lease: on failure, deleting it
	// lets the garbage collector take back all of it.
	ls := client.LeasesService()
	lease, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(time.Hour),
		leases.WithLabel("vordr.io/import", m.Name))
	if err != nil {
		return nil, fmt.Errorf("import %s: create containerd lease: %w", bundlePath, err)
	}
	lctx := leases.WithLease(ctx, lease.ID)
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if retErr != nil {
			// Synchronous: when Import returns, the garbage is gone.
			if err := ls.Delete(dctx, lease, leases.SynchronousDelete); err != nil {
				retErr = fmt.Errorf("%w (and removing the partial import failed: %v; containerd's GC removes it when lease %s expires)", retErr, err, lease.ID)
			}
			return
		}
		_ = ls.Delete(dctx, lease)
	}()

	cs := client.ContentStore()
	if err := writeBlobs(lctx, cs, b, opts.Progress); err != nil {
		return nil, fmt.Errorf("import %s: %w", bundlePath, err)
	}
	mdesc := b.ManifestDescriptor()
	if err := labelManifest(lctx, cs, mdesc.Digest, b.ImageManifest()); err != nil {
		return nil, fmt.Errorf("import %s: %w", bundlePath, err)
	}
	res.Attestations = ocispec.Descriptor{MediaType: ctp.BundleMediaType, Digest: digest.FromBytes(b.AttestationsJSON()), Size: int64(len(b.AttestationsJSON()))}
	res.ManifestTOML = ocispec.Descriptor{MediaType: MediaTypeManifestTOML, Digest: digest.FromBytes(b.ManifestTOML()), Size: int64(len(b.ManifestTOML()))}
	for _, e := range []struct {
		d    ocispec.Descriptor
		data []byte
	}{{res.Attestations, b.AttestationsJSON()}, {res.ManifestTOML, b.ManifestTOML()}} {
		if err := content.WriteBlob(lctx, cs, "vordr-import-"+e.d.Digest.Encoded(), bytes.NewReader(e.data), e.d); err != nil {
			return nil, fmt.Errorf("import %s: store %s in the content store: %w", bundlePath, e.d.MediaType, err)
		}
	}

	// Unpack. The platform is the image's own, so a bundle built for this
	// host is never refused by the client's default matcher.
	cfg := b.Config()
	plat := ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: mdesc.Digest, Size: mdesc.Size}
	rec := images.Image{Name: name, Target: target}
	if opts.Progress != nil {
		opts.Progress("unpack", 0, int64(len(b.Layers())))
	}
	img := containerd.NewImageWithPlatform(client, rec, platforms.Only(plat))
	if err := img.Unpack(lctx, snName); err != nil {
		return nil, fmt.Errorf("import %s: unpack into snapshotter %q: %w (is the snapshotter enabled in containerd? `ctr plugins ls` lists them)", bundlePath, snName, err)
	}
	if opts.Progress != nil {
		opts.Progress("unpack", int64(len(b.Layers())), int64(len(b.Layers())))
	}
	chain := identity.ChainIDs(append([]digest.Digest(nil), cfg.RootFS.DiffIDs...))
	if len(chain) > 0 {
		res.ChainID = chain[len(chain)-1]
	}
	sn := client.SnapshotService(snName)
	for _, id := range chain {
		info := snapshots.Info{Name: id.String(), Labels: map[string]string{
			SnapshotLabelVerifiedImage: mdesc.Digest.String(),
			SnapshotLabelPolicy:        polDigest.String(),
		}}
		if _, err := sn.Update(lctx, info, "labels."+SnapshotLabelVerifiedImage, "labels."+SnapshotLabelPolicy); err != nil {
			return nil, fmt.Errorf("import %s: label snapshot %s: %w", bundlePath, id, err)
		}
	}

	// Last, the image record: the one step that makes the import visible.
	rec.Labels = importLabels(res, vres, time.Now())
	is := client.ImageService()
	created, err := is.Create(lctx, rec)
	if err != nil {
		if !errdefs.IsAlreadyExists(err) {
			return nil, fmt.Errorf("import %s: create image %s: %w", bundlePath, name, err)
		}
		old, gerr := is.Get(lctx, name)
		if gerr != nil {
			return nil, fmt.Errorf("import %s: update image %s: %w", bundlePath, name, gerr)
		}
		rec.Labels = mergeLabels(old.Labels, rec.Labels)
		if created, err = is.Update(lctx, rec, "target", "labels"); err != nil {
			return nil, fmt.Errorf("import %s: update image %s: %w", bundlePath, name, err)
		}
		res.Updated = true
	}
	res.Image = created
	return res, nil
}

// writeBlobs streams layers, config and manifest (children first) into the
// content store. Each reader fails with DIGEST_MISMATCH if the bundle's bytes
// are not what their name says; containerd checks the digest on commit too.
func writeBlobs(ctx context.Context, cs content.Store, b *ctp.Bundle, progress func(string, int64, int64)) error {
	blobs := b.Blobs()
	var total int64
	for _, d := range blobs {
		total += d.Size
	}
	var done atomic.Int64
	if progress != nil {
		progress("write", 0, total)
	}
	for _, d := range blobs {
		r, err := b.OpenBlob(d.Digest)
		if err != nil {
			return err
		}
		var src io.Reader = r
		if progress != nil {
			src = &progressReader{r: r, done: &done, total: total, f: progress}
		}
		desc := ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
		if err := content.WriteBlob(ctx, cs, "vordr-import-"+d.Digest.Encoded(), src, desc); err != nil {
			if ctp.CodeOf(err) != "" {
				return fmt.Errorf("blob %s: %w", d.Digest, err)
			}
			return fmt.Errorf("write blob %s into the content store: %w", d.Digest, err)
		}
		if progress == nil {
			continue
		}
		if n := done.Load(); n < total {
			// Content that was already present is not read again.
			done.Store(n + d.Size)
			progress("write", min(n+d.Size, total), total)
		}
	}
	return nil
}

type progressReader struct {
	r     io.Reader
	done  *atomic.Int64
	total int64
	f     func(string, int64, int64)
	last  int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	d := p.done.Add(int64(n))
	if d-p.last >= 4<<20 {
		p.last = d
		p.f("write", d, p.total)
	}
	return n, err
}

// labelManifest puts containerd's GC references from the manifest to its
// config and layers, as containerd's own importer does.
func labelManifest(ctx context.Context, cs content.Store, md digest.Digest, m ocispec.Manifest) error {
	info := content.Info{Digest: md, Labels: map[string]string{"containerd.io/gc.ref.content.config": m.Config.Digest.String()}}
	fields := []string{"labels.containerd.io/gc.ref.content.config"}
	for i, l := range m.Layers {
		k := fmt.Sprintf("containerd.io/gc.ref.content.l.%d", i)
		info.Labels[k] = l.Digest.String()
		fields = append(fields, "labels."+k)
	}
	if _, err := cs.Update(ctx, info, fields...); err != nil {
		return fmt.Errorf("label manifest %s: %w", md, err)
	}
	return nil
}

func importLabels(res *ImportResult, v *ctp.Result, now time.Time) map[string]string {
	var signers []string
	for _, s := range v.Signers {
		if s.Status == "valid" {
			signers = append(signers, s.KeyID)
		}
	}
	sort.Strings(signers)
	l := map[string]string{
		LabelBundleDigest:   res.BundleDigest.String(),
		LabelAttestations:   res.Attestations.Digest.String(),
		LabelManifestTOML:   res.ManifestTOML.Digest.String(),
		LabelSigners:        strings.Join(signers, ","),
		LabelPredicates:     strings.Join(v.Predicates, ","),
		LabelPolicyDigest:   res.PolicyDigest.String(),
		LabelVerifiedAt:     now.UTC().Format(time.RFC3339),
		LabelDecision:       string(v.Decision),
		GCLabelAttestations: res.Attestations.Digest.String(),
		GCLabelManifestTOML: res.ManifestTOML.Digest.String(),
	}
	if v.ErrorCode != "" {
		l[LabelReason] = string(v.ErrorCode)
	}
	for k, val := range l {
		if val == "" {
			delete(l, k)
		}
	}
	return l
}

// mergeLabels keeps an existing image's labels except vordr's own, which
// are replaced by the new import's.
func mergeLabels(old, new map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range old {
		if strings.HasPrefix(k, "vordr.io/") || strings.HasPrefix(k, "containerd.io/gc.ref.content.vordr.") {
			continue
		}
		out[k] = v
	}
	for k, v := range new {
		out[k] = v
	}
	return out
}

func fileDigest(ctx context.Context, path string) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

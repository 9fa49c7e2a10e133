package plugin

import (
	"context"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/opencontainers/go-digest"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/plugin/evidence"
)

// The stored-evidence checks live in plugin/evidence (no containerd client,
// so the shim can use them); these are their client-side entry points.

// Evidence is an image record's stored evidence (see package evidence).
type Evidence = evidence.Evidence

var (
	// ErrNoEvidence is wrapped when an image carries no vordr attestations.
	ErrNoEvidence = evidence.ErrNoEvidence
	// ErrNotVerified is wrapped when stored evidence does not verify.
	ErrNotVerified = evidence.ErrNotVerified
)

// EvidenceOf reads the evidence digests from an image record.
func EvidenceOf(img images.Image) (*Evidence, error) { return evidence.Of(img) }

// VerifyStoredImage re-verifies img's stored evidence under p.
func VerifyStoredImage(ctx context.Context, cs content.Provider, img images.Image, p *policy.Policy, opts ctp.VerifyOptions) (*Evidence, error) {
	return evidence.VerifyStored(ctx, cs, img, p, opts)
}

// PolicyDigest is the digest of a loaded policy's canonical form.
func PolicyDigest(p *policy.Policy) (digest.Digest, error) { return evidence.PolicyDigest(p) }

// ContainerImage returns a container's record and its image's.
func ContainerImage(ctx context.Context, client *containerd.Client, id string) (containers.Container, images.Image, error) {
	return evidence.ContainerImage(ctx, client.ContainerService(), client.ImageService(), id)
}

// CheckSnapshot checks that the container's rootfs snapshot descends from
// chainID.
func CheckSnapshot(ctx context.Context, client *containerd.Client, c containers.Container, chainID digest.Digest) error {
	return evidence.CheckSnapshot(ctx, client.SnapshotService(c.Snapshotter), c, chainID)
}

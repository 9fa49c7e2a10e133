package plugin

import (
	"context"
	"errors"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
)

// Helpers shared by the verifying snapshotter (plugin/snapshotter) and the
// pull-time verifier (plugin/verifier): both ask "does containerd hold valid
// evidence for this image manifest?".

// FindVerifiedImage looks, in the namespace of ctx, for image records whose
// target is the manifest md and whose stored evidence verifies under p. It
// returns the first that verifies, or an error naming why none did
// (ErrNoEvidence wrapped when no record carries evidence).
func FindVerifiedImage(ctx context.Context, client *containerd.Client, md digest.Digest, p *policy.Policy, opts ctp.VerifyOptions) (*Evidence, error) {
	if err := md.Validate(); err != nil {
		return nil, fmt.Errorf("image digest %q: %v: %w", md, err, errdefs.ErrInvalidArgument)
	}
	imgs, err := client.ImageService().List(ctx, fmt.Sprintf("target.digest==%s", md))
	if err != nil {
		return nil, fmt.Errorf("list images with target %s: %w", md, err)
	}
	var errs []error
	for _, img := range imgs {
		if _, err := EvidenceOf(img); err != nil {
			continue
		}
		ev, err := VerifyStoredImage(ctx, client.ContentStore(), img, p, opts)
		if err == nil {
			return ev, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("no image record for manifest %s carries vordr evidence (%d records point at it): %w", md, len(imgs), ErrNoEvidence)
	}
	return nil, errors.Join(errs...)
}

package plugin

import (
	"context"
	"errors"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
)

// Helpers shared by the verifying snapshotter (plugin/snapshotter) and the
// pull-time verifier (plugin/verifier): both ask "does containerd hold valid
// evidence for this image manifest?".

// ErrNotVerified is wrapped when stored evidence exists but does not verify
// under the policy (or a permissive/audit policy let a failure through: a
// warning is not a verification).
var ErrNotVerified = errors.New("the stored attestations do not verify")

// VerifyStoredImage loads img's evidence from the content store and
// re-verifies it under p. Only an Accept counts: in permissive or audit mode a
// failing check returns an error wrapping ErrNotVerified and the *ctp.Error
// details, so callers decide by their own mode what a failure means.
// The returned Evidence has ChainID available.
func VerifyStoredImage(ctx context.Context, cs content.Provider, img images.Image, p *policy.Policy) (*Evidence, error) {
	ev, err := EvidenceOf(img)
	if err != nil {
		return nil, err
	}
	if err := ev.Load(ctx, cs); err != nil {
		return nil, err
	}
	res, err := ev.Verify(ctx, p, ctp.VerifyOptions{})
	if err == nil && res.Decision != ctp.Accept {
		err = &ctp.Error{Code: res.ErrorCode, Reason: res.Reason, Msg: res.Message}
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w: %w", img.Name, ErrNotVerified, err)
	}
	return ev, nil
}

// FindVerifiedImage looks, in the namespace of ctx, for image records whose
// target is the manifest md and whose stored evidence verifies under p. It
// returns the first that verifies, or an error naming why none did
// (ErrNoEvidence wrapped when no record carries evidence).
func FindVerifiedImage(ctx context.Context, client *containerd.Client, md digest.Digest, p *policy.Policy) (*Evidence, error) {
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
		ev, err := VerifyStoredImage(ctx, client.ContentStore(), img, p)
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

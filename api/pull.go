package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/containerd/containerd/v2/core/transfer/registry"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"

	"github.com/vordr-project/vordr/plugin"
)

// Pull says from where an API caller may pull. Pulling makes the server
// fetch from the network, so it is off unless the operator names hosts.
type Pull struct {
	// Registries are the hosts (host or host:port, as in image references)
	// a pull may name. Empty: pulls are refused.
	Registries []string `toml:"registries"`
	// PlainHTTP are hosts reached over plain HTTP (a local mirror).
	PlainHTTP []string `toml:"plain_http"`
	// Timeout bounds one pull; "10m" when empty.
	Timeout string `toml:"timeout"`
}

func (p Pull) timeout() time.Duration {
	d, err := time.ParseDuration(p.Timeout)
	if err != nil || d <= 0 {
		return 10 * time.Minute
	}
	return d
}

// PullRequest names an image to pull.
type PullRequest struct {
	Ref string `json:"ref"`
}

func (s *Server) pullImage(w http.ResponseWriter, r *http.Request, _ Identity) error {
	var req PullRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	img, err := s.pull(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, img)
	return nil
}

// pull fetches an image through containerd's transfer service, so the
// image verifiers containerd is configured with (vordr-verifier) judge it
// as any pull, and unpacks it into the server's snapshotter. The gate
// still decides at every run.
func (s *Server) pull(ctx context.Context, req PullRequest) (Image, error) {
	named, err := reference.ParseNormalizedNamed(req.Ref)
	if err != nil || len(req.Ref) > 512 {
		return Image{}, apiError(http.StatusBadRequest, CodeInvalidArgument, fmt.Sprintf("ref %.80q is not an image reference (host/repository:tag or @digest): %v", req.Ref, err))
	}
	named = reference.TagNameOnly(named)
	host := reference.Domain(named)
	if !slices.Contains(s.cfg.Pull.Registries, host) {
		msg := fmt.Sprintf("pulls from %s are not allowed; the operator allows ", host)
		if len(s.cfg.Pull.Registries) == 0 {
			msg += "none ([pull] registries in the serve config)"
		} else {
			msg += strings.Join(s.cfg.Pull.Registries, ", ")
		}
		return Image{}, apiError(http.StatusForbidden, CodeForbidden, msg)
	}
	ref := named.String()
	// A record `vordr import` made carries verified evidence; a pull of the
	// same name would replace its target and drop that evidence (a
	// rollback or redirection of a name the operator vouched for).
	if old, err := s.client.ImageService().Get(s.ns(ctx), ref); err == nil && old.Labels[plugin.LabelAttestations] != "" {
		return Image{}, apiError(http.StatusConflict, CodeConflict, fmt.Sprintf("%s is an image the operator imported with verified evidence; a pull would replace it. Pull it under another tag, or ask the operator", ref))
	}
	var ropts []registry.Opt
	if slices.Contains(s.cfg.Pull.PlainHTTP, host) {
		ropts = append(ropts, registry.WithDefaultScheme("http"))
	}
	ctx, cancel := context.WithTimeout(s.ns(ctx), s.cfg.Pull.timeout())
	defer cancel()
	src, err := registry.NewOCIRegistry(ctx, ref, ropts...)
	if err != nil {
		return Image{}, err
	}
	dst := image.NewStore(ref, image.WithUnpack(platforms.DefaultSpec(), s.cfg.Snapshotter))
	if err := s.client.Transfer(ctx, src, dst); err != nil {
		if strings.Contains(err.Error(), "blocked pull") {
			// containerd's image verifier plugin refused it; its error
			// reaches the client without an errdefs class (gRPC Unknown).
			return Image{}, fmt.Errorf("pull %s: %w: %w", ref, err, errdefs.ErrPermissionDenied)
		}
		return Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	imgs, err := s.imageList(ctx)
	if err != nil {
		return Image{}, err
	}
	for _, img := range imgs {
		if img.Name == ref {
			return img, nil
		}
	}
	return Image{}, fmt.Errorf("pull %s: the image is not in containerd after the transfer", ref)
}

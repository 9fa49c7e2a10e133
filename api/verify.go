package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/ctp/sigstore"
	"github.com/vordr-project/vordr/plugin"
)

// VerifyRequest asks whether an image's stored evidence verifies under one
// of the operator's policies (default: the runtime config's default).
type VerifyRequest struct {
	Image  string `json:"image"`
	Policy string `json:"policy,omitempty"`
}

// VerifyResult is the answer. Verified is what the gate would find for
// the image's evidence under a strict policy; the gate also checks the
// container's rootfs content at every create.
type VerifyResult struct {
	Image    string `json:"image"`
	Digest   string `json:"digest"`
	Policy   string `json:"policy"`
	Mode     string `json:"mode"`
	Verified bool   `json:"verified"`
	// Message says why not.
	Message string `json:"message,omitempty"`
}

func (s *Server) verifyImage(w http.ResponseWriter, r *http.Request, _ Identity) error {
	var req VerifyRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	res, err := s.verify(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// verify re-verifies an image's stored evidence under a named operator
// policy. It changes nothing.
func (s *Server) verify(ctx context.Context, req VerifyRequest) (VerifyResult, error) {
	if req.Image == "" {
		return VerifyResult{}, apiError(http.StatusBadRequest, CodeInvalidArgument, "image is required (GET /api/v1/images)")
	}
	if len(req.Policy) > 64 || strings.ContainsAny(req.Policy, "/\n\r\x00") {
		return VerifyResult{}, apiError(http.StatusBadRequest, CodeInvalidArgument, "policy must be the name of one of the operator's policies (GET /api/v1/policies)")
	}
	ctx = s.ns(ctx)
	name, pol, err := s.operatorPolicy(req.Policy)
	if err != nil {
		return VerifyResult{}, err
	}
	img, err := s.client.ImageService().Get(ctx, req.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return VerifyResult{}, apiError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("image %q is not in containerd's namespace %q", req.Image, s.cfg.Namespace))
		}
		return VerifyResult{}, err
	}
	res := VerifyResult{Image: img.Name, Digest: img.Target.Digest.String(), Policy: name, Mode: string(pol.Mode)}
	_, err = plugin.VerifyStoredImage(ctx, s.client.ContentStore(), img, pol, ctp.VerifyOptions{Sigstore: sigstore.PolicyVerifier{}})
	switch {
	case err == nil:
		res.Verified = true
	case errors.Is(err, plugin.ErrNoEvidence), errors.Is(err, plugin.ErrNotVerified):
		res.Message = cleanMessage(err.Error())
	default:
		return VerifyResult{}, err
	}
	return res, nil
}

// operatorPolicy loads one of the operator's policies by name (empty: the
// runtime config's default), read as the shim reads the operator's files.
func (s *Server) operatorPolicy(name string) (string, *policy.Policy, error) {
	if len(name) > 64 || strings.ContainsAny(name, "/\n\r\x00") {
		return "", nil, apiError(http.StatusBadRequest, CodeInvalidArgument, "policy must be the name of one of the operator's policies (GET /api/v1/policies)")
	}
	rc, err := s.cfg.runtimeConfig()
	if err != nil {
		return "", nil, fmt.Errorf("the operator's runtime config: %w", err)
	}
	if name == "" {
		name = rc.DefaultPolicy
	}
	path, ok := rc.Policies[name]
	if name == "" || !ok {
		names := make([]string, 0, len(rc.Policies))
		for n := range rc.Policies {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", nil, apiError(http.StatusBadRequest, CodeInvalidArgument, fmt.Sprintf("no policy %q in the operator's runtime config; its policies: %s", name, strings.Join(names, ", ")))
	}
	// Read as the shim reads the operator's files (regular, not writable
	// by others).
	data, err := config.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("verification policy %q: %w", name, err)
	}
	pol, err := policy.Parse(data, filepath.Dir(path))
	if err != nil {
		return "", nil, fmt.Errorf("verification policy %q (%s): %w", name, path, err)
	}
	return name, pol, nil
}

// maxUploads bounds bundle uploads verified at once; uploadPattern names
// their temporary files under state_dir.
const (
	maxUploads    = 2
	uploadPattern = "upload-bundle-*.ctp"
)

// BundleVerifyResult is the verdict on an uploaded .ctp bundle.
type BundleVerifyResult struct {
	Policy      string   `json:"policy"`
	Mode        string   `json:"mode"`
	Name        string   `json:"name"`
	ImageRef    string   `json:"imageRef,omitempty"`
	ImageDigest string   `json:"imageDigest"`
	Verified    bool     `json:"verified"`
	Decision    string   `json:"decision"`
	ErrorCode   string   `json:"errorCode,omitempty"`
	Message     string   `json:"message,omitempty"`
	Predicates  []string `json:"predicates"`
	Signers     []string `json:"signers"`
}

// verifyBundle verifies a .ctp bundle sent as the request body (at most
// limits.max_bundle_bytes) under one of the operator's policies (?policy=,
// default the runtime config's). Nothing is imported: the verdict is all.
func (s *Server) verifyBundle(w http.ResponseWriter, r *http.Request, _ Identity) error {
	name, pol, err := s.operatorPolicy(r.URL.Query().Get("policy"))
	if err != nil {
		return err
	}
	select {
	case s.uploads <- struct{}{}:
		defer func() { <-s.uploads }()
	default:
		w.Header().Set("Retry-After", "5")
		return apiError(http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf("%d bundles are being verified already; retry after the Retry-After header's seconds", maxUploads))
	}
	// On state_dir's disk, not /tmp (often a small tmpfs); leftovers of a
	// crash are removed at start (New).
	if err := os.MkdirAll(s.cfg.StateDir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.cfg.StateDir, uploadPattern)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, r.Body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return apiError(http.StatusBadRequest, CodeInvalidArgument, "read the bundle: "+err.Error())
	}
	b, err := ctp.OpenFile(f.Name(), ctp.Options{})
	if err != nil {
		return apiError(http.StatusBadRequest, CodeInvalidArgument, "not a valid .ctp bundle: "+cleanMessage(err.Error()))
	}
	defer b.Close()
	res, verr := ctp.Verify(r.Context(), b, pol, ctp.VerifyOptions{Sigstore: sigstore.PolicyVerifier{}})
	if res == nil {
		return apiError(http.StatusBadRequest, CodeInvalidArgument, "not a valid .ctp bundle: "+cleanMessage(verr.Error()))
	}
	out := BundleVerifyResult{Policy: name, Mode: string(pol.Mode), Name: res.Name, ImageRef: res.ImageRef, ImageDigest: res.ImageDigest,
		Verified: verr == nil && res.Decision == ctp.Accept, Decision: string(res.Decision), ErrorCode: string(res.ErrorCode),
		Message: res.Message, Predicates: append([]string{}, res.Predicates...), Signers: []string{}}
	for _, sc := range res.Signers {
		if sc.Status == "valid" {
			out.Signers = append(out.Signers, sc.KeyID)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

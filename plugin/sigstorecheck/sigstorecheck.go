// Package sigstorecheck runs sigstore-bundle verification in a helper
// process. The runtime's gate re-verifies an image's stored evidence at
// Create, but the shim must stay small (it runs once per pod and its
// start-up is on every container's path), and sigstore-go with its
// transparency-log and certificate-transparency code is several MiB: so the
// gate asks `vordr-verifier sigstore-check`, which links it, and only for
// bundles that carry sigstore evidence on a verdict-cache miss.
//
// The protocol is one JSON request on the helper's stdin and one JSON
// response on its stdout.
package sigstorecheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
)

// Arg is the helper's subcommand.
const Arg = "sigstore-check"

// MaxRequest bounds a request (a bundle and a trusted root).
const MaxRequest = 16 << 20

// Request asks whether a sigstore bundle about Digest verifies under the
// policy's signers and identities.
type Request struct {
	Bundle      string            `json:"bundle"`
	Digest      string            `json:"digest"`
	Signers     []Signer          `json:"signers,omitempty"`
	Identities  []policy.Identity `json:"identities,omitempty"`
	TrustedRoot []byte            `json:"trustedRoot,omitempty"`
	IgnoreTlog  bool              `json:"ignoreTlog,omitempty"`
}

// Signer is a policy signer's key.
type Signer struct {
	KeyID string `json:"keyId"`
	PEM   string `json:"pem"`
}

// Response is the helper's answer: a verified bundle, or why not.
type Response struct {
	Verified  *ctp.SigstoreVerified `json:"verified,omitempty"`
	Error     string                `json:"error,omitempty"`
	Untrusted bool                  `json:"untrusted,omitempty"` // no signer or identity verifies it
}

// Exec is a ctp.SigstoreVerifier that asks the helper binary at Path. Run
// starts and waits for it; nil means exec.Cmd.Run (a shim passes its
// reaper's, which collects every child).
type Exec struct {
	Path string
	Run  func(*exec.Cmd) error
}

var _ ctp.SigstoreVerifier = Exec{}

// VerifySigstore implements ctp.SigstoreVerifier.
func (e Exec) VerifySigstore(ctx context.Context, bundle []byte, digest string, p *policy.Policy) (*ctp.SigstoreVerified, error) {
	if e.Path == "" {
		return nil, errors.New("the image's evidence includes sigstore bundles, which are checked by vordr-verifier: install it next to the shim (or on PATH)")
	}
	req := Request{Bundle: string(bundle), Digest: digest, Identities: p.Identities, TrustedRoot: p.TrustedRootJSON, IgnoreTlog: p.SigstoreIgnoreTlog}
	for _, s := range p.Signers {
		// As ctp/sigstore's PolicyVerifier: no hybrid or ML-DSA signer can
		// be shown by a sigstore bundle (and cryptoutils cannot encode ML-DSA).
		if s.Resolved == nil || s.Hybrid() || s.Resolved.IsMLDSA() {
			continue
		}
		pem, err := cryptoutils.MarshalPublicKeyToPEM(s.Resolved.Key)
		if err != nil {
			return nil, fmt.Errorf("signer %s: %w", s.KeyID, err)
		}
		req.Signers = append(req.Signers, Signer{KeyID: s.KeyID, PEM: string(pem)})
	}
	in, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, e.Path, Arg)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &out, &stderr
	run := e.Run
	if run == nil {
		run = (*exec.Cmd).Run
	}
	if err := run(cmd); err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", e.Path, Arg, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var resp Response
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("%s %s: bad answer: %w", e.Path, Arg, err)
	}
	switch {
	case resp.Untrusted:
		return nil, fmt.Errorf("%w: %s", ctp.ErrSigstoreUntrusted, resp.Error)
	case resp.Error != "":
		return nil, errors.New(resp.Error)
	case resp.Verified == nil:
		return nil, fmt.Errorf("%s %s: empty answer", e.Path, Arg)
	}
	return resp.Verified, nil
}

// Serve answers one request from r on w with v (the helper's side). Only a
// failure to read or write is returned; a refusal is an answer.
func Serve(ctx context.Context, r io.Reader, w io.Writer, v ctp.SigstoreVerifier) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxRequest+1))
	if err != nil {
		return err
	}
	if len(data) > MaxRequest {
		return fmt.Errorf("request larger than %d bytes", MaxRequest)
	}
	var req Request
	if err := json.Unmarshal(data, &req); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	p := &policy.Policy{Identities: req.Identities, TrustedRootJSON: req.TrustedRoot, SigstoreIgnoreTlog: req.IgnoreTlog}
	var resp Response
	for _, s := range req.Signers {
		k, err := keys.ParsePublicKey([]byte(s.PEM))
		if err != nil {
			resp.Error = fmt.Sprintf("signer %s: %v", s.KeyID, err)
			return json.NewEncoder(w).Encode(resp)
		}
		p.Signers = append(p.Signers, policy.Signer{KeyID: s.KeyID, Resolved: k})
	}
	got, err := v.VerifySigstore(ctx, []byte(req.Bundle), req.Digest, p)
	if err != nil {
		resp.Error = err.Error()
		resp.Untrusted = errors.Is(err, ctp.ErrSigstoreUntrusted)
	} else {
		resp.Verified = got
	}
	return json.NewEncoder(w).Encode(resp)
}

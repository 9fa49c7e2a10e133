package sigstore

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
)

// PolicyVerifier checks a .ctp's sigstore bundles against a vordr policy: a
// keyed bundle must verify with one of its signers' keys, a keyless one must
// chain to its trusted root and name one of its identities. It is
// ctp.VerifyOptions.Sigstore for the CLI, import and the pull-time verifier.
type PolicyVerifier struct{}

var _ ctp.SigstoreVerifier = PolicyVerifier{}

// VerifySigstore implements ctp.SigstoreVerifier.
func (PolicyVerifier) VerifySigstore(_ context.Context, bundle []byte, artifactDigest string, p *policy.Policy) (*ctp.SigstoreVerified, error) {
	var tr *root.TrustedRoot
	if len(p.TrustedRootJSON) > 0 {
		var err error
		if tr, err = trustedRootOf(p); err != nil {
			return nil, fmt.Errorf("policy trusted_root: %w", err)
		}
	}
	var last error
	try := func(id string, o Options) (*ctp.SigstoreVerified, bool) {
		o.Digest, o.TrustedRoot, o.IgnoreTlog = artifactDigest, tr, p.SigstoreIgnoreTlog
		res, err := Verify(bundle, o)
		if err != nil {
			last = err
			return nil, false
		}
		v := &ctp.SigstoreVerified{Signer: id, Statement: res.Payload, TlogEntries: res.TlogEntries}
		if res.CertificateMode {
			// A keyless signature was made while its short-lived
			// certificate was valid, which the log's time was checked
			// against: the observation dates the signing. A keyed
			// signature can be logged again by anyone at any later time,
			// so its log time proves only that it existed by then.
			v.SignedAt = res.SignedAt
		}
		return v, true
	}
	keyless := isKeyless(bundle)
	for _, s := range p.Signers {
		// A sigstore bundle carries one signature: it can never show both
		// halves of a hybrid signer, and sigstore has no ML-DSA keys.
		if s.Resolved == nil || keyless || s.Hybrid() || s.Resolved.IsMLDSA() {
			continue
		}
		if v, ok := try(s.KeyID, Options{PublicKey: s.Resolved.Key}); ok {
			return v, nil
		}
	}
	if tr != nil && keyless {
		for _, id := range p.Identities {
			o := Options{Identities: []Identity{{Issuer: id.Issuer, IssuerRegexp: id.IssuerRegexp, Subject: id.Subject, SubjectRegexp: id.SubjectRegexp}}}
			if v, ok := try(id.ID(), o); ok {
				return v, nil
			}
		}
	}
	if last == nil {
		if keyless {
			last = errors.New("the bundle is keyless (signed with a certificate) and the policy lists no identities with a trusted_root")
		} else {
			last = errors.New("the bundle is signed with a key and the policy lists no signer keys")
		}
	}
	return nil, fmt.Errorf("%w: %v", ctp.ErrSigstoreUntrusted, last)
}

// isKeyless tells a certificate-signed bundle from a key-signed one.
func isKeyless(data []byte) bool {
	var probe struct {
		VerificationMaterial struct {
			Certificate          json.RawMessage `json:"certificate"`
			X509CertificateChain json.RawMessage `json:"x509CertificateChain"`
		} `json:"verificationMaterial"`
	}
	if json.Unmarshal(data, &probe) != nil {
		return false
	}
	return probe.VerificationMaterial.Certificate != nil || probe.VerificationMaterial.X509CertificateChain != nil
}

// trustedRoots caches parsed trusted roots by content digest: a bundle with
// several sigstore bundles is checked against the same root each time.
var trustedRoots sync.Map // policy.TrustedRootDigest -> *root.TrustedRoot

func trustedRootOf(p *policy.Policy) (*root.TrustedRoot, error) {
	key := p.TrustedRootDigest
	if key == "" {
		key = fmt.Sprintf("sha256:%x", sha256.Sum256(p.TrustedRootJSON))
	}
	if tr, ok := trustedRoots.Load(key); ok {
		return tr.(*root.TrustedRoot), nil
	}
	tr, err := LoadTrustedRoot(p.TrustedRootJSON)
	if err != nil {
		return nil, err
	}
	trustedRoots.Store(key, tr)
	return tr, nil
}

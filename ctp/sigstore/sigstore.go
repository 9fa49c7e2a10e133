// Package sigstore verifies sigstore bundles (the format cosign writes with
// --bundle and stores as OCI referrers) whose content is a DSSE envelope
// around an in-toto statement, offline: with a public key (cosign --key), or
// keyless, with a Fulcio-style certificate checked against a sigstore
// trusted_root.json and an identity policy, and a Rekor-style log entry
// whose inclusion proof and checkpoint are checked against the log's key in
// the same trusted root. Verification itself is sigstore-go's: this package
// maps cosign's options onto it and says, when it refuses, what to change.
package sigstore

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vordr-project/vordr/ctp/keys"
)

// MediaTypeBundleV03 is the sigstore bundle media type cosign writes today;
// v0.1 and v0.2 bundles are accepted too (sigstore-go reads them).
const MediaTypeBundleV03 = "application/vnd.dev.sigstore.bundle.v0.3+json"

// Statement types accepted: cosign still writes v0.1, newer tools v1.
const (
	StatementV01 = "https://in-toto.io/Statement/v0.1"
	StatementV1  = "https://in-toto.io/Statement/v1"
)

// ErrRefused wraps every reason a bundle is not accepted (as opposed to a
// usage error: a missing option, an unreadable trusted root).
var ErrRefused = errors.New("sigstore bundle refused")

// Identity is the expected signer of a keyless bundle: the certificate's
// OIDC issuer and its subject (SAN: an email, a URI such as a CI workflow),
// each exact or a regular expression (cosign's --certificate-identity,
// --certificate-identity-regexp, --certificate-oidc-issuer,
// --certificate-oidc-issuer-regexp). An issuer and a subject are both
// required: a certificate from the right CA for anyone at all is not a
// policy.
type Identity struct {
	Issuer        string `json:"issuer,omitempty" toml:"issuer"`
	IssuerRegexp  string `json:"issuer_regexp,omitempty" toml:"issuer_regexp"`
	Subject       string `json:"subject,omitempty" toml:"subject"`
	SubjectRegexp string `json:"subject_regexp,omitempty" toml:"subject_regexp"`
}

// Validate reports an incomplete or malformed identity.
func (id Identity) Validate() error {
	if id.Issuer == "" && id.IssuerRegexp == "" {
		return errors.New("the identity has no OIDC issuer: set issuer (--certificate-oidc-issuer) or issuer_regexp (--certificate-oidc-issuer-regexp)")
	}
	if id.Subject == "" && id.SubjectRegexp == "" {
		return errors.New("the identity has no subject: set subject (--certificate-identity) or subject_regexp (--certificate-identity-regexp)")
	}
	if id.Issuer != "" && id.IssuerRegexp != "" {
		return errors.New("the identity sets both issuer and issuer_regexp: choose one")
	}
	if id.Subject != "" && id.SubjectRegexp != "" {
		return errors.New("the identity sets both subject and subject_regexp: choose one")
	}
	for _, re := range []string{id.IssuerRegexp, id.SubjectRegexp} {
		if re == "" {
			continue
		}
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("identity regexp %q: %w", re, err)
		}
	}
	return nil
}

func (id Identity) String() string {
	subj, iss := id.Subject, id.Issuer
	if subj == "" {
		subj = "~" + id.SubjectRegexp
	}
	if iss == "" {
		iss = "~" + id.IssuerRegexp
	}
	return subj + " (issuer " + iss + ")"
}

// Options says what a bundle must satisfy.
type Options struct {
	// Digest is the artifact (for vordr: the image manifest) the statement
	// must name among its subjects, "sha256:<hex>". Required: a signed
	// statement about something else proves nothing about this artifact.
	Digest string
	// PublicKey verifies a keyed bundle (cosign --key). Exactly one of
	// PublicKey and Identities must be set.
	PublicKey crypto.PublicKey
	// Identities are the accepted signers of a keyless bundle; any one
	// matching is enough. They need TrustedRoot.
	Identities []Identity
	// TrustedRoot holds the certificate authorities, the transparency logs'
	// keys and timestamp authorities (sigstore trusted_root.json). Needed
	// for keyless bundles and for any log entry.
	TrustedRoot *root.TrustedRoot
	// IgnoreTlog accepts a bundle without a transparency-log entry
	// (cosign --insecure-ignore-tlog). Entries present are then not
	// required, and for a certificate the signing time is taken from a
	// signed timestamp if the bundle has one, else the certificate must be
	// valid now.
	IgnoreTlog bool
	// IgnoreSCT accepts a certificate without a signed certificate timestamp
	// from a CT log the trusted root lists (cosign --insecure-ignore-sct).
	IgnoreSCT bool
	// PredicateType, if set, must be the statement's predicate type
	// (cosign --type, as a full URI).
	PredicateType string
}

// Result describes an accepted bundle.
type Result struct {
	MediaType       string          `json:"media_type"`
	StatementType   string          `json:"statement_type"`
	PredicateType   string          `json:"predicate_type"`
	Subjects        []Subject       `json:"subjects"`
	Predicate       json.RawMessage `json:"predicate,omitempty"`
	Signer          string          `json:"signer"` // "key sha256:…" or the certificate's subject
	Issuer          string          `json:"issuer,omitempty"`
	TlogEntries     int             `json:"tlog_entries"`
	SignedAt        []time.Time     `json:"signed_at,omitempty"` // verified timestamps (log integration, TSA)
	PayloadType     string          `json:"payload_type"`
	CertificateMode bool            `json:"keyless"`
	// Payload is the verified statement, as signed.
	Payload []byte `json:"-"`
}

// Subject is one subject of the statement.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// LoadTrustedRoot reads a sigstore trusted_root.json.
func LoadTrustedRoot(data []byte) (*root.TrustedRoot, error) {
	tr, err := root.NewTrustedRootFromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("not a sigstore trusted root (trusted_root.json, media type application/vnd.dev.sigstore.trustedroot+json;version=0.1): %w", err)
	}
	return tr, nil
}

// IsBundle reports whether data looks like a sigstore bundle (by its media
// type), so callers can tell it from other JSON evidence without parsing.
func IsBundle(data []byte) bool {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(data, &probe) != nil {
		return false
	}
	return strings.HasPrefix(probe.MediaType, "application/vnd.dev.sigstore.bundle")
}

// Verify checks a sigstore bundle (JSON) against o.
func Verify(data []byte, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	algo, want, err := splitDigest(o.Digest)
	if err != nil {
		return nil, err
	}
	var b bundle.Bundle
	b.Bundle = new(protobundle.Bundle)
	if err := b.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("%w: not a valid sigstore bundle: %v", ErrRefused, err)
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, fmt.Errorf("%w: the bundle holds a message signature, not an attestation (a DSSE envelope with an in-toto statement); verify it as a blob signature", ErrRefused)
	}
	keyless := b.GetVerificationMaterial().GetCertificate() != nil || b.GetVerificationMaterial().GetX509CertificateChain() != nil
	switch {
	case keyless && o.PublicKey != nil:
		return nil, fmt.Errorf("%w: the bundle is signed with a certificate (keyless) but a public key was given: verify it with a trusted root and the signer's identity", ErrRefused)
	case !keyless && len(o.Identities) > 0:
		return nil, fmt.Errorf("%w: the bundle is signed with a key, not a certificate: verify it with the signer's public key (--key)", ErrRefused)
	}
	tlogs := len(b.GetVerificationMaterial().GetTlogEntries())
	if tlogs == 0 && !o.IgnoreTlog {
		return nil, fmt.Errorf("%w: the bundle has no transparency-log entry; pass --insecure-ignore-tlog to accept a signature nobody can audit", ErrRefused)
	}

	var material root.TrustedMaterialCollection
	if o.TrustedRoot != nil {
		material = append(material, o.TrustedRoot)
	}
	var vopts []verify.VerifierOption
	var popts []verify.PolicyOption
	if o.PublicKey != nil {
		v, err := signature.LoadVerifier(o.PublicKey, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("load public key: %w", err)
		}
		key := root.NewExpiringKey(v, time.Time{}, time.Time{})
		// cosign --key: the key given is the one, whatever hint the bundle
		// carries.
		material = append(material, root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return key, nil }))
		popts = append(popts, verify.WithKey())
		switch {
		case o.IgnoreTlog:
			vopts = append(vopts, verify.WithNoObserverTimestamps())
		default:
			if o.TrustedRoot == nil {
				return nil, errors.New("the bundle's transparency-log entry can be checked offline only against the log's key: pass a trusted root (--trusted-root trusted_root.json) that lists the log, or --insecure-ignore-tlog")
			}
			vopts = append(vopts, verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1))
		}
	} else {
		for _, id := range o.Identities {
			ci, err := verify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegexp, id.Subject, id.SubjectRegexp)
			if err != nil {
				return nil, fmt.Errorf("identity %s: %w", id, err)
			}
			popts = append(popts, verify.WithCertificateIdentity(ci))
		}
		switch {
		case !o.IgnoreTlog:
			vopts = append(vopts, verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1))
		case len(b.GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps()) > 0:
			vopts = append(vopts, verify.WithSignedTimestamps(1))
		default:
			// No observer of the signing time: the certificate must be
			// valid now, which a short-lived Fulcio certificate is not.
			vopts = append(vopts, verify.WithCurrentTime())
		}
		if !o.IgnoreSCT && len(o.TrustedRoot.CTLogs()) > 0 {
			vopts = append(vopts, verify.WithSignedCertificateTimestamps(1))
		}
	}
	v, err := verify.NewVerifier(material, vopts...)
	if err != nil {
		return nil, fmt.Errorf("sigstore verifier: %w", err)
	}
	res, err := v.Verify(&b, verify.NewPolicy(verify.WithArtifactDigest(algo, want), popts...))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRefused, err)
	}
	return summarize(res, env.GetPayloadType(), env.GetPayload(), b.GetMediaType(), tlogs, keyless, o)
}

func (o Options) check() error {
	switch {
	case o.Digest == "":
		return errors.New("the artifact digest is required (--digest sha256:HEX): the statement must name what it is about")
	case o.PublicKey == nil && len(o.Identities) == 0:
		return errors.New("say whom to trust: a public key (--key), or a trusted root (--trusted-root) and the signer's identity (--certificate-identity and --certificate-oidc-issuer)")
	case o.PublicKey != nil && len(o.Identities) > 0:
		return errors.New("give either a public key or certificate identities, not both")
	case len(o.Identities) > 0 && o.TrustedRoot == nil:
		return errors.New("a keyless bundle is checked against a trusted root: pass --trusted-root trusted_root.json")
	}
	for _, id := range o.Identities {
		if err := id.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// splitDigest accepts "sha256:<hex>" (and sha384/sha512, which in-toto
// subjects may use).
func splitDigest(d string) (string, []byte, error) {
	algo, h, ok := strings.Cut(d, ":")
	if !ok {
		return "", nil, fmt.Errorf("digest %q: want ALGORITHM:HEX, e.g. sha256:%s", d, strings.Repeat("0", 64))
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return "", nil, fmt.Errorf("digest %q: %w", d, err)
	}
	n := map[string]int{"sha256": 32, "sha384": 48, "sha512": 64}[algo]
	if n == 0 {
		return "", nil, fmt.Errorf("digest %q: unsupported algorithm %q (sha256, sha384 or sha512)", d, algo)
	}
	if len(raw) != n {
		return "", nil, fmt.Errorf("digest %q: %s takes %d hex digits, not %d", d, algo, 2*n, len(h))
	}
	return algo, raw, nil
}

func summarize(res *verify.VerificationResult, payloadType string, payload []byte, mediaType string, tlogs int, keyless bool, o Options) (*Result, error) {
	st := res.Statement
	if st == nil {
		return nil, fmt.Errorf("%w: the envelope's payload is not an in-toto statement (payload type %q)", ErrRefused, payloadType)
	}
	switch st.GetType() {
	case StatementV01, StatementV1:
	default:
		return nil, fmt.Errorf("%w: statement type %q is neither in-toto v0.1 nor v1", ErrRefused, st.GetType())
	}
	if o.PredicateType != "" && st.GetPredicateType() != o.PredicateType {
		return nil, fmt.Errorf("%w: the predicate type is %q, not the %q asked for", ErrRefused, st.GetPredicateType(), o.PredicateType)
	}
	r := &Result{
		Payload:         payload,
		MediaType:       mediaType,
		StatementType:   st.GetType(),
		PredicateType:   st.GetPredicateType(),
		PayloadType:     payloadType,
		TlogEntries:     tlogs,
		CertificateMode: keyless,
	}
	for _, s := range st.GetSubject() {
		r.Subjects = append(r.Subjects, Subject{Name: s.GetName(), Digest: s.GetDigest()})
	}
	if p := st.GetPredicate(); p != nil {
		if data, err := protojson.Marshal(p); err == nil {
			r.Predicate = compact(data)
		}
	}
	for _, t := range res.VerifiedTimestamps {
		r.SignedAt = append(r.SignedAt, t.Timestamp.UTC())
	}
	if sig := res.Signature; sig != nil {
		switch {
		case sig.Certificate != nil:
			r.Signer = sig.Certificate.SubjectAlternativeName
			r.Issuer = sig.Certificate.Extensions.Issuer
		case o.PublicKey != nil:
			r.Signer = "key " + keyID(o.PublicKey)
		}
	}
	return r, nil
}

// keyID names a key as vordr does elsewhere.
func keyID(pub crypto.PublicKey) string {
	id, err := keys.KeyID(pub)
	if err != nil {
		return "unknown"
	}
	return id
}

func compact(data []byte) json.RawMessage {
	var buf bytes.Buffer
	if json.Compact(&buf, data) != nil {
		return data
	}
	return buf.Bytes()
}

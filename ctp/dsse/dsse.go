// Package dsse implements Dead Simple Signing Envelopes
// (https://github.com/secure-systems-lab/dsse, protocol v1) with the standard
// pre-authentication encoding (PAE). Signing and verification go through
// sigstore/sigstore's signature.Signer and signature.Verifier, so any key type
// that package supports works here, and so do ctp/keys' ML-DSA keys, whose
// Signer signs the PAE bytes themselves (pure ML-DSA, empty context): DSSE
// hands every algorithm the same message.
package dsse

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strconv"

	"github.com/sigstore/sigstore/pkg/signature"
)

// PayloadTypeInToto is the payload type of in-toto statements.
const PayloadTypeInToto = "application/vnd.in-toto+json"

// b64 is strict: trailing bits that do not belong to the data are an error,
// so one encoded signature has exactly one spelling.
var b64 = base64.StdEncoding.Strict()

// Envelope is a DSSE envelope. Payload and Sig are standard base64 as the
// protocol's JSON encoding requires.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one signature over the envelope's PAE. KeyID is the signer's
// key id (sha256:<hex of DER SubjectPublicKeyInfo> in .ctp bundles).
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// ErrVerify is wrapped by every signature verification failure.
var ErrVerify = errors.New("dsse: signature does not verify")

// PAE returns the DSSEv1 pre-authentication encoding:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in ASCII decimal.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(payloadType) + len(payload) + 32)
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// New returns an unsigned envelope carrying payload.
func New(payloadType string, payload []byte) *Envelope {
	return &Envelope{PayloadType: payloadType, Payload: b64.EncodeToString(payload), Signatures: []Signature{}}
}

// DecodePayload returns the raw payload bytes.
func (e *Envelope) DecodePayload() ([]byte, error) {
	p, err := b64.DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("dsse: payload is not standard base64: %w", err)
	}
	return p, nil
}

// Sign appends a signature by s, labelled keyID. Existing signatures are kept:
// DSSE allows several signers over the same payload.
func (e *Envelope) Sign(s signature.Signer, keyID string) error {
	payload, err := e.DecodePayload()
	if err != nil {
		return err
	}
	sig, err := s.SignMessage(bytes.NewReader(PAE(e.PayloadType, payload)))
	if err != nil {
		return fmt.Errorf("dsse: sign: %w", err)
	}
	e.Signatures = append(e.Signatures, Signature{KeyID: keyID, Sig: b64.EncodeToString(sig)})
	return nil
}

// DecodeSig returns the raw bytes of sig.Sig.
func DecodeSig(sig Signature) ([]byte, error) {
	raw, err := b64.DecodeString(sig.Sig)
	if err != nil {
		return nil, fmt.Errorf("dsse: signature is not standard base64: %w", err)
	}
	return raw, nil
}

// VerifySignature checks one signature of e with v. It does not look at
// sig.KeyID: choosing the verifier for a key id is the caller's policy.
func (e *Envelope) VerifySignature(v signature.Verifier, sig Signature) error {
	payload, err := e.DecodePayload()
	if err != nil {
		return err
	}
	raw, err := DecodeSig(sig)
	if err != nil {
		return err
	}
	if pk, err := v.PublicKey(); err == nil {
		if _, ok := pk.(*ecdsa.PublicKey); ok && !isDERSignature(raw) {
			// sigstore's verifier also takes raw r||s: a second encoding
			// of the same signature, with a second signature digest.
			return fmt.Errorf("%w: ECDSA signature is not ASN.1 DER (ctp-format §3.1)", ErrVerify)
		}
	}
	if err := v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(PAE(e.PayloadType, payload))); err != nil {
		return fmt.Errorf("%w: %v", ErrVerify, err)
	}
	return nil
}

// isDERSignature reports whether sig is an ECDSA signature in canonical
// ASN.1 DER: SEQUENCE { r INTEGER, s INTEGER }, nothing after it, and the
// encoding asn1.Marshal would produce (no leading zeros, minimal lengths).
func isDERSignature(sig []byte) bool {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &v)
	if err != nil || len(rest) != 0 || v.R == nil || v.S == nil || v.R.Sign() <= 0 || v.S.Sign() <= 0 {
		return false
	}
	again, err := asn1.Marshal(v)
	return err == nil && bytes.Equal(again, sig)
}

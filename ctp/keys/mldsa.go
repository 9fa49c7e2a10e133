package keys

// ML-DSA (FIPS 204) keys through cloudflare/circl: only the mldsa65 and
// mldsa87 packages are imported (not circl/sign/schemes or circl/pki, which
// would link every scheme circl has into the shim).
//
// Encodings follow RFC 9881 (Internet X.509 Public Key Infrastructure:
// Algorithm Identifiers for ML-DSA):
//   - SubjectPublicKeyInfo: AlgorithmIdentifier {id-ml-dsa-NN, no
//     parameters}, BIT STRING = the FIPS 204 public key encoding.
//   - OneAsymmetricKey (PKCS#8 v1): privateKey OCTET STRING wrapping
//     ML-DSA-PrivateKey ::= CHOICE { seed [0] IMPLICIT OCTET STRING (32),
//     expandedKey OCTET STRING, both SEQUENCE { seed, expandedKey } }.
//     vordr writes the seed form (32 bytes, from which everything else is
//     derived) and reads all three, checking that "both" is consistent.
//
// Signatures are "pure" ML-DSA over the whole message with the empty context
// string, hedged (randomized) as FIPS 204 recommends: the DSSE PAE is the
// message, so no pre-hash and no context are part of the .ctp format.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
	"github.com/sigstore/sigstore/pkg/signature"
)

var (
	oidMLDSA65 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 18}
	oidMLDSA87 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 3, 19}
)

// mldsaParams is one ML-DSA parameter set.
type mldsaParams struct {
	alg    Algorithm
	oid    asn1.ObjectIdentifier
	scheme sign.Scheme
	// signTo is circl's package-level SignTo: the scheme interface's Sign
	// is always deterministic, and hedged signing is what FIPS 204
	// recommends.
	signTo func(sk sign.PrivateKey, msg []byte, randomized bool, sig []byte) error
	verify func(pk sign.PublicKey, msg, sig []byte) bool
}

var mldsaSets = []*mldsaParams{
	{
		alg: MLDSA65, oid: oidMLDSA65, scheme: mldsa65.Scheme(),
		signTo: func(sk sign.PrivateKey, msg []byte, randomized bool, sig []byte) error {
			return mldsa65.SignTo(sk.(*mldsa65.PrivateKey), msg, nil, randomized, sig)
		},
		verify: func(pk sign.PublicKey, msg, sig []byte) bool {
			return mldsa65.Verify(pk.(*mldsa65.PublicKey), msg, nil, sig)
		},
	},
	{
		alg: MLDSA87, oid: oidMLDSA87, scheme: mldsa87.Scheme(),
		signTo: func(sk sign.PrivateKey, msg []byte, randomized bool, sig []byte) error {
			return mldsa87.SignTo(sk.(*mldsa87.PrivateKey), msg, nil, randomized, sig)
		},
		verify: func(pk sign.PublicKey, msg, sig []byte) bool {
			return mldsa87.Verify(pk.(*mldsa87.PublicKey), msg, nil, sig)
		},
	},
}

func mldsaByAlg(alg Algorithm) *mldsaParams {
	for _, p := range mldsaSets {
		if p.alg == alg {
			return p
		}
	}
	return nil
}

func mldsaByOID(oid asn1.ObjectIdentifier) *mldsaParams {
	for _, p := range mldsaSets {
		if p.oid.Equal(oid) {
			return p
		}
	}
	return nil
}

// mldsaOf returns the parameter set of an ML-DSA public key, nil for any
// other key.
func mldsaOf(pub crypto.PublicKey) *mldsaParams {
	switch pub.(type) {
	case *mldsa65.PublicKey:
		return mldsaSets[0]
	case *mldsa87.PublicKey:
		return mldsaSets[1]
	}
	return nil
}

// IsMLDSA reports whether pub is an ML-DSA public key.
func IsMLDSA(pub crypto.PublicKey) bool { return mldsaOf(pub) != nil }

// AlgorithmOf names the algorithm of a supported public key ("" otherwise).
func AlgorithmOf(pub crypto.PublicKey) Algorithm {
	if p := mldsaOf(pub); p != nil {
		return p.alg
	}
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return Ed25519
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return ECDSAP256
		}
	}
	return ""
}

// spki and oneAsymmetricKey are the DER structures of RFC 5280 and RFC 5958
// (PKCS#8 v1, no attributes or public key).
type spki struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

type oneAsymmetricKey struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
}

func marshalMLDSAPublic(p *mldsaParams, pub sign.PublicKey) ([]byte, error) {
	raw, err := pub.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(spki{
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: p.oid},
		PublicKey: asn1.BitString{Bytes: raw, BitLength: 8 * len(raw)},
	})
}

// parseMLDSAPublic parses an ML-DSA SubjectPublicKeyInfo. ok is false when
// der is not one (another algorithm, or not an SPKI at all): the caller
// then tries the other key types.
func parseMLDSAPublic(der []byte) (pub sign.PublicKey, ok bool, err error) {
	var k spki
	rest, err := asn1.Unmarshal(der, &k)
	if err != nil {
		return nil, false, nil
	}
	p := mldsaByOID(k.Algorithm.Algorithm)
	if p == nil {
		return nil, false, nil
	}
	// RFC 9881 §2: parameters MUST be absent.
	if len(rest) != 0 || len(k.Algorithm.Parameters.FullBytes) != 0 {
		return nil, true, fmt.Errorf("keys: %s public key: trailing data or algorithm parameters", p.alg)
	}
	if k.PublicKey.BitLength != 8*len(k.PublicKey.Bytes) || len(k.PublicKey.Bytes) != p.scheme.PublicKeySize() {
		return nil, true, fmt.Errorf("keys: %s public key is %d bits, want %d", p.alg, k.PublicKey.BitLength, 8*p.scheme.PublicKeySize())
	}
	pub, err = p.scheme.UnmarshalBinaryPublicKey(k.PublicKey.Bytes)
	if err != nil {
		return nil, true, fmt.Errorf("keys: %s public key: %w", p.alg, err)
	}
	// One key, one encoding, one key id: re-encoding must give der back.
	again, err := marshalMLDSAPublic(p, pub)
	if err != nil || !bytes.Equal(again, der) {
		return nil, true, fmt.Errorf("keys: %s public key is not in canonical DER", p.alg)
	}
	return pub, true, nil
}

// marshalMLDSAPrivate writes the seed form of RFC 9881.
func marshalMLDSAPrivate(p *mldsaParams, seed []byte) ([]byte, error) {
	inner := append([]byte{0x80, byte(len(seed))}, seed...) // [0] IMPLICIT OCTET STRING
	return asn1.Marshal(oneAsymmetricKey{Algorithm: pkix.AlgorithmIdentifier{Algorithm: p.oid}, PrivateKey: inner})
}

// parseMLDSAPrivate parses an ML-DSA OneAsymmetricKey; ok as in
// parseMLDSAPublic. seed is nil for a key in expandedKey form.
func parseMLDSAPrivate(der []byte) (p *mldsaParams, sk sign.PrivateKey, seed []byte, ok bool, err error) {
	var k oneAsymmetricKey
	if _, err := asn1.Unmarshal(der, &k); err != nil {
		return nil, nil, nil, false, nil
	}
	if p = mldsaByOID(k.Algorithm.Algorithm); p == nil {
		return nil, nil, nil, false, nil
	}
	fail := func(format string, args ...any) (*mldsaParams, sign.PrivateKey, []byte, bool, error) {
		return nil, nil, nil, true, fmt.Errorf("keys: %s private key: "+format, append([]any{p.alg}, args...)...)
	}
	if k.Version != 0 && k.Version != 1 {
		return fail("version %d", k.Version)
	}
	var choice asn1.RawValue
	if rest, err := asn1.Unmarshal(k.PrivateKey, &choice); err != nil || len(rest) != 0 {
		return fail("not an ML-DSA-PrivateKey")
	}
	var expanded []byte
	switch {
	case choice.Class == asn1.ClassContextSpecific && choice.Tag == 0 && !choice.IsCompound:
		seed = choice.Bytes
	case choice.Class == asn1.ClassUniversal && choice.Tag == asn1.TagOctetString:
		expanded = choice.Bytes
	case choice.Class == asn1.ClassUniversal && choice.Tag == asn1.TagSequence:
		var both struct{ Seed, Expanded []byte }
		if rest, err := asn1.Unmarshal(choice.FullBytes, &both); err != nil || len(rest) != 0 {
			return fail("malformed seed-and-expandedKey form")
		}
		seed, expanded = both.Seed, both.Expanded
	default:
		return fail("unknown ML-DSA-PrivateKey form (tag %d)", choice.Tag)
	}
	if seed != nil {
		if len(seed) != p.scheme.SeedSize() {
			return fail("seed is %d bytes, want %d", len(seed), p.scheme.SeedSize())
		}
		_, sk = p.scheme.DeriveKey(seed)
	}
	if expanded != nil {
		if len(expanded) != p.scheme.PrivateKeySize() {
			return fail("expanded key is %d bytes, want %d", len(expanded), p.scheme.PrivateKeySize())
		}
		esk, err := p.scheme.UnmarshalBinaryPrivateKey(expanded)
		if err != nil {
			return fail("%v", err)
		}
		if sk != nil {
			// RFC 9881 §6: a key in both forms whose halves disagree
			// must be refused, or two parties holding "the same" key
			// file would sign with different keys.
			b, err := sk.MarshalBinary()
			if err != nil || subtle.ConstantTimeCompare(b, expanded) != 1 {
				return fail("the seed and the expanded key do not match")
			}
		} else {
			sk = esk
		}
	}
	return p, sk, seed, true, nil
}

// mldsaVerifier implements signature.Verifier for ML-DSA.
type mldsaVerifier struct {
	p   *mldsaParams
	pub sign.PublicKey
}

func (v *mldsaVerifier) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return v.pub, nil
}

// ErrMLDSAVerify: an ML-DSA signature does not verify.
var ErrMLDSAVerify = errors.New("ML-DSA signature does not verify")

func (v *mldsaVerifier) VerifySignature(sig, message io.Reader, _ ...signature.VerifyOption) error {
	s, err := io.ReadAll(io.LimitReader(sig, int64(v.p.scheme.SignatureSize())+1))
	if err != nil {
		return err
	}
	m, err := io.ReadAll(message)
	if err != nil {
		return err
	}
	if len(s) != v.p.scheme.SignatureSize() {
		return fmt.Errorf("%w: %s signature is %d bytes, want %d", ErrMLDSAVerify, v.p.alg, len(s), v.p.scheme.SignatureSize())
	}
	if !v.p.verify(v.pub, m, s) {
		return fmt.Errorf("%w (%s)", ErrMLDSAVerify, v.p.alg)
	}
	return nil
}

// mldsaSigner implements signature.Signer for ML-DSA.
type mldsaSigner struct {
	mldsaVerifier
	sk sign.PrivateKey
	// deterministic selects FIPS 204's deterministic variant (rnd = 0^32);
	// only tests set it, to reproduce known-answer vectors.
	deterministic bool
}

func (s *mldsaSigner) SignMessage(message io.Reader, _ ...signature.SignOption) ([]byte, error) {
	m, err := io.ReadAll(message)
	if err != nil {
		return nil, err
	}
	sig := make([]byte, s.p.scheme.SignatureSize())
	if err := s.p.signTo(s.sk, m, !s.deterministic, sig); err != nil {
		return nil, fmt.Errorf("keys: %s sign: %w", s.p.alg, err)
	}
	return sig, nil
}

// generateMLDSA returns a fresh seed and the DER of both halves.
func generateMLDSA(p *mldsaParams) (privDER, pubDER []byte, err error) {
	seed := make([]byte, p.scheme.SeedSize())
	if _, err := io.ReadFull(rand.Reader, seed); err != nil {
		return nil, nil, err
	}
	pub, _ := p.scheme.DeriveKey(seed)
	if pubDER, err = marshalMLDSAPublic(p, pub); err != nil {
		return nil, nil, err
	}
	privDER, err = marshalMLDSAPrivate(p, seed)
	return privDER, pubDER, err
}

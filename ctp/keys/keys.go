// Package keys generates and loads the signing keys of .ctp bundles: Ed25519
// (default) and ECDSA P-256, PEM encoded, through sigstore/sigstore's
// cryptoutils and signature packages, and ML-DSA-65/87 (FIPS 204, through
// cloudflare/circl; see mldsa.go), PEM encoded as RFC 9881 describes. Key ids
// are "sha256:" + hex(SHA-256(DER SubjectPublicKeyInfo)) for every type.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Algorithm names a key type.
type Algorithm string

const (
	Ed25519   Algorithm = "ed25519"
	ECDSAP256 Algorithm = "ecdsa-p256"
	// MLDSA65 and MLDSA87 are FIPS 204 ML-DSA at NIST security
	// categories 3 and 5.
	MLDSA65 Algorithm = "ml-dsa-65"
	MLDSA87 Algorithm = "ml-dsa-87"
)

// Algorithms lists what Generate accepts, default first.
var Algorithms = []Algorithm{Ed25519, ECDSAP256, MLDSA65, MLDSA87}

// PassFunc returns the passphrase of an encrypted private key; confirm asks
// for it twice when creating one. A nil func or nil passphrase means no
// encryption.
type PassFunc = cryptoutils.PassFunc

// Generate creates a key pair and returns PEM private and public keys. The
// private key is encrypted (sigstore's scrypt + secretbox format, the same one
// cosign uses) when pf returns a non-empty passphrase.
func Generate(alg Algorithm, pf PassFunc) (privPEM, pubPEM []byte, err error) {
	if p := mldsaByAlg(alg); p != nil {
		privDER, pubDER, err := generateMLDSA(p)
		if err != nil {
			return nil, nil, err
		}
		return encodePrivate(privDER, pf, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	}
	var priv crypto.Signer
	switch alg {
	case Ed25519, "":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		priv = k
	case ECDSAP256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		priv = k
	default:
		return nil, nil, fmt.Errorf("keys: unsupported algorithm %q (want one of %v)", alg, Algorithms)
	}
	pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	der, err := cryptoutils.MarshalPrivateKeyToDER(priv)
	if err != nil {
		return nil, nil, err
	}
	return encodePrivate(der, pf, pubPEM)
}

// encodePrivate PEM-encodes a PKCS#8 private key, encrypted when pf gives a
// passphrase. sigstore's encrypted format (scrypt + secretbox over the DER)
// does not care which algorithm the DER holds, so ML-DSA keys are encrypted
// exactly like the others.
func encodePrivate(der []byte, pf PassFunc, pubPEM []byte) (privPEM, pub []byte, err error) {
	if pf == nil {
		return cryptoutils.PEMEncode(cryptoutils.PrivateKeyPEMType, der), pubPEM, nil
	}
	pass, err := pf(true)
	if err != nil {
		return nil, nil, err
	}
	if pass == nil {
		return nil, nil, ErrNoPassphrase
	}
	// An empty passphrase still encrypts, as cosign does with
	// COSIGN_PASSWORD="": a plaintext key is asked for with a nil PassFunc.
	enc, err := encrypted.Encrypt(der, pass)
	if err != nil {
		return nil, nil, err
	}
	return cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, enc), pubPEM, nil
}

// ErrNoPassphrase: the private key is encrypted (or is to be) and no
// passphrase was given.
var ErrNoPassphrase = errors.New("the private key is encrypted and no passphrase was given: set COSIGN_PASSWORD (or VORDR_PASSPHRASE), or run on a terminal to be prompted")

// MarshalPublicKeyDER returns the DER SubjectPublicKeyInfo of pub.
func MarshalPublicKeyDER(pub crypto.PublicKey) ([]byte, error) {
	if p := mldsaOf(pub); p != nil {
		return marshalMLDSAPublic(p, pub.(sign.PublicKey))
	}
	return cryptoutils.MarshalPublicKeyToDER(pub)
}

// MarshalPublicKeyPEM returns pub as a PEM "PUBLIC KEY".
func MarshalPublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := MarshalPublicKeyDER(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// KeyID returns "sha256:<hex of DER SubjectPublicKeyInfo>" for pub.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := MarshalPublicKeyDER(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Signer is a loaded private key.
type Signer struct {
	signature.Signer
	ID     string
	Public crypto.PublicKey
}

// PublicKey is a loaded public key.
type PublicKey struct {
	signature.Verifier
	ID  string
	Key crypto.PublicKey
}

// IsMLDSA reports whether k is an ML-DSA key.
func (k *PublicKey) IsMLDSA() bool { return k != nil && IsMLDSA(k.Key) }

// Algorithm names k's algorithm.
func (k *PublicKey) Algorithm() Algorithm { return AlgorithmOf(k.Key) }

// ErrUnsupportedKey is returned for key types other than Ed25519, P-256 and
// ML-DSA-65/87.
var ErrUnsupportedKey = errors.New("keys: only Ed25519, ECDSA P-256, ML-DSA-65 and ML-DSA-87 keys are supported")

func checkType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey, *mldsa65.PublicKey, *mldsa87.PublicKey:
		return nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return nil
		}
	}
	return fmt.Errorf("%w (got %T)", ErrUnsupportedKey, pub)
}

// ParsePrivateKey loads a PEM private key (PKCS#8, SEC 1, or sigstore/cosign
// encrypted). pf is asked for the passphrase only if the key is encrypted.
func ParsePrivateKey(pemBytes []byte, pf PassFunc) (*Signer, error) {
	b, _ := pem.Decode(pemBytes)
	if b != nil && (b.Type == string(cryptoutils.EncryptedSigstorePrivateKeyPEMType) || b.Type == "ENCRYPTED COSIGN PRIVATE KEY") {
		// Decrypted here rather than by cryptoutils, which would hand the
		// DER to x509.ParsePKCS8PrivateKey: that knows no ML-DSA.
		if pf == nil {
			return nil, ErrNoPassphrase
		}
		pw, err := pf(false)
		if err != nil {
			return nil, err
		}
		if pw == nil {
			return nil, ErrNoPassphrase
		}
		der, err := encrypted.Decrypt(b.Bytes, pw)
		if err != nil {
			return nil, fmt.Errorf("keys: load private key: wrong passphrase (%w)", err)
		}
		return parsePKCS8(der)
	}
	if b != nil && b.Type == string(cryptoutils.PrivateKeyPEMType) && len(b.Headers) == 0 {
		return parsePKCS8(b.Bytes)
	}
	if b != nil && (strings.HasPrefix(b.Type, "ENCRYPTED ") || b.Headers["Proc-Type"] != "") {
		// cryptoutils would parse the ciphertext as a key without a
		// passphrase and fail with an ASN.1 error nobody can act on.
		inner := pf
		pf = func(confirm bool) ([]byte, error) {
			if inner == nil {
				return nil, ErrNoPassphrase
			}
			pw, err := inner(confirm)
			if err == nil && pw == nil {
				err = ErrNoPassphrase
			}
			return pw, err
		}
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, pf)
	if err != nil {
		if strings.Contains(err.Error(), "decryption failed") {
			return nil, fmt.Errorf("keys: load private key: wrong passphrase (%w)", err)
		}
		return nil, fmt.Errorf("keys: load private key: %w", err)
	}
	return newSigner(priv)
}

// parsePKCS8 loads a DER PKCS#8 private key of any supported type.
func parsePKCS8(der []byte) (*Signer, error) {
	p, sk, _, ok, err := parseMLDSAPrivate(der)
	switch {
	case err != nil:
		return nil, err
	case ok:
		pub := sk.Public()
		id, err := KeyID(pub)
		if err != nil {
			return nil, err
		}
		return &Signer{Signer: &mldsaSigner{mldsaVerifier: mldsaVerifier{p: p, pub: pub.(sign.PublicKey)}, sk: sk}, ID: id, Public: pub}, nil
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: load private key: %w", err)
	}
	return newSigner(priv)
}

func newSigner(priv crypto.PrivateKey) (*Signer, error) {
	cs, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w (got %T)", ErrUnsupportedKey, priv)
	}
	if err := checkType(cs.Public()); err != nil {
		return nil, err
	}
	s, err := signature.LoadSigner(priv, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	id, err := KeyID(cs.Public())
	if err != nil {
		return nil, err
	}
	return &Signer{Signer: s, ID: id, Public: cs.Public()}, nil
}

// LoadPrivateKey reads and parses a PEM private key file.
func LoadPrivateKey(path string, pf PassFunc) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePrivateKey(b, pf)
}

// ParsePublicKey loads a PEM public key (SubjectPublicKeyInfo).
func ParsePublicKey(pemBytes []byte) (*PublicKey, error) {
	if b, _ := pem.Decode(pemBytes); b != nil && b.Type == "PUBLIC KEY" {
		pub, ok, err := parseMLDSAPublic(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("keys: load public key: %w", err)
		}
		if ok {
			return NewPublicKey(pub)
		}
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("keys: load public key: %w", err)
	}
	return NewPublicKey(pub)
}

// NewPublicKey wraps an already parsed public key.
func NewPublicKey(pub crypto.PublicKey) (*PublicKey, error) {
	if err := checkType(pub); err != nil {
		return nil, err
	}
	if p := mldsaOf(pub); p != nil {
		id, err := KeyID(pub)
		if err != nil {
			return nil, err
		}
		return &PublicKey{Verifier: &mldsaVerifier{p: p, pub: pub.(sign.PublicKey)}, ID: id, Key: pub}, nil
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	id, err := KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &PublicKey{Verifier: v, ID: id, Key: pub}, nil
}

// LoadPublicKey reads and parses a PEM public key file.
func LoadPublicKey(path string) (*PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePublicKey(b)
}

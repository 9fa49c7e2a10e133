// Package keys generates and loads the signing keys of .ctp bundles: Ed25519
// (default) and ECDSA P-256, PEM encoded, through sigstore/sigstore's
// cryptoutils and signature packages. Key ids are
// "sha256:" + hex(SHA-256(DER SubjectPublicKeyInfo)).
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Algorithm names a key type.
type Algorithm string

const (
	Ed25519   Algorithm = "ed25519"
	ECDSAP256 Algorithm = "ecdsa-p256"
)

// PassFunc returns the passphrase of an encrypted private key; confirm asks
// for it twice when creating one. A nil func or nil passphrase means no
// encryption.
type PassFunc = cryptoutils.PassFunc

// Generate creates a key pair and returns PEM private and public keys. The
// private key is encrypted (sigstore's scrypt + secretbox format, the same one
// cosign uses) when pf returns a non-empty passphrase.
func Generate(alg Algorithm, pf PassFunc) (privPEM, pubPEM []byte, err error) {
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
		return nil, nil, fmt.Errorf("keys: unsupported algorithm %q (want %s or %s)", alg, Ed25519, ECDSAP256)
	}
	pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, nil, err
	}
	if pf == nil {
		privPEM, err = cryptoutils.MarshalPrivateKeyToPEM(priv)
		return privPEM, pubPEM, err
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
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, cryptoutils.StaticPasswordFunc(pass))
	if err != nil {
		return nil, nil, err
	}
	return cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der), pubPEM, nil
}

// ErrNoPassphrase: the private key is encrypted (or is to be) and no
// passphrase was given.
var ErrNoPassphrase = errors.New("the private key is encrypted and no passphrase was given: set COSIGN_PASSWORD (or VORDR_PASSPHRASE), or run on a terminal to be prompted")

// KeyID returns "sha256:<hex of DER SubjectPublicKeyInfo>" for pub.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
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

// ErrUnsupportedKey is returned for key types other than Ed25519 and P-256.
var ErrUnsupportedKey = errors.New("keys: only Ed25519 and ECDSA P-256 keys are supported")

func checkType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
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
	if b, _ := pem.Decode(pemBytes); b != nil && (strings.HasPrefix(b.Type, "ENCRYPTED ") || b.Headers["Proc-Type"] != "") {
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

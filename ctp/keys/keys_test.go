package keys

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

func TestGenerateAndLoad(t *testing.T) {
	for _, alg := range []Algorithm{Ed25519, ECDSAP256} {
		priv, pub, err := Generate(alg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(priv), "BEGIN PRIVATE KEY") {
			t.Errorf("%s: private key PEM type: %s", alg, priv)
		}
		s, err := ParsePrivateKey(priv, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParsePublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		// Key id = sha256 of the DER SubjectPublicKeyInfo, computed here
		// straight from the PEM.
		blk, _ := pem.Decode(pub)
		if _, err := x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(blk.Bytes)
		want := "sha256:" + hex.EncodeToString(sum[:])
		if s.ID != want || p.ID != want {
			t.Errorf("%s: ids %s / %s, want %s", alg, s.ID, p.ID, want)
		}
	}
}

func TestEncryptedKey(t *testing.T) {
	pass := cryptoutils.StaticPasswordFunc([]byte("correct horse"))
	priv, _, err := Generate(Ed25519, pass)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(priv), "ENCRYPTED SIGSTORE PRIVATE KEY") {
		t.Fatalf("not encrypted: %s", priv)
	}
	if _, err := ParsePrivateKey(priv, cryptoutils.StaticPasswordFunc([]byte("wrong"))); err == nil {
		t.Fatal("wrong passphrase accepted")
	}
	if _, err := ParsePrivateKey(priv, pass); err != nil {
		t.Fatal(err)
	}
}

func TestRejectsOtherKeys(t *testing.T) {
	_, pub, err := cryptoutils.GeneratePEMEncodedRSAKeyPair(2048, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePublicKey(pub); err == nil {
		t.Fatal("RSA key accepted")
	}
	if _, _, err := Generate("rsa", nil); err == nil {
		t.Fatal("unknown algorithm accepted")
	}
}

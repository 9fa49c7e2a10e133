package dsse_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/vordr-project/vordr/ctp/dsse"
)

// handPAE is written from the DSSE specification independently of dsse.PAE:
// PAE(type, body) = "DSSEv1" + SP + LEN(type) + SP + type + SP + LEN(body) + SP + body.
func handPAE(typ string, body []byte) []byte {
	return append([]byte(fmt.Sprintf("DSSEv1 %d %s %d ", len(typ), typ, len(body))), body...)
}

func TestPAEVector(t *testing.T) {
	// The example from the DSSE protocol document.
	got := string(dsse.PAE("http://example.com/HelloWorld", []byte("hello world")))
	want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
	if got != want {
		t.Fatalf("PAE = %q, want %q", got, want)
	}
}

// TestInteropIndependentSigner: envelopes signed with Go's crypto over a
// hand-written PAE verify with our verifier, and ours verify with Go's crypto.
func TestInteropIndependentSigner(t *testing.T) {
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}`)
	typ := dsse.PayloadTypeInToto

	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	type keypair struct {
		name     string
		pub      crypto.PublicKey
		priv     crypto.PrivateKey
		sign     func(msg []byte) []byte
		verifyFn func(msg, sig []byte) bool
	}
	kps := []keypair{
		{"ed25519", edPub, edPriv,
			func(m []byte) []byte { return ed25519.Sign(edPriv, m) },
			func(m, s []byte) bool { return ed25519.Verify(edPub, m, s) }},
		{"ecdsa-p256", &ecPriv.PublicKey, ecPriv,
			func(m []byte) []byte {
				h := sha256.Sum256(m)
				s, err := ecdsa.SignASN1(rand.Reader, ecPriv, h[:])
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			func(m, s []byte) bool { h := sha256.Sum256(m); return ecdsa.VerifyASN1(&ecPriv.PublicKey, h[:], s) }},
	}
	for _, kp := range kps {
		t.Run(kp.name, func(t *testing.T) {
			// Independent signer → our verifier.
			env := &dsse.Envelope{PayloadType: typ, Payload: base64.StdEncoding.EncodeToString(payload),
				Signatures: []dsse.Signature{{KeyID: "k", Sig: base64.StdEncoding.EncodeToString(kp.sign(handPAE(typ, payload)))}}}
			v, err := signature.LoadVerifier(kp.pub, crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if err := env.VerifySignature(v, env.Signatures[0]); err != nil {
				t.Fatalf("independent signature rejected: %v", err)
			}
			// Our signer → independent verifier.
			s, err := signature.LoadSigner(kp.priv, crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			mine := dsse.New(typ, payload)
			if err := mine.Sign(s, "k"); err != nil {
				t.Fatal(err)
			}
			raw, _ := base64.StdEncoding.DecodeString(mine.Signatures[0].Sig)
			if !kp.verifyFn(handPAE(typ, payload), raw) {
				t.Fatal("our signature rejected by the independent verifier")
			}
			// A signature over a different payload, or under a different
			// payload type, fails.
			other := dsse.New(typ, []byte(`{}`))
			other.Signatures = mine.Signatures
			if err := other.VerifySignature(v, other.Signatures[0]); !errors.Is(err, dsse.ErrVerify) {
				t.Fatalf("different payload: %v", err)
			}
			retyped := *mine
			retyped.PayloadType = "application/json"
			if err := retyped.VerifySignature(v, retyped.Signatures[0]); !errors.Is(err, dsse.ErrVerify) {
				t.Fatalf("different payload type: %v", err)
			}
		})
	}
}

func TestStrictBase64(t *testing.T) {
	env := dsse.New("t", []byte("ab"))
	// "YWI=" is "ab"; "YWJ=" decodes to the same bytes with lax decoding.
	env.Payload = "YWJ="
	if _, err := env.DecodePayload(); err == nil {
		t.Fatal("non-canonical base64 accepted")
	}
}

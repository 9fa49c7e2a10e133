package dsse_test

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/vordr-project/vordr/ctp/dsse"
	"github.com/vordr-project/vordr/ctp/keys"
)

// TestMLDSAEnvelope: ML-DSA signs the PAE itself (pure ML-DSA, empty
// context, no pre-hash): a DSSE signature made through ctp/keys verifies
// with circl's bare Verify over a hand-written PAE, a signature made with
// circl's bare SignTo over the hand-written PAE verifies through dsse, and
// a signature with a context string, or over the payload alone, does not.
func TestMLDSAEnvelope(t *testing.T) {
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[]}`)
	typ := dsse.PayloadTypeInToto
	pae := handPAE(typ, payload)
	for _, alg := range []keys.Algorithm{keys.MLDSA65, keys.MLDSA87} {
		t.Run(string(alg), func(t *testing.T) {
			privPEM, pubPEM, err := keys.Generate(alg, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := keys.ParsePrivateKey(privPEM, nil)
			if err != nil {
				t.Fatal(err)
			}
			p, err := keys.ParsePublicKey(pubPEM)
			if err != nil {
				t.Fatal(err)
			}
			env := dsse.New(typ, payload)
			if err := env.Sign(s, s.ID); err != nil {
				t.Fatal(err)
			}
			if err := env.VerifySignature(p, env.Signatures[0]); err != nil {
				t.Fatal(err)
			}
			raw, err := dsse.DecodeSig(env.Signatures[0])
			if err != nil {
				t.Fatal(err)
			}
			var bare func(msg, ctx, sig []byte) bool
			switch pk := p.Key.(type) {
			case *mldsa65.PublicKey:
				bare = func(m, c, sg []byte) bool { return mldsa65.Verify(pk, m, c, sg) }
			case *mldsa87.PublicKey:
				bare = func(m, c, sg []byte) bool { return mldsa87.Verify(pk, m, c, sg) }
			default:
				t.Fatalf("public key type %T", p.Key)
			}
			if !bare(pae, nil, raw) {
				t.Fatal("circl does not verify the DSSE signature over the hand-written PAE with the empty context")
			}
			if bare(payload, nil, raw) || bare(pae, []byte("dsse"), raw) {
				t.Fatal("the signature verifies over the bare payload or with a context")
			}

			// The other direction: a bare circl key and signature.
			var pub2 any
			var sig2, ctxSig []byte
			if alg == keys.MLDSA65 {
				pk, sk, _ := mldsa65.GenerateKey(nil)
				sig2, ctxSig = make([]byte, mldsa65.SignatureSize), make([]byte, mldsa65.SignatureSize)
				_ = mldsa65.SignTo(sk, pae, nil, true, sig2)
				_ = mldsa65.SignTo(sk, pae, []byte("ctx"), true, ctxSig)
				pub2 = pk
			} else {
				pk, sk, _ := mldsa87.GenerateKey(nil)
				sig2, ctxSig = make([]byte, mldsa87.SignatureSize), make([]byte, mldsa87.SignatureSize)
				_ = mldsa87.SignTo(sk, pae, nil, true, sig2)
				_ = mldsa87.SignTo(sk, pae, []byte("ctx"), true, ctxSig)
				pub2 = pk
			}
			k2, err := keys.NewPublicKey(pub2)
			if err != nil {
				t.Fatal(err)
			}
			env2 := dsse.New(typ, payload)
			env2.Signatures = []dsse.Signature{{KeyID: k2.ID, Sig: b64(sig2)}, {KeyID: k2.ID, Sig: b64(ctxSig)}}
			if err := env2.VerifySignature(k2, env2.Signatures[0]); err != nil {
				t.Fatalf("bare circl signature over the PAE: %v", err)
			}
			if err := env2.VerifySignature(k2, env2.Signatures[1]); !errors.Is(err, dsse.ErrVerify) {
				t.Fatalf("signature with a context string: %v", err)
			}
			// A signature by one ML-DSA key does not verify with another.
			if err := env.VerifySignature(k2, env.Signatures[0]); !errors.Is(err, dsse.ErrVerify) {
				t.Fatalf("other key: %v", err)
			}
		})
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

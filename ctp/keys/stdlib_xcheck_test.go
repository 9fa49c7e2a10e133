package keys

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudflare/circl/sign"

	"github.com/vordr-project/vordr/ctp/dsse"
)

type xvec struct {
	Set  string `json:"set"`
	Seed string `json:"seed"`
	PK   string `json:"pk"`
	Msg  string `json:"msg"`
	Sig  string `json:"sig"`
}

const xcheckPayload = `{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"https://example.com/xcheck"}`

// TestMLDSAStdlibExchange is one side of hack/mldsa-stdlib-xcheck.sh, which
// checks vordr's ML-DSA against the Go standard library's (an
// implementation independent of circl that a module cannot import). Without
// VORDR_XCHECK_DIR it does nothing.
func TestMLDSAStdlibExchange(t *testing.T) {
	dir := os.Getenv("VORDR_XCHECK_DIR")
	if dir == "" {
		t.Skip("run hack/mldsa-stdlib-xcheck.sh")
	}
	env := dsse.New(dsse.PayloadTypeInToto, []byte(xcheckPayload))
	pae := dsse.PAE(dsse.PayloadTypeInToto, []byte(xcheckPayload))
	data, err := os.ReadFile(filepath.Join(dir, "stdlib.json"))
	switch {
	case err == nil:
		// Step 3: verify what the standard library signed.
		var in []xvec
		if err := json.Unmarshal(data, &in); err != nil {
			t.Fatal(err)
		}
		if len(in) != 2 {
			t.Fatalf("%d stdlib vectors, want 2", len(in))
		}
		for _, v := range in {
			if v.Msg != hex.EncodeToString(pae) {
				t.Fatalf("%s: the stdlib signed another message", v.Set)
			}
			p, err := ParsePublicKey(spkiOf(v.Set, unhex(t, v.PK)))
			if err != nil {
				t.Fatal(err)
			}
			sig := dsse.Signature{KeyID: p.ID, Sig: base64.StdEncoding.EncodeToString(unhex(t, v.Sig))}
			if err := env.VerifySignature(p, sig); err != nil {
				t.Errorf("%s: vordr does not verify the stdlib's signature: %v", v.Set, err)
			}
		}
		t.Logf("xcheck: vordr verified %d signatures made by the Go standard library", len(in))
	case errors.Is(err, fs.ErrNotExist):
		// Step 1: sign for the standard library to verify.
		var out []xvec
		for _, alg := range []Algorithm{MLDSA65, MLDSA87} {
			priv, _, err := Generate(alg, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ParsePrivateKey(priv, nil)
			if err != nil {
				t.Fatal(err)
			}
			e := dsse.New(dsse.PayloadTypeInToto, []byte(xcheckPayload))
			if err := e.Sign(s, s.ID); err != nil {
				t.Fatal(err)
			}
			raw, err := dsse.DecodeSig(e.Signatures[0])
			if err != nil {
				t.Fatal(err)
			}
			blk, _ := pem.Decode(priv)
			pk, err := s.Public.(sign.PublicKey).MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, xvec{Set: string(alg), Seed: hex.EncodeToString(blk.Bytes[22:]), PK: hex.EncodeToString(pk),
				Msg: hex.EncodeToString(pae), Sig: hex.EncodeToString(raw)})
		}
		b, _ := json.MarshalIndent(out, "", " ")
		if err := os.WriteFile(filepath.Join(dir, "vordr.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("xcheck: wrote %d vordr signatures", len(out))
	default:
		t.Fatal(err)
	}
}

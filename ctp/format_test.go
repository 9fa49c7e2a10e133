package ctp

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"testing"

	"github.com/vordr-project/vordr/ctp/keys"
)

// retarHeader applies fn to the tar header block at off and recomputes its
// checksum, so only what fn changed differs.
func retarHeader(data []byte, off int, fn func(blk []byte)) []byte {
	out := append([]byte(nil), data...)
	blk := out[off : off+512]
	fn(blk)
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return out
}

// §1 decisions: a bundle is POSIX ustar with typeflag '0' for files. GNU
// magic and typeflag NUL are second encodings of the same entries that
// archive/tar accepts; a bundle that uses them is refused, so one content
// has one encoding and every byte means something.
func TestUstarOnly(t *testing.T) {
	f := newFixture(t)
	good, err := os.ReadFile(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(good[257:265]); got != "ustar\x0000" {
		t.Fatalf("the writer's magic is %q, want POSIX ustar", got)
	}
	for _, tc := range []struct {
		name string
		fn   func(blk []byte)
	}{
		{"GNU magic", func(blk []byte) { copy(blk[257:265], "ustar  \x00") }},
		{"typeflag NUL", func(blk []byte) { blk[156] = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifyBytes(retarHeader(good, 0, tc.fn), f.policy)
			if CodeOf(err) != CodeMalformedBundle || ReasonOf(err) != ReasonTarFormat {
				t.Errorf("%s: %v, want %s/%s", tc.name, err, CodeMalformedBundle, ReasonTarFormat)
			}
		})
	}
}

// §1 decision on gzip framing: header fields that carry data (name,
// comment, extra) are refused; MTIME, XFL and OS do not change the archive
// and are outside the byte-flip promise, which covers the tar. A bundle
// whose gzip MTIME changed still verifies (its file digest differs).
func TestGzipHeader(t *testing.T) {
	f := newFixture(t)
	good, err := os.ReadFile(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	z := gz(t, good)
	if _, err := verifyBytes(z, f.policy); err != nil {
		t.Fatalf("gzip bundle: %v", err)
	}
	mtime := append([]byte(nil), z...)
	mtime[4] ^= 0x5a // MTIME
	mtime[9] = 3     // OS: Unix
	if _, err := verifyBytes(mtime, f.policy); err != nil {
		t.Errorf("gzip MTIME/OS changed: %v, want accepted (outside the promise)", err)
	}
	var named bytes.Buffer
	w := gzip.NewWriter(&named)
	w.Name = "app.tar"
	w.Write(good)
	w.Close()
	if _, err := verifyBytes(named.Bytes(), f.policy); CodeOf(err) != CodeMalformedBundle || ReasonOf(err) != ReasonCompression {
		t.Errorf("gzip with a name field: %v, want %s/%s", err, CodeMalformedBundle, ReasonCompression)
	}
}

// §3.1 decision: the same signature twice in one envelope is
// MALFORMED_BUNDLE/DUPLICATE_ENTRY (it would count one signer twice).
func TestDuplicateSignature(t *testing.T) {
	f := newFixture(t)
	data, _ := os.ReadFile(f.bundle)
	entries := readRaw(t, data)
	att := cloneAttestations(mustOpen(t, data).Attestations())
	att.Attestations[0].Signatures = append(att.Attestations[0].Signatures, att.Attestations[0].Signatures[0])
	entries[len(entries)-1].data = mustCanonical(t, att)
	_, err := verifyBytes(writeRaw(t, entries), f.policy)
	if CodeOf(err) != CodeMalformedBundle || ReasonOf(err) != ReasonDuplicateEntry {
		t.Fatalf("duplicate signature: %v, want %s/%s", err, CodeMalformedBundle, ReasonDuplicateEntry)
	}
}

// §3.1 decision: ECDSA signatures are ASN.1 DER only. The same signature as
// raw r||s (which sigstore's verifier also accepts) is refused.
func TestECDSADEROnly(t *testing.T) {
	f := newFixture(t)
	if err := Sign(context.Background(), f.bundle, f.bundle, []*keys.Signer{f.signer2}, Options{}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(f.bundle)
	pol := f.loadPolicy(t, "version = 1\nthreshold = 1\n[[signers]]\nname = \"second\"\nkey = \"second.pub\"\n")
	if _, err := verifyBytes(data, pol); err != nil {
		t.Fatalf("DER-signed bundle: %v", err)
	}
	entries := readRaw(t, data)
	att := cloneAttestations(mustOpen(t, data).Attestations())
	for i := range att.Attestations {
		for j, s := range att.Attestations[i].Signatures {
			if s.KeyID != f.signer2.ID {
				continue
			}
			der, err := base64.StdEncoding.DecodeString(s.Sig)
			if err != nil {
				t.Fatal(err)
			}
			var v struct{ R, S *big.Int }
			if _, err := asn1.Unmarshal(der, &v); err != nil {
				t.Fatal(err)
			}
			raw := make([]byte, 64)
			v.R.FillBytes(raw[:32])
			v.S.FillBytes(raw[32:])
			att.Attestations[i].Signatures[j].Sig = base64.StdEncoding.EncodeToString(raw)
		}
	}
	entries[len(entries)-1].data = mustCanonical(t, att)
	if _, err := verifyBytes(writeRaw(t, entries), pol); err == nil {
		t.Fatal("a bundle with raw r||s ECDSA signatures verified")
	}
}

// §3.1 decision on unknown members: DSSE says consumers ignore fields they
// do not know, but bundle.json is vordr's own canonical container, where no
// byte may be meaningless (§1, §5): an unknown member in an envelope or a
// signature object (e.g. a certificate a DSSE producer added) is refused as
// SYNTAX. Such producers' envelopes are to be accepted as sigstore bundles,
// not smuggled into a .ctp.
func TestUnknownMembersRefused(t *testing.T) {
	f := newFixture(t)
	data, _ := os.ReadFile(f.bundle)
	entries := readRaw(t, data)
	for _, where := range []string{"envelope", "signature"} {
		var doc map[string]any
		if err := json.Unmarshal(entries[len(entries)-1].data, &doc); err != nil {
			t.Fatal(err)
		}
		env := doc["attestations"].([]any)[0].(map[string]any)
		if where == "envelope" {
			env["cert"] = "x"
		} else {
			env["signatures"].([]any)[0].(map[string]any)["cert"] = "x"
		}
		es := readRaw(t, data)
		es[len(es)-1].data = mustCanonical(t, doc)
		_, err := verifyBytes(writeRaw(t, es), f.policy)
		if CodeOf(err) != CodeMalformedBundle || ReasonOf(err) != ReasonSyntax {
			t.Errorf("unknown member in the %s: %v, want %s/%s", where, err, CodeMalformedBundle, ReasonSyntax)
		}
	}
}

package tlog

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

func TestCheckpointAndInclusion(t *testing.T) {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "example.com/log")
	_, otherSkey := func() (string, string) { s, v, _ := note.GenerateKey(rand.Reader, "example.com/log"); return v, s }()
	k, err := ParseLogKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	tree := testonly.New(rfc6962.DefaultHasher)
	leaves := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d"), []byte("e")}
	tree.AppendData(leaves...)
	cp := Checkpoint{Origin: "example.com/log", Size: tree.Size(), Hash: tree.Hash()}
	signed, err := SignCheckpoint(cp, skey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.OpenCheckpoint(signed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range leaves {
		proof, _ := tree.InclusionProof(uint64(i), tree.Size())
		if err := VerifyInclusion(leaves[i], uint64(i), got, proof); err != nil {
			t.Errorf("leaf %d: %v", i, err)
		}
		if err := VerifyInclusion([]byte("x"), uint64(i), got, proof); !errors.Is(err, ErrInclusion) {
			t.Errorf("wrong leaf %d: %v", i, err)
		}
	}
	if err := VerifyInclusion(leaves[0], 9, got, nil); !errors.Is(err, ErrInclusion) {
		t.Error("index outside tree accepted")
	}
	forged, _ := SignCheckpoint(cp, otherSkey)
	if _, err := k.OpenCheckpoint(forged); !errors.Is(err, ErrUntrustedCheckpoint) {
		t.Errorf("checkpoint by another key: %v", err)
	}
	for _, body := range []string{"example.com/log\n5\n", "example.com/log\n05\nAAAA\n", "example.com/log\nx\nAAAA\n", "o\n1\n" + "!!" + "\n"} {
		if _, err := ParseCheckpoint(body); !errors.Is(err, ErrCheckpointFormat) {
			t.Errorf("%q: %v", body, err)
		}
	}
	if string(cp.Marshal()) != "example.com/log\n5\n"+encodeB64(cp.Hash)+"\n" {
		t.Errorf("marshal %q", cp.Marshal())
	}
}

// TestNonCanonicalSignatureRejected: changing only the unused low bits of a
// signature's last base64 character leaves the decoded signature valid; the
// checkpoint must be rejected all the same (found by the byte-flip test).
func TestNonCanonicalSignatureRejected(t *testing.T) {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "example.com/log")
	k, err := ParseLogKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignCheckpoint(Checkpoint{Origin: "example.com/log", Size: 1, Hash: make([]byte, 32)}, skey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.OpenCheckpoint(signed); err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := append([]byte(nil), signed...)
	end := bytes.LastIndexByte(b, '\n') // signature line ends here
	j := end - 1
	for b[j] == '=' {
		j--
	}
	b[j] = alphabet[strings.IndexByte(alphabet, b[j])^1] // an unused low bit
	if _, err := k.OpenCheckpoint(b); !errors.Is(err, ErrCheckpointFormat) {
		t.Fatalf("non-canonical signature: %v, want ErrCheckpointFormat", err)
	}
}

package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vordr-project/vordr/ctp/keys"
)

func writeKey(t *testing.T, dir, name string, alg keys.Algorithm) string {
	t.Helper()
	_, pub, err := keys.Generate(alg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := keys.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k.ID
}

func TestHybridSignerPolicy(t *testing.T) {
	dir := t.TempDir()
	edID := writeKey(t, dir, "ed.pub", keys.Ed25519)
	pqID := writeKey(t, dir, "pq.pub", keys.MLDSA87)
	writeKey(t, dir, "pq65.pub", keys.MLDSA65)
	writeKey(t, dir, "ec.pub", keys.ECDSAP256)

	p, err := Parse([]byte("version = 1\n[[signers]]\nname = \"release\"\nkey = \"ed.pub\"\npq_key = \"pq.pub\"\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Signers[0]
	if !s.Hybrid() || s.KeyID != edID || s.PQKeyID != pqID || s.PQResolved == nil || !s.PQResolved.IsMLDSA() {
		t.Fatalf("signer %+v", s)
	}
	if !strings.Contains(s.String(), edID+" + "+pqID) {
		t.Errorf("String() = %s", s.String())
	}
	// ML-DSA-only signer, ECDSA + ML-DSA-65 hybrid, and ids only.
	for _, ok := range []string{
		"[[signers]]\nkey = \"pq.pub\"\n",
		"[[signers]]\nkey = \"ec.pub\"\npq_key = \"pq65.pub\"\n",
		"[[signers]]\nkey_id = \"" + edID + "\"\npq_key_id = \"" + pqID + "\"\n",
		"[[signers]]\nkey = \"ed.pub\"\npq_key_id = \"" + pqID + "\"\n",
	} {
		if _, err := Parse([]byte("version = 1\n"+ok), dir); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}

	for _, c := range []struct{ text, want string }{
		{"[[signers]]\nkey = \"ed.pub\"\npq_key = \"ec.pub\"\n", "pq_key must be an ML-DSA key (got ecdsa-p256)"},
		{"[[signers]]\nkey = \"pq65.pub\"\npq_key = \"pq.pub\"\n", "must be a classic key"},
		{"[[signers]]\nkey = \"ed.pub\"\npq_key = \"pq.pub\"\npq_public_key = \"x\"\n", "give either pq_key or pq_public_key"},
		{"[[signers]]\nkey = \"ed.pub\"\npq_key = \"pq.pub\"\npq_key_id = \"" + edID + "\"\n", "pq_key_id " + edID + " does not match"},
		{"[[signers]]\nkey = \"ed.pub\"\npq_key_id = \"sha256:zz\"\n", "pq_key_id must be sha256:"},
		{"[[signers]]\nkey = \"ed.pub\"\npq_key = \"missing.pub\"\n", "cannot read key"},
		{"[[signers]]\nkey = \"ed.pub\"\npq_key = \"pq.pub\"\n[[signers]]\nkey = \"pq.pub\"\n", "listed twice"},
		{"[[signers]]\npq_key = \"pq.pub\"\n", "a signer needs key, public_key or key_id"},
		// Threshold counts signers: one hybrid signer is one, not two.
		{"threshold = 2\n[[signers]]\nkey = \"ed.pub\"\npq_key = \"pq.pub\"\n", "threshold 2 is more than the 1 signers"},
	} {
		_, err := Parse([]byte("version = 1\n"+c.text), dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.text, err, c.want)
		}
	}
}

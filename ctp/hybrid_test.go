package ctp

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vordr-project/vordr/ctp/dsse"
	"github.com/vordr-project/vordr/ctp/internal/testlog"
	"github.com/vordr-project/vordr/ctp/keys"
)

// hybridFixture packs bundles signed by an Ed25519 key, an ML-DSA-87 key or
// both, and writes their public keys beside the policies.
type hybridFixture struct {
	dir          string
	ed, pq       *keys.Signer
	both, edOnly string
	pqOnly       string
}

func newHybridFixture(t *testing.T) *hybridFixture {
	t.Helper()
	h := &hybridFixture{dir: t.TempDir()}
	var edPub, pqPub []byte
	h.ed, edPub = newSigner(t, keys.Ed25519)
	h.pq, pqPub = newSigner(t, keys.MLDSA87)
	for name, b := range map[string][]byte{"ed.pub": edPub, "pq.pub": pqPub} {
		if err := os.WriteFile(filepath.Join(h.dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := smallRootfs(t)
	pack := func(name string, signers ...*keys.Signer) string {
		out := filepath.Join(h.dir, name)
		if _, err := Pack(context.Background(), root, out, PackOptions{Name: "app", Version: "1.0.0", ImageRef: "example.com/app:1.0.0",
			Created: testTime, Signers: signers}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	h.both = pack("both.ctp", h.ed, h.pq)
	h.edOnly = pack("ed.ctp", h.ed)
	h.pqOnly = pack("pq.ctp", h.pq)
	return h
}

const hybridPolicy = `version = 1
required_predicates = ["https://slsa.dev/provenance/v1"]

[[signers]]
name = "release"
key = "ed.pub"
pq_key = "pq.pub"
`

func (h *hybridFixture) policy(t *testing.T, text string) *fixture {
	f := &fixture{dir: h.dir}
	f.policy = f.loadPolicy(t, text)
	return f
}

func TestHybridSigner(t *testing.T) {
	h := newHybridFixture(t)
	pol := h.policy(t, hybridPolicy).policy

	res, err := verifyFile(h.both, pol)
	if err != nil {
		t.Fatalf("both signatures: %v", err)
	}
	valid := map[string]bool{}
	for _, s := range res.Signers {
		if s.Status == "valid" {
			valid[s.KeyID] = true
		}
	}
	if !valid[h.ed.ID] || !valid[h.pq.ID] {
		t.Errorf("result signers %+v: want both halves valid", res.Signers)
	}

	for name, c := range map[string]struct{ bundle, missing string }{
		"ed25519 only": {h.edOnly, "no valid ML-DSA signature by " + h.pq.ID},
		"ml-dsa only":  {h.pqOnly, "no valid classic signature by " + h.ed.ID},
	} {
		_, err := verifyFile(c.bundle, pol)
		if CodeOf(err) != CodeThresholdNotMet || !strings.Contains(err.Error(), c.missing) {
			t.Errorf("%s: got %v, want THRESHOLD_NOT_MET naming %q", name, err, c.missing)
		}
	}
}

func TestHybridTamperedMLDSA(t *testing.T) {
	h := newHybridFixture(t)
	pol := h.policy(t, hybridPolicy).policy
	data, _ := os.ReadFile(h.both)
	entries := readRaw(t, data)
	att := cloneAttestations(mustOpen(t, data).Attestations())
	n := 0
	for i := range att.Attestations {
		for j, sig := range att.Attestations[i].Signatures {
			if sig.KeyID != h.pq.ID {
				continue
			}
			// Flip one bit of the signature (re-encoded, so the bundle
			// stays well-formed and only the signature is wrong).
			raw, err := dsse.DecodeSig(sig)
			if err != nil {
				t.Fatal(err)
			}
			raw[100] ^= 1
			att.Attestations[i].Signatures[j].Sig = base64.StdEncoding.EncodeToString(raw)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no ML-DSA signature in the bundle")
	}
	entries[len(entries)-1].data = mustCanonical(t, att)
	_, err := verifyBytes(writeRaw(t, entries), pol)
	if CodeOf(err) != CodeInvalidSignature {
		t.Fatalf("got %v, want INVALID_SIGNATURE", err)
	}
}

func TestMLDSAOnlySigner(t *testing.T) {
	h := newHybridFixture(t)
	pol := h.policy(t, `version = 1
required_predicates = ["https://slsa.dev/provenance/v1"]

[[signers]]
name = "pq"
key = "pq.pub"
`).policy
	for _, b := range []string{h.pqOnly, h.both} {
		if _, err := verifyFile(b, pol); err != nil {
			t.Errorf("%s: %v", filepath.Base(b), err)
		}
	}
	if _, err := verifyFile(h.edOnly, pol); CodeOf(err) != CodeUnknownKey {
		t.Errorf("Ed25519 only under an ML-DSA-only policy: got %v, want UNKNOWN_KEY", err)
	}
}

// TestHybridKeyIDOnly: a hybrid signer given by key ids, its keys supplied
// at verification (as `vordr ctp verify --key` does); an ML-DSA key offered
// for the classic half is not used.
func TestHybridKeyIDOnly(t *testing.T) {
	h := newHybridFixture(t)
	pol := h.policy(t, `version = 1
[[signers]]
key_id = "`+h.ed.ID+`"
pq_key_id = "`+h.pq.ID+`"
`).policy
	edK, _ := keys.NewPublicKey(h.ed.Public)
	pqK, _ := keys.NewPublicKey(h.pq.Public)
	open := func(path string) *Bundle {
		b, err := OpenFile(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	if _, err := Verify(context.Background(), open(h.both), pol, VerifyOptions{Now: testTime, Keys: []*keys.PublicKey{edK, pqK}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), open(h.both), pol, VerifyOptions{Now: testTime, Keys: []*keys.PublicKey{edK}}); CodeOf(err) != CodeThresholdNotMet {
		t.Fatalf("ML-DSA key not supplied: got %v, want THRESHOLD_NOT_MET", err)
	}
}

// TestHybridLogQuorum: with log_quorum 1 a hybrid signer needs both its
// signatures in a trusted log.
func TestHybridLogQuorum(t *testing.T) {
	h := newHybridFixture(t)
	l := testlog.New(t, "log.example.com/pq")
	text := strings.Replace(hybridPolicy, "version = 1\n", "version = 1\nlog_quorum = 1\n", 1) + `
[[logs]]
public_key = "` + l.VKey + `"
`
	pol := h.policy(t, text).policy

	// Log only the Ed25519 half.
	data, _ := os.ReadFile(h.both)
	b := mustOpen(t, data)
	edSigs := map[string]bool{}
	for _, env := range b.Attestations().Attestations {
		for _, sig := range env.Signatures {
			if sig.KeyID == h.ed.ID {
				sd, err := SignatureDigest(sig)
				if err != nil {
					t.Fatal(err)
				}
				edSigs[sd] = true
			}
		}
	}
	half := filepath.Join(h.dir, "half.ctp")
	if err := os.WriteFile(half, data, 0o644); err != nil {
		t.Fatal(err)
	}
	logSome(t, half, l, func(sd string) bool { return edSigs[sd] })
	if _, err := verifyFile(half, pol); CodeOf(err) != CodeInsufficientLogCoverage {
		t.Fatalf("only the Ed25519 half logged: got %v, want INSUFFICIENT_LOG_COVERAGE", err)
	}
	logSome(t, h.both, l, func(string) bool { return true })
	if _, err := verifyFile(h.both, pol); err != nil {
		t.Fatalf("both halves logged: %v", err)
	}
}

// logSome is fixture.logAll for the signatures keep selects.
func logSome(t *testing.T, bundle string, l *testlog.Log, keep func(sd string) bool) {
	t.Helper()
	b, err := OpenFile(bundle, Options{})
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := b.Leaves(testTime.Unix())
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	var entries []LogEntry
	for _, lf := range leaves {
		if !keep(lf.Signature) {
			continue
		}
		idx := l.Append(lf.Leaf)
		hashes, root, cp := l.Proof(idx)
		entries = append(entries, LogEntry{LogID: l.Key.ID, LogIndex: idx, IntegratedTime: lf.IntegratedTime, Signature: lf.Signature,
			InclusionProof: InclusionProof{TreeSize: l.Size(), RootHash: root, Hashes: hashes}, Checkpoint: cp})
	}
	if len(entries) == 0 {
		t.Fatal("nothing to log")
	}
	if err := AttachLogEntries(context.Background(), bundle, bundle, entries, Options{}); err != nil {
		t.Fatal(err)
	}
}

package ctp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/vordr-project/vordr/ctp/canonical"
	"github.com/vordr-project/vordr/ctp/dsse"
	"github.com/vordr-project/vordr/ctp/keys"
)

// signAll adds a signature by every signer to every attestation, skipping
// keys that already signed an envelope, so signing twice is harmless.
func signAll(att *AttestationBundle, signers []*keys.Signer) error {
	for i := range att.Attestations {
		env := &att.Attestations[i]
		for _, s := range signers {
			if hasKey(env, s.ID) {
				continue
			}
			if err := env.Sign(s, s.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasKey(env *dsse.Envelope, id string) bool {
	for _, sig := range env.Signatures {
		if sig.KeyID == id {
			return true
		}
	}
	return false
}

func cloneAttestations(a AttestationBundle) AttestationBundle {
	out := a
	out.Attestations = make([]dsse.Envelope, len(a.Attestations))
	for i, env := range a.Attestations {
		env.Signatures = append([]dsse.Signature{}, env.Signatures...)
		out.Attestations[i] = env
	}
	out.LogEntries = append([]LogEntry{}, a.LogEntries...)
	out.SigstoreBundles = append([]string(nil), a.SigstoreBundles...)
	return out
}

// Sign adds DSSE signatures by signers to every attestation of the bundle at
// in and writes the result to out (which may be in). Earlier signatures are
// kept. The bundle's blobs are verified first: signing vouches for them.
func Sign(ctx context.Context, in, out string, signers []*keys.Signer, opts Options) error {
	return rewriteAttestations(ctx, in, out, opts, func(_ *Bundle, att *AttestationBundle) error {
		return signAll(att, signers)
	})
}

// rewriteAttestations opens the bundle at in, verifies its blobs (whatever
// is added vouches for them), lets change edit a copy of its attestations,
// and writes the bundle with them to out (which may be in), compressed as
// in was.
func rewriteAttestations(ctx context.Context, in, out string, opts Options, change func(b *Bundle, att *AttestationBundle) error) error {
	b, err := OpenFile(in, opts)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.VerifyBlobs(ctx); err != nil {
		return err
	}
	att := cloneAttestations(b.attest)
	if err := change(b, &att); err != nil {
		return err
	}
	aj, err := canonical.Marshal(att)
	if err != nil {
		return err
	}
	if int64(len(aj)) > DefaultLimits.MaxAttestationJSON {
		return fmt.Errorf("attestations would be %d bytes, limit %d", len(aj), DefaultLimits.MaxAttestationJSON)
	}
	comp, err := CompressionOf(in)
	if err != nil {
		return err
	}
	return b.rewrite(out, comp, aj)
}

// SignatureDigest names a signature in log entries:
// sha256:<hex of the raw signature bytes>.
func SignatureDigest(sig dsse.Signature) (string, error) {
	raw, err := dsse.DecodeSig(sig)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Leaf returns the canonical-JSON log leaf for signature sig of env, as it
// must be appended to a transparency log to cover that signature.
func Leaf(env *dsse.Envelope, sig dsse.Signature, integratedTime int64) ([]byte, error) {
	payload, err := env.DecodePayload()
	if err != nil {
		return nil, err
	}
	sd, err := SignatureDigest(sig)
	if err != nil {
		return nil, err
	}
	ps := sha256.Sum256(payload)
	return canonical.Marshal(LogLeaf{
		Kind: LogLeafKind, IntegratedTime: integratedTime, KeyID: sig.KeyID,
		PayloadType: env.PayloadType, PayloadDigest: "sha256:" + hex.EncodeToString(ps[:]), SignatureDigest: sd,
	})
}

// PendingLeaf is a leaf to submit to a log for one signature of a bundle.
type PendingLeaf struct {
	Signature      string `json:"signature"`
	KeyID          string `json:"keyid"`
	PredicateType  string `json:"predicateType,omitempty"`
	IntegratedTime int64  `json:"integratedTime"`
	Leaf           []byte `json:"leaf"` // base64 in JSON
}

// Leaves lists the log leaves for every signature in the bundle, stamped with
// integratedTime (Unix seconds).
func (b *Bundle) Leaves(integratedTime int64) ([]PendingLeaf, error) {
	var out []PendingLeaf
	for i := range b.attest.Attestations {
		env := &b.attest.Attestations[i]
		pt := ""
		if st, err := statementOf(env); err == nil {
			pt = st.PredicateType
		}
		for _, sig := range env.Signatures {
			leaf, err := Leaf(env, sig, integratedTime)
			if err != nil {
				return nil, malformedErr(ReasonInvalidField, BundleJSONPath, err)
			}
			sd, _ := SignatureDigest(sig)
			out = append(out, PendingLeaf{Signature: sd, KeyID: sig.KeyID, PredicateType: pt, IntegratedTime: integratedTime, Leaf: leaf})
		}
	}
	return out, nil
}

// statementOf decodes an envelope's statement without verifying anything.
func statementOf(env *dsse.Envelope) (*Statement, error) {
	payload, err := env.DecodePayload()
	if err != nil {
		return nil, err
	}
	var st Statement
	if err := canonical.Unmarshal(payload, &st, canonical.Options{}); err != nil {
		return nil, err
	}
	return &st, nil
}

func isLowerHex(s string, n int) bool {
	return len(s) == n && strings.Trim(s, "0123456789abcdef") == ""
}

// AttachLogEntries adds log entries (from an external log) to the bundle at
// in, writing out. Each entry must name a signature of the bundle and be
// well formed; proofs are checked by Verify against the policy's logs, since
// which logs to trust is the verifier's choice. Identical entries are stored
// once.
func AttachLogEntries(ctx context.Context, in, out string, entries []LogEntry, opts Options) error {
	return rewriteAttestations(ctx, in, out, opts, func(b *Bundle, att *AttestationBundle) error {
		return addLogEntries(b, att, entries)
	})
}

func addLogEntries(b *Bundle, att *AttestationBundle, entries []LogEntry) error {
	sigs := map[string]bool{}
	for _, env := range b.attest.Attestations {
		for _, s := range env.Signatures {
			d, err := SignatureDigest(s)
			if err != nil {
				return malformedErr(ReasonInvalidField, BundleJSONPath, err)
			}
			sigs[d] = true
		}
	}
	have := map[string]bool{}
	for _, e := range att.LogEntries {
		have[entryKey(e)] = true
	}
	for i, e := range entries {
		if err := checkEntryShape(e); err != nil {
			return fmt.Errorf("log entry %d: %w", i, err)
		}
		if !sigs[e.Signature] {
			return fmt.Errorf("log entry %d: signature %s is not in the bundle", i, e.Signature)
		}
		if have[entryKey(e)] {
			continue
		}
		have[entryKey(e)] = true
		att.LogEntries = append(att.LogEntries, e)
	}
	return nil
}

func entryKey(e LogEntry) string {
	return fmt.Sprintf("%s/%d/%s/%d", e.LogID, e.LogIndex, e.Signature, e.InclusionProof.TreeSize)
}

func checkEntryShape(e LogEntry) error {
	switch {
	case !strings.HasPrefix(e.LogID, "sha256:") || !isLowerHex(strings.TrimPrefix(e.LogID, "sha256:"), 64):
		return fmt.Errorf("logId must be sha256:<64 lowercase hex>")
	case !strings.HasPrefix(e.Signature, "sha256:") || !isLowerHex(strings.TrimPrefix(e.Signature, "sha256:"), 64):
		return fmt.Errorf("signature must be sha256:<64 lowercase hex>")
	case !isLowerHex(e.InclusionProof.RootHash, 64):
		return fmt.Errorf("inclusionProof.rootHash must be 64 lowercase hex")
	case e.InclusionProof.Hashes == nil:
		return fmt.Errorf("inclusionProof.hashes must be an array")
	case e.LogIndex >= e.InclusionProof.TreeSize:
		return fmt.Errorf("logIndex %d outside tree of size %d", e.LogIndex, e.InclusionProof.TreeSize)
	case e.Checkpoint == "":
		return fmt.Errorf("checkpoint is empty")
	}
	for _, h := range e.InclusionProof.Hashes {
		if !isLowerHex(h, 64) {
			return fmt.Errorf("inclusionProof.hashes must be 64 lowercase hex each")
		}
	}
	return nil
}

// AttachSigstore adds sigstore bundles (cosign attest --bundle output) to the
// bundle at in and writes the result to out (which may be in). Each must be a
// sigstore bundle; one already present is not added twice. Nothing is
// verified here beyond the shape: verify checks them against a policy.
func AttachSigstore(ctx context.Context, in, out string, bundles [][]byte, opts Options) error {
	return rewriteAttestations(ctx, in, out, opts, func(_ *Bundle, att *AttestationBundle) error {
		have := map[string]bool{}
		for _, s := range att.SigstoreBundles {
			have[s] = true
		}
		for i, data := range bundles {
			if !isSigstoreBundle(data) {
				return fmt.Errorf("sigstore bundle %d: not a sigstore bundle (want a JSON object with mediaType %s)", i, "application/vnd.dev.sigstore.bundle.v0.3+json")
			}
			// Kept as written: compacted only, so the bundle is one JSON
			// string whatever its producer's indentation.
			var buf bytes.Buffer
			if err := json.Compact(&buf, data); err != nil {
				return fmt.Errorf("sigstore bundle %d: %w", i, err)
			}
			if s := buf.String(); !have[s] {
				have[s] = true
				att.SigstoreBundles = append(att.SigstoreBundles, s)
			}
		}
		return nil
	})
}

package ctp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/vordr-project/vordr/ctp/canonical"
	"github.com/vordr-project/vordr/ctp/dsse"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/ctp/tlog"
)

// Decision is the outcome of Verify.
type Decision string

const (
	Accept Decision = "accept" // everything verified
	Reject Decision = "reject" // strict mode, or a malformed bundle in any mode
	Warn   Decision = "warn"   // permissive mode: failed, allowed with a warning
	Audit  Decision = "audit"  // audit mode: failed, allowed, reported
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Now is the time signer validity windows are checked against; zero
	// means time.Now().
	Now time.Time
	// Keys supplies public keys for policy signers given only by key_id.
	Keys []*keys.PublicKey
	// SkipBlobs skips re-hashing layers, for callers that already verified
	// them (the runtime re-checking an image imported earlier).
	SkipBlobs bool
	// Sigstore checks the bundle's sigstore bundles (ctp/sigstore's
	// PolicyVerifier). Nil: a bundle that carries any is rejected, so a
	// verifier built without sigstore support never skips evidence.
	Sigstore SigstoreVerifier
}

// SigstoreVerifier checks one sigstore bundle about artifactDigest against a
// policy's signers (keyed bundles) and identities (keyless bundles, with
// the policy's trusted root).
type SigstoreVerifier interface {
	VerifySigstore(ctx context.Context, bundle []byte, artifactDigest string, p *policy.Policy) (*SigstoreVerified, error)
}

// SigstoreVerified is an accepted sigstore bundle.
type SigstoreVerified struct {
	// Signer is the policy signer's key id, or the identity's ID().
	Signer string `json:"signer"`
	// Statement is the verified in-toto statement (the envelope's payload).
	Statement []byte `json:"statement"`
	// TlogEntries is how many log entries were verified.
	TlogEntries int `json:"tlogEntries"`
	// SignedAt are the verified observations of the signing time (a log's
	// integration, a timestamp authority).
	SignedAt []time.Time `json:"signedAt,omitempty"`
}

// ErrSigstoreUntrusted is wrapped by a SigstoreVerifier when no signer or
// identity of the policy verifies a bundle.
var ErrSigstoreUntrusted = errors.New("no signer or identity of the policy verifies the sigstore bundle")

// Result says what was verified. It is also the `vordr ctp verify --json`
// output.
type Result struct {
	Decision    Decision      `json:"decision"`
	ErrorCode   Code          `json:"errorCode,omitempty"`
	Reason      Reason        `json:"reason,omitempty"`
	Message     string        `json:"message,omitempty"`
	Mode        policy.Mode   `json:"mode"`
	Name        string        `json:"name"`
	Version     string        `json:"version,omitempty"`
	ImageRef    string        `json:"imageRef,omitempty"`
	ImageDigest string        `json:"imageDigest"`
	Signers     []SignerCheck `json:"signers"`
	Predicates  []string      `json:"predicates"`
	Logs        []LogCheck    `json:"logs"`
}

// SignerCheck reports one key's signatures.
type SignerCheck struct {
	KeyID      string   `json:"keyId"`
	Name       string   `json:"name,omitempty"`
	Status     string   `json:"status"` // valid, expired, unknown, invalid
	Predicates []string `json:"predicates,omitempty"`
}

// LogCheck reports one log entry.
type LogCheck struct {
	LogID          string `json:"logId"`
	Origin         string `json:"origin,omitempty"`
	LogIndex       uint64 `json:"logIndex"`
	IntegratedTime int64  `json:"integratedTime"`
	Signature      string `json:"signature"`
	Status         string `json:"status"` // verified, untrusted, invalid
}

// Verify checks the whole chain of b against p: every blob against its
// digest, the statements' subjects, DSSE signatures against the policy's
// signers (validity windows and threshold), log inclusion proofs against
// signed checkpoints of trusted logs and the quorum, the required predicates
// and the policy's restrictions.
//
// In strict mode (and for malformed bundles in every mode) a failure returns
// the Result together with an *Error. In permissive and audit mode a policy
// failure returns the Result with Decision Warn or Audit, the error details
// filled in, and a nil error.
func Verify(ctx context.Context, b *Bundle, p *policy.Policy, opts VerifyOptions) (*Result, error) {
	m := b.Manifest()
	res := &Result{Mode: p.Mode, Name: m.Name, Version: m.Version, ImageRef: m.ImageRef, ImageDigest: m.ImageDigest,
		Signers: []SignerCheck{}, Predicates: []string{}, Logs: []LogCheck{}}
	err := verify(ctx, b, p, opts, res)
	if err == nil {
		res.Decision = Accept
		return res, nil
	}
	var e *Error
	if !errors.As(err, &e) {
		res.Decision = Reject
		return res, err // I/O or cancellation, not a verdict
	}
	res.ErrorCode, res.Reason, res.Message = e.Code, e.Reason, e.Error()
	switch {
	case e.Code == CodeMalformedBundle || p.Mode == policy.Strict || p.Mode == "":
		res.Decision = Reject
		return res, err
	case p.Mode == policy.Permissive:
		res.Decision = Warn
	default:
		res.Decision = Audit
	}
	return res, nil
}

type sigRef struct {
	env *dsse.Envelope
	sig dsse.Signature
}

func verify(ctx context.Context, b *Bundle, p *policy.Policy, opts VerifyOptions, res *Result) error {
	if !opts.SkipBlobs {
		if err := b.VerifyBlobs(ctx); err != nil {
			return err
		}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	threshold := max(p.Threshold, 1)
	extra := map[string]*keys.PublicKey{}
	for _, k := range opts.Keys {
		extra[k.ID] = k
	}
	// signers maps every trusted key id to its signer: a hybrid signer
	// is there twice, under its classic and its ML-DSA key id.
	signers := map[string]*policy.Signer{}
	for i := range p.Signers {
		s := &p.Signers[i]
		if s.Resolved == nil || s.Hybrid() && s.PQResolved == nil {
			s2 := *s
			if s2.Resolved == nil {
				s2.Resolved = extra[s.KeyID]
				if s2.Hybrid() && s2.Resolved.IsMLDSA() {
					s2.Resolved = nil // a hybrid signer's classic half is not ML-DSA
				}
			}
			if s2.Hybrid() && s2.PQResolved == nil {
				if k := extra[s.PQKeyID]; k.IsMLDSA() {
					s2.PQResolved = k
				}
			}
			s = &s2
		}
		signers[s.KeyID] = s
		if s.Hybrid() {
			signers[s.PQKeyID] = s
		}
	}

	manifestDigest := b.manifestDesc.Digest.Encoded()
	tomlDigest := digestHex(b.manifestTOML)
	att := b.attest
	if len(att.Attestations) == 0 && len(att.SigstoreBundles) == 0 {
		return newError(CodeMissingAttestation, "the bundle carries no attestations")
	}
	status := map[string]*SignerCheck{}
	note := func(id, st, pred string) {
		c := status[id+"/"+st]
		if c == nil {
			c = &SignerCheck{KeyID: id, Status: st}
			if s := signers[id]; s != nil {
				c.Name = s.Name
			}
			status[id+"/"+st] = c
		}
		if pred != "" {
			c.Predicates = append(c.Predicates, pred)
		}
	}
	defer func() {
		for _, c := range status {
			res.Signers = append(res.Signers, *c)
		}
		sort.Slice(res.Signers, func(i, j int) bool {
			if res.Signers[i].KeyID != res.Signers[j].KeyID {
				return res.Signers[i].KeyID < res.Signers[j].KeyID
			}
			return res.Signers[i].Status < res.Signers[j].Status
		})
	}()

	var verified []verifiedStatement // for the freshness and vulnerability rules
	bySig := map[string]sigRef{}
	counted := make([]map[string][]string, len(att.Attestations)) // counted signer's key id -> its signature digests
	predicates := map[string]bool{}
	var builders []string
	for i := range att.Attestations {
		env := &att.Attestations[i]
		where := fmt.Sprintf("attestations[%d]", i)
		if env.PayloadType != dsse.PayloadTypeInToto {
			return &Error{Code: CodeMalformedBundle, Reason: ReasonMediaType, Path: where, Msg: fmt.Sprintf("payloadType %q, want %s", env.PayloadType, dsse.PayloadTypeInToto)}
		}
		payload, err := env.DecodePayload()
		if err != nil {
			return &Error{Code: CodeMalformedBundle, Reason: ReasonInvalidField, Path: where, Err: err}
		}
		// Peek at the predicate type for reporting only; nothing is trusted
		// before the signatures check out.
		pt := ""
		if st, err := statementOf(env); err == nil {
			pt = st.PredicateType
		}
		if len(env.Signatures) == 0 && len(att.SigstoreBundles) > 0 {
			// A statement vordr wrote at pack time and nobody signed, in a
			// bundle whose evidence is sigstore bundles: it carries no
			// weight (its predicate is not credited) and is not an error.
			continue
		}
		counted[i] = map[string][]string{}
		valid := map[string]string{} // key id -> signature digest
		var unknown, expired []string
		for j, sig := range env.Signatures {
			sd, err := SignatureDigest(sig)
			if err != nil {
				return &Error{Code: CodeMalformedBundle, Reason: ReasonInvalidField, Path: fmt.Sprintf("%s.signatures[%d]", where, j), Err: err}
			}
			if _, dup := bySig[sd]; dup {
				return &Error{Code: CodeMalformedBundle, Reason: ReasonDuplicateEntry, Path: fmt.Sprintf("%s.signatures[%d]", where, j), Msg: "the same signature appears twice"}
			}
			bySig[sd] = sigRef{env: env, sig: sig}
			s := signers[sig.KeyID]
			k := (*keys.PublicKey)(nil)
			if s != nil {
				k = s.Resolved
				if sig.KeyID != s.KeyID {
					k = s.PQResolved
				}
			}
			if k == nil {
				note(sig.KeyID, "unknown", pt)
				unknown = append(unknown, sig.KeyID)
				continue
			}
			// The key id is a hint anyone can write; a signature that claims
			// a trusted key and does not verify is tampering, not noise.
			if err := env.VerifySignature(k, sig); err != nil {
				note(sig.KeyID, "invalid", pt)
				return &Error{Code: CodeInvalidSignature, Path: fmt.Sprintf("%s.signatures[%d]", where, j), Msg: fmt.Sprintf("signature by %s does not verify", s), Err: err}
			}
			if !s.Window(now) {
				note(sig.KeyID, "expired", pt)
				expired = append(expired, s.String())
				continue
			}
			note(sig.KeyID, "valid", pt)
			valid[sig.KeyID] = sd
		}
		// Threshold counts signers, not signatures: a hybrid signer counts
		// once, and only with both its classic and its ML-DSA signature.
		var halves []string
		for id := range valid {
			s := signers[id]
			if id != s.KeyID {
				continue // the ML-DSA half, looked at with its classic half
			}
			if !s.Hybrid() {
				counted[i][id] = []string{valid[id]}
				continue
			}
			pq, ok := valid[s.PQKeyID]
			if !ok {
				halves = append(halves, fmt.Sprintf("%s has no valid ML-DSA signature by %s", s, s.PQKeyID))
				continue
			}
			counted[i][id] = []string{valid[id], pq}
		}
		for id := range valid {
			if s := signers[id]; id == s.PQKeyID {
				if _, ok := valid[s.KeyID]; !ok {
					halves = append(halves, fmt.Sprintf("%s has no valid classic signature by %s", s, s.KeyID))
				}
			}
		}
		sort.Strings(halves)
		if n := len(counted[i]); n < threshold {
			switch {
			case len(expired) > 0:
				return &Error{Code: CodeExpiredKey, Path: where, Msg: fmt.Sprintf("signed by %v outside the key's validity window (at %s); %d of %d valid signers", expired, now.UTC().Format(time.RFC3339), n, threshold)}
			case n == 0 && len(unknown) > 0 && len(halves) == 0:
				return &Error{Code: CodeUnknownKey, Path: where, Msg: fmt.Sprintf("signed only by keys the policy does not trust: %v", unknown)}
			case len(halves) > 0:
				return &Error{Code: CodeThresholdNotMet, Path: where, Msg: fmt.Sprintf("%d distinct trusted signers, policy requires %d; a hybrid signer counts only with both signatures: %s", n, threshold, strings.Join(halves, "; "))}
			}
			return &Error{Code: CodeThresholdNotMet, Path: where, Msg: fmt.Sprintf("%d distinct trusted signers, policy requires %d", n, threshold)}
		}

		var st Statement
		if err := canonical.Unmarshal(payload, &st, canonical.Options{MaxSize: int(DefaultLimits.MaxAttestationJSON)}); err != nil {
			e := jsonErr(where+".payload", err)
			return e
		}
		if st.Type != StatementType {
			return &Error{Code: CodeMalformedBundle, Reason: ReasonInvalidField, Path: where, Msg: fmt.Sprintf("statement _type %q, want %s", st.Type, StatementType)}
		}
		if err := checkSubjects(st.Subject, manifestDigest, tomlDigest); err != nil {
			err.Path = where
			return err
		}
		predicates[st.PredicateType] = true
		var sds []string
		for _, ss := range counted[i] {
			sds = append(sds, ss...)
		}
		// checkSubjects made this statement name manifest.toml: its
		// image_ref is signed.
		verified = append(verified, verifiedStatement{where: where, st: st, sigs: sds, coversTOML: true})
		if st.PredicateType == PredicateSLSA {
			var prov struct {
				RunDetails struct {
					Builder struct {
						ID string `json:"id"`
					} `json:"builder"`
				} `json:"runDetails"`
			}
			if err := json.Unmarshal(st.Predicate, &prov); err != nil {
				return &Error{Code: CodeMalformedBundle, Reason: ReasonInvalidField, Path: where + ".predicate", Err: err}
			}
			builders = append(builders, prov.RunDetails.Builder.ID)
		}
	}
	if err := verifySigstore(ctx, b, p, opts, signers, now, threshold, predicates, &builders, &verified, note); err != nil {
		return err
	}
	for pt := range predicates {
		res.Predicates = append(res.Predicates, pt)
	}
	sort.Strings(res.Predicates)

	logTimes := map[string]int64{}
	if err := verifyLogs(b, p, bySig, counted, threshold, res, logTimes); err != nil {
		return err
	}
	for i := range verified {
		for _, sd := range verified[i].sigs {
			if t, ok := logTimes[sd]; ok {
				verified[i].signedAt = append(verified[i].signedAt, time.Unix(t, 0))
			}
		}
	}

	for _, rp := range p.RequiredPredicates {
		if !predicates[rp] {
			return newError(CodeMissingAttestation, "no verified attestation with predicate type %s", rp)
		}
	}
	if err := checkRefs(b, p, verified); err != nil {
		return err
	}
	if len(p.AllowedBuilders) > 0 {
		if len(builders) == 0 {
			return newError(CodePolicyDenied, "allowed_builders is set but no verified SLSA provenance names a builder")
		}
		for _, id := range builders {
			if !contains(p.AllowedBuilders, id) {
				return newError(CodePolicyDenied, "builder %q is not in allowed_builders", id)
			}
		}
	}
	return checkRules(p, verified, now)
}

// checkRefs applies allowed_image_refs and denied_image_refs to names a
// verified statement vouches for. manifest.toml's image_ref counts only when
// a counted statement names manifest.toml (every vordr DSSE attestation
// does); otherwise — evidence made outside vordr, which cannot know
// manifest.toml — the names are the subjects of the verified statements that
// carry the image manifest's digest (cosign names the image repository).
// An unsigned manifest.toml must not choose the name the policy judges.
func checkRefs(b *Bundle, p *policy.Policy, verified []verifiedStatement) error {
	if len(p.AllowedImageRefs) == 0 && len(p.DeniedImageRefs) == 0 {
		return nil
	}
	var refs []string
	covered := false
	for _, v := range verified {
		covered = covered || v.coversTOML
	}
	if covered {
		ref := b.manifest.ImageRef
		if ref == "" {
			ref = b.manifest.Name
		}
		refs = []string{ref}
	} else {
		for _, v := range verified {
			refs = append(refs, v.names...)
		}
		if len(refs) == 0 {
			return newError(CodePolicyDenied, "allowed_image_refs/denied_image_refs are set and no verified statement names the image (manifest.toml's image_ref is not signed by any counted attestation)")
		}
	}
	for _, ref := range refs {
		for _, pat := range p.DeniedImageRefs {
			if m, _ := path.Match(pat, ref); m {
				return newError(CodePolicyDenied, "image %q matches denied_image_refs pattern %q", ref, pat)
			}
		}
	}
	if len(p.AllowedImageRefs) == 0 {
		return nil
	}
	for _, ref := range refs {
		for _, pat := range p.AllowedImageRefs {
			if m, _ := path.Match(pat, ref); m {
				return nil
			}
		}
	}
	return newError(CodePolicyDenied, "image %q is not in allowed_image_refs", strings.Join(refs, `", "`))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkSubjects requires exactly the two subjects of a v1 bundle: the image
// manifest and manifest.toml. Anything else means the statement was made
// about something else.
func checkSubjects(subj []Subject, manifestDigest, tomlDigest string) *Error {
	if len(subj) != 2 {
		return &Error{Code: CodeSubjectMismatch, Msg: fmt.Sprintf("statement has %d subjects, want the image manifest and manifest.toml", len(subj))}
	}
	var haveImage, haveTOML bool
	for _, s := range subj {
		if len(s.Digest) != 1 {
			return &Error{Code: CodeSubjectMismatch, Msg: fmt.Sprintf("subject %q must carry exactly one (sha256) digest", s.Name)}
		}
		d := s.Digest["sha256"]
		switch {
		case s.Name == ManifestSubjectName && d == tomlDigest:
			haveTOML = true
		case s.Name != ManifestSubjectName && d == manifestDigest:
			haveImage = true
		}
	}
	if !haveImage {
		return &Error{Code: CodeSubjectMismatch, Msg: "no subject names this bundle's image manifest sha256:" + manifestDigest}
	}
	if !haveTOML {
		return &Error{Code: CodeSubjectMismatch, Msg: "no subject names this bundle's manifest.toml sha256:" + tomlDigest}
	}
	return nil
}

func verifyLogs(b *Bundle, p *policy.Policy, bySig map[string]sigRef, counted []map[string][]string, threshold int, res *Result, times map[string]int64) error {
	logs := map[string]*tlog.LogKey{}
	for _, l := range p.Logs {
		if l.Resolved != nil {
			logs[l.ID] = l.Resolved
		}
	}
	covered := map[string]map[string]bool{} // signature digest -> log ids
	for i, e := range b.attest.LogEntries {
		where := fmt.Sprintf("logEntries[%d]", i)
		lc := LogCheck{LogID: e.LogID, LogIndex: e.LogIndex, IntegratedTime: e.IntegratedTime, Signature: e.Signature, Status: "invalid"}
		err := verifyEntry(e, logs, bySig, &lc)
		res.Logs = append(res.Logs, lc)
		if err != nil {
			err.Path = where
			return err
		}
		if lc.Status == "verified" {
			if covered[e.Signature] == nil {
				covered[e.Signature] = map[string]bool{}
			}
			covered[e.Signature][e.LogID] = true
			// The earliest time a trusted log vouches the signature existed.
			if t, ok := times[e.Signature]; !ok || e.IntegratedTime < t {
				times[e.Signature] = e.IntegratedTime
			}
		}
	}
	if p.LogQuorum == 0 {
		return nil
	}
	for i, c := range counted {
		if c == nil {
			continue // unsigned and not counted (see verify)
		}
		// A counted signer is covered when every signature it counted
		// with is: both halves of a hybrid signer, since either alone
		// would not have counted.
		n := 0
		for _, sds := range c {
			all := true
			for _, sd := range sds {
				all = all && len(covered[sd]) >= p.LogQuorum
			}
			if all {
				n++
			}
		}
		if n < threshold {
			return &Error{Code: CodeInsufficientLogCoverage, Path: fmt.Sprintf("attestations[%d]", i),
				Msg: fmt.Sprintf("%d signers have inclusion proofs in %d trusted logs; policy requires %d signers and log_quorum %d", n, p.LogQuorum, threshold, p.LogQuorum)}
		}
	}
	return nil
}

func verifyEntry(e LogEntry, logs map[string]*tlog.LogKey, bySig map[string]sigRef, lc *LogCheck) *Error {
	if err := checkEntryShape(e); err != nil {
		return &Error{Code: CodeLogProofInvalid, Reason: ReasonInvalidField, Err: err}
	}
	ref, ok := bySig[e.Signature]
	if !ok {
		return &Error{Code: CodeLogProofInvalid, Reason: ReasonInvalidField, Msg: "entry names a signature that is not in the bundle: " + e.Signature}
	}
	k := logs[e.LogID]
	if k == nil {
		// A log this policy does not trust proves nothing; it is reported
		// and does not count toward the quorum.
		lc.Status = "untrusted"
		return nil
	}
	lc.Origin = k.Origin
	cp, err := k.OpenCheckpoint([]byte(e.Checkpoint))
	if err != nil {
		if errors.Is(err, tlog.ErrUntrustedCheckpoint) {
			return &Error{Code: CodeLogProofInvalid, Reason: ReasonUntrustedLog, Err: err}
		}
		return &Error{Code: CodeLogProofInvalid, Reason: ReasonCheckpointFormat, Err: err}
	}
	if cp.Size != e.InclusionProof.TreeSize || hex.EncodeToString(cp.Hash) != e.InclusionProof.RootHash {
		return &Error{Code: CodeLogProofInvalid, Reason: ReasonInclusionProof, Msg: "inclusion proof is for a different tree than the checkpoint"}
	}
	hashes := make([][]byte, len(e.InclusionProof.Hashes))
	for i, h := range e.InclusionProof.Hashes {
		hashes[i], _ = hex.DecodeString(h) // shape checked above
	}
	leaf, err := Leaf(ref.env, ref.sig, e.IntegratedTime)
	if err != nil {
		return &Error{Code: CodeLogProofInvalid, Reason: ReasonInvalidField, Err: err}
	}
	if err := tlog.VerifyInclusion(leaf, e.LogIndex, cp, hashes); err != nil {
		return &Error{Code: CodeLogProofInvalid, Reason: ReasonInclusionProof, Err: err}
	}
	lc.Status = "verified"
	return nil
}

func digestHex(b []byte) string {
	return digestOf(b).Encoded()
}

// Statement types a sigstore bundle may carry: cosign still writes v0.1.
const statementV01 = "https://in-toto.io/Statement/v0.1"

// verifySigstore checks the bundle's sigstore bundles. Bundles with the same
// statement are signatures of one attestation: each statement needs
// threshold distinct trusted signers (keys or identities), like a DSSE
// attestation. A statement must name the image manifest among its subjects
// (cosign's have one subject; manifest.toml is not required: a sigstore
// bundle made outside vordr cannot know it).
func verifySigstore(ctx context.Context, b *Bundle, p *policy.Policy, opts VerifyOptions, signers map[string]*policy.Signer,
	now time.Time, threshold int, predicates map[string]bool, builders *[]string, verified *[]verifiedStatement, note func(id, st, pred string)) error {
	sbs := b.attest.SigstoreBundles
	if len(sbs) == 0 {
		return nil
	}
	if opts.Sigstore == nil {
		return &Error{Code: CodeInvalidSignature, Path: "sigstoreBundles", Msg: "the bundle carries sigstore bundles and this verifier was built without a sigstore verifier: nothing of it would be checked"}
	}
	manifest := b.manifestDesc.Digest.String()
	type group struct {
		where    string
		signers  map[string]bool
		expired  []string
		signedAt []time.Time
	}
	groups := map[string]*group{}
	var order []string
	for i, sb := range sbs {
		where := fmt.Sprintf("sigstoreBundles[%d]", i)
		v, err := opts.Sigstore.VerifySigstore(ctx, []byte(sb), manifest, p)
		if err != nil {
			code := CodeInvalidSignature
			if errors.Is(err, ErrSigstoreUntrusted) {
				code = CodeUnknownKey
			}
			return &Error{Code: code, Path: where, Msg: "sigstore bundle", Err: err}
		}
		var st Statement
		if err := json.Unmarshal(v.Statement, &st); err != nil {
			return &Error{Code: CodeMalformedBundle, Reason: ReasonInvalidField, Path: where + ".statement", Err: err}
		}
		if st.Type != StatementType && st.Type != statementV01 {
			return &Error{Code: CodeMalformedBundle, Reason: ReasonInvalidField, Path: where, Msg: fmt.Sprintf("statement _type %q, want %s or %s", st.Type, StatementType, statementV01)}
		}
		named := false
		for _, s := range st.Subject {
			if "sha256:"+s.Digest["sha256"] == manifest {
				named = true
			}
		}
		if !named {
			return &Error{Code: CodeSubjectMismatch, Path: where, Msg: "no subject names this bundle's image manifest " + manifest}
		}
		sum := sha256.Sum256(v.Statement)
		key := hex.EncodeToString(sum[:])
		g := groups[key]
		if g == nil {
			g = &group{where: where, signers: map[string]bool{}}
			groups[key] = g
			order = append(order, key)
		}
		if s := signers[v.Signer]; s != nil && !s.Window(now) {
			note(v.Signer, "expired", st.PredicateType)
			g.expired = append(g.expired, s.String())
			continue
		}
		note(v.Signer, "valid", st.PredicateType)
		if g.signers[v.Signer] {
			continue
		}
		g.signers[v.Signer] = true
		g.signedAt = append(g.signedAt, v.SignedAt...)
		if len(g.signers) == threshold {
			vs := verifiedStatement{where: where, st: st, signedAt: g.signedAt}
			toml := digestHex(b.manifestTOML)
			for _, s := range st.Subject {
				switch {
				case s.Name == ManifestSubjectName && s.Digest["sha256"] == toml:
					vs.coversTOML = true
				case "sha256:"+s.Digest["sha256"] == manifest && s.Name != "":
					vs.names = append(vs.names, s.Name)
				}
			}
			*verified = append(*verified, vs)
			predicates[st.PredicateType] = true
			if id := builderOf(st); id != "" {
				*builders = append(*builders, id)
			}
		}
	}
	for _, k := range order {
		g := groups[k]
		if n := len(g.signers); n < threshold {
			if len(g.expired) > 0 {
				return &Error{Code: CodeExpiredKey, Path: g.where, Msg: fmt.Sprintf("signed by %v outside the key's validity window; %d of %d valid signers", g.expired, n, threshold)}
			}
			return &Error{Code: CodeThresholdNotMet, Path: g.where, Msg: fmt.Sprintf("%d distinct trusted signers, policy requires %d", n, threshold)}
		}
	}
	return nil
}

// builderOf returns the SLSA builder id of a provenance statement: v1 keeps
// it at runDetails.builder.id, v0.2 (cosign's) at builder.id.
func builderOf(st Statement) string {
	var prov struct {
		RunDetails struct {
			Builder struct {
				ID string `json:"id"`
			} `json:"builder"`
		} `json:"runDetails"`
		Builder struct {
			ID string `json:"id"`
		} `json:"builder"`
	}
	switch st.PredicateType {
	case PredicateSLSA, PredicateSLSAv02:
	default:
		return ""
	}
	if json.Unmarshal(st.Predicate, &prov) != nil {
		return ""
	}
	if prov.RunDetails.Builder.ID != "" {
		return prov.RunDetails.Builder.ID
	}
	return prov.Builder.ID
}

// Package policy loads the verification policy of .ctp bundles: which signers
// are trusted (and until when), how many must sign, which predicates must be
// present, which transparency logs are trusted and how many must agree. The
// format is TOML (docs/policy.md); the seeds' gatekeeper JSON is accepted too.
package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/vordr-project/vordr/ctp/canonical"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/tlog"
)

// Mode says what happens to a bundle that fails verification.
type Mode string

const (
	// Strict rejects.
	Strict Mode = "strict"
	// Permissive allows, with warnings.
	Permissive Mode = "permissive"
	// Audit allows and only reports.
	Audit Mode = "audit"
)

// DefaultClockSkew is the freshness rules' default tolerance.
const DefaultClockSkew = 5 * time.Minute

// MaxSize bounds a policy file.
const MaxSize = 1 << 20

// Policy is a loaded, validated policy. Key material is resolved.
type Policy struct {
	Version            int      `toml:"version" json:"version"`
	Mode               Mode     `toml:"mode" json:"mode"`
	RequiredPredicates []string `toml:"required_predicates" json:"requiredPredicates"`
	// Threshold is how many distinct trusted signers must sign each
	// attestation; 0 means 1.
	Threshold int `toml:"threshold" json:"threshold"`
	// LogQuorum is how many distinct trusted logs must prove inclusion of
	// each counted signature.
	LogQuorum int `toml:"log_quorum" json:"logQuorum"`
	// AllowedBuilders, if set, restricts the SLSA builder.id.
	AllowedBuilders []string `toml:"allowed_builders" json:"allowedBuilders,omitempty"`
	// AllowedImageRefs, if set, restricts manifest.toml's image_ref (or name)
	// to these path.Match patterns.
	AllowedImageRefs []string `toml:"allowed_image_refs" json:"allowedImageRefs,omitempty"`
	// DeniedImageRefs refuses images whose ref matches one of these
	// path.Match patterns, whatever AllowedImageRefs says.
	DeniedImageRefs []string `toml:"denied_image_refs" json:"deniedImageRefs,omitempty"`
	// MaxAge bounds the age of every verified SLSA provenance (its build
	// finish time); zero: no bound.
	MaxAge Duration `toml:"max_age" json:"maxAge,omitempty"`
	// MaxSignatureAge bounds the age of every verified attestation's
	// signing time as a trusted observer saw it (a trusted log's
	// integration time, a sigstore bundle's verified timestamp); zero: no
	// bound. A signature no trusted observer timed fails it.
	MaxSignatureAge Duration `toml:"max_signature_age" json:"maxSignatureAge,omitempty"`
	// ClockSkew is the tolerance for the freshness rules, both ways (a time
	// in the future beyond it is refused); default 5m.
	ClockSkew Duration `toml:"clock_skew" json:"clockSkew,omitempty"`
	// Vulnerabilities, if set, requires a verified vulnerability scan
	// (cosign's vuln predicate) within these bounds.
	Vulnerabilities *VulnRules `toml:"vulnerabilities" json:"vulnerabilities,omitempty"`
	Signers         []Signer   `toml:"signers" json:"signers"`
	Logs            []Log      `toml:"logs" json:"logs"`

	// TrustedRoot is a sigstore trusted_root.json (path relative to the
	// policy file): the certificate authorities, Rekor logs and timestamp
	// authorities that vouch for keyless sigstore bundles. Needed when
	// Identities are listed.
	TrustedRoot string `toml:"trusted_root" json:"-"`
	// Identities are the keyless signers trusted: a sigstore bundle whose
	// certificate chains to TrustedRoot and names one of them counts as a
	// signature by it (docs/policy.md).
	Identities []Identity `toml:"identities" json:"identities,omitempty"`
	// SigstoreIgnoreTlog accepts sigstore bundles without a transparency-log
	// entry (cosign's --insecure-ignore-tlog). Off by default.
	SigstoreIgnoreTlog bool `toml:"sigstore_ignore_tlog" json:"sigstoreIgnoreTlog,omitempty"`

	// TrustedRootJSON is TrustedRoot's content, read at load;
	// TrustedRootDigest its sha256, which is what the policy digest covers.
	TrustedRootJSON   []byte `toml:"-" json:"-"`
	TrustedRootDigest string `toml:"-" json:"trustedRootDigest,omitempty"`
}

// VulnRules bounds what a signed vulnerability scan may report.
type VulnRules struct {
	// MaxCritical and MaxHigh bound the distinct vulnerabilities of that
	// severity; nil: no bound.
	MaxCritical *int `toml:"max_critical" json:"maxCritical,omitempty"`
	MaxHigh     *int `toml:"max_high" json:"maxHigh,omitempty"`
	// MaxAge bounds the age of the scan (its finish time); zero: no bound.
	MaxAge Duration `toml:"max_age" json:"maxAge,omitempty"`
}

// Duration is a time.Duration written as a string: Go's syntax ("720h",
// "90m") or a whole number of days ("30d").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return fmt.Errorf("duration %q: want a whole number of days (\"30d\") or Go's syntax (\"720h\")", s)
		}
		*d = Duration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want Go's syntax (\"720h\", \"90m\") or days (\"30d\")", s)
	}
	if v < 0 {
		return fmt.Errorf("duration %q must not be negative", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Identity is a keyless signer: the OIDC issuer and the subject (SAN) of its
// certificate, each exact or a regular expression (cosign's
// --certificate-oidc-issuer[-regexp], --certificate-identity[-regexp]).
type Identity struct {
	Name          string `toml:"name" json:"name,omitempty"`
	Issuer        string `toml:"issuer" json:"issuer,omitempty"`
	IssuerRegexp  string `toml:"issuer_regexp" json:"issuerRegexp,omitempty"`
	Subject       string `toml:"subject" json:"subject,omitempty"`
	SubjectRegexp string `toml:"subject_regexp" json:"subjectRegexp,omitempty"`
}

// ID names the identity among a result's signers: "identity:" and its name,
// or its subject when it has no name.
func (id Identity) ID() string {
	n := id.Name
	if n == "" {
		n = id.Subject
	}
	if n == "" {
		n = "~" + id.SubjectRegexp
	}
	return "identity:" + n
}

// Signer is a trusted signing key, or a hybrid signer: a classic key and an
// ML-DSA key that must both sign.
type Signer struct {
	Name       string    `toml:"name" json:"name,omitempty"`
	Key        string    `toml:"key" json:"key,omitempty"`                // PEM public key file, relative to the policy file
	PublicKey  string    `toml:"public_key" json:"publicKey,omitempty"`   // inline PEM
	KeyID      string    `toml:"key_id" json:"keyId,omitempty"`           // sha256:<hex of DER SPKI>
	ValidFrom  time.Time `toml:"valid_from" json:"validFrom,omitempty"`   // zero: no lower bound
	ValidUntil time.Time `toml:"valid_until" json:"validUntil,omitempty"` // zero: no upper bound

	// PQKey, PQPublicKey and PQKeyID name the ML-DSA half of a hybrid
	// signer, as Key, PublicKey and KeyID name the classic half (which
	// must then be Ed25519 or ECDSA P-256). A hybrid signer counts on an
	// attestation only when both halves' signatures are on it and verify,
	// so forging it takes breaking both algorithms.
	PQKey       string `toml:"pq_key" json:"pqKey,omitempty"`
	PQPublicKey string `toml:"pq_public_key" json:"pqPublicKey,omitempty"`
	PQKeyID     string `toml:"pq_key_id" json:"pqKeyId,omitempty"`

	// Resolved is the loaded key; nil when only KeyID is given and the key
	// must come from VerifyOptions. PQResolved likewise for PQKeyID.
	Resolved   *keys.PublicKey `toml:"-" json:"-"`
	PQResolved *keys.PublicKey `toml:"-" json:"-"`
}

// Hybrid reports whether s needs an ML-DSA signature beside its classic one.
func (s *Signer) Hybrid() bool { return s.PQKeyID != "" }

// Log is a trusted transparency log.
type Log struct {
	ID        string `toml:"id" json:"id,omitempty"`      // optional; must match the key's id
	PublicKey string `toml:"public_key" json:"publicKey"` // C2SP note verifier key
	Origin    string `toml:"origin" json:"origin,omitempty"`

	Resolved *tlog.LogKey `toml:"-" json:"-"`
}

// Error is one problem in a policy file, with its position when known.
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
	} else {
		b.WriteString("policy")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a policy file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads and validates the policy at file. Relative key paths are
// resolved against the file's directory.
func Load(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p, err := Parse(data, filepath.Dir(file))
	if err != nil {
		var es Errors
		if errors.As(err, &es) {
			for _, e := range es {
				e.File = file
			}
		}
		return nil, err
	}
	return p, nil
}

// Parse reads a policy from data: gatekeeper JSON if it starts with '{',
// TOML otherwise. dir resolves relative key paths. Errors are of type Errors.
func Parse(data []byte, dir string) (*Policy, error) {
	if len(data) > MaxSize {
		return nil, Errors{{Msg: fmt.Sprintf("policy is %d bytes, limit %d", len(data), MaxSize)}}
	}
	var p *Policy
	var lines map[string]int
	var errs Errors
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		p, errs = parseGatekeeper(data)
	} else {
		p, lines, errs = parseTOML(data)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	errs = p.validate(dir, lines)
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return nil, errs
	}
	return p, nil
}

func parseTOML(data []byte) (*Policy, map[string]int, Errors) {
	var p Policy
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		var sm *toml.StrictMissingError
		var de *toml.DecodeError
		switch {
		case errors.As(err, &sm):
			var es Errors
			for _, e := range sm.Errors {
				row, col := e.Position()
				es = append(es, &Error{Line: row, Column: col, Msg: fmt.Sprintf("unknown field %q%s", strings.Join(e.Key(), "."), hint(e.Key()))})
			}
			return nil, nil, es
		case errors.As(err, &de):
			row, col := de.Position()
			return nil, nil, Errors{{Line: row, Column: col, Msg: de.Error()}}
		}
		return nil, nil, Errors{{Msg: err.Error()}}
	}
	return &p, keyLines(data), nil
}

func hint(key []string) string {
	if len(key) == 2 && key[0] == "signers" && key[1] == "threshold" {
		return ": threshold is a top-level setting; put it before the first [[signers]]"
	}
	return ""
}

// keyLines maps "mode", "signers[1].key_id", … to their line numbers, so
// semantic errors can point into the file as syntax errors do.
func keyLines(data []byte) map[string]int {
	out := map[string]int{}
	p := unstable.Parser{}
	p.Reset(data)
	table := ""
	counts := map[string]int{}
	for p.NextExpression() {
		n := p.Expression()
		var parts []string
		var line int
		it := n.Key()
		for it.Next() {
			k := it.Node()
			parts = append(parts, string(k.Data))
			if line == 0 {
				line = p.Shape(k.Raw).Start.Line
			}
		}
		name := strings.Join(parts, ".")
		switch n.Kind {
		case unstable.Table:
			table = name
			out[table] = line
		case unstable.ArrayTable:
			table = fmt.Sprintf("%s[%d]", name, counts[name])
			counts[name]++
			out[table] = line
		case unstable.KeyValue:
			full := name
			if table != "" {
				full = table + "." + name
			}
			out[full] = line
		}
	}
	return out
}

func (p *Policy) validate(dir string, lines map[string]int) Errors {
	var errs Errors
	at := func(key, format string, args ...any) {
		line := lines[key]
		for line == 0 && key != "" {
			// Fall back to the enclosing table: "signers[0]" for a field
			// that was not written out.
			i := strings.LastIndexAny(key, ".")
			if i < 0 {
				break
			}
			key = key[:i]
			line = lines[key]
		}
		errs = append(errs, &Error{Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	if p.Version != 1 {
		at("version", "version must be 1 (got %d)", p.Version)
	}
	switch p.Mode {
	case "":
		p.Mode = Strict
	case Strict, Permissive, Audit:
	default:
		at("mode", "mode must be strict, permissive or audit (got %q)", p.Mode)
	}
	if p.Threshold < 0 {
		at("threshold", "threshold must not be negative")
	}
	if p.Threshold == 0 {
		p.Threshold = 1
	}
	if p.LogQuorum < 0 {
		at("log_quorum", "log_quorum must not be negative")
	}
	for i, rp := range p.RequiredPredicates {
		if rp == "" {
			at("required_predicates", "required_predicates[%d] is empty", i)
		}
	}
	for _, pat := range p.AllowedImageRefs {
		if _, err := path.Match(pat, ""); err != nil {
			at("allowed_image_refs", "bad pattern %q: %v", pat, err)
		}
	}
	for _, pat := range p.DeniedImageRefs {
		if _, err := path.Match(pat, ""); err != nil {
			at("denied_image_refs", "bad pattern %q: %v", pat, err)
		}
	}
	if p.ClockSkew == 0 {
		p.ClockSkew = Duration(DefaultClockSkew)
	}
	if v := p.Vulnerabilities; v != nil {
		for k, n := range map[string]*int{"max_critical": v.MaxCritical, "max_high": v.MaxHigh} {
			if n != nil && *n < 0 {
				at("vulnerabilities."+k, "%s must not be negative", k)
			}
		}
		if v.MaxCritical == nil && v.MaxHigh == nil && v.MaxAge == 0 {
			at("vulnerabilities", "[vulnerabilities] sets no bound: give max_critical, max_high or max_age")
		}
	}
	ids := map[string]bool{}
	// resolve loads one half of a signer: a key file, an inline PEM or a
	// bare key id (prefix "" or "pq_").
	resolve := func(key, prefix, file, inline string, id *string) (*keys.PublicKey, bool) {
		var pem []byte
		switch {
		case file != "" && inline != "":
			at(key+"."+prefix+"public_key", "give either %skey or %spublic_key, not both", prefix, prefix)
			return nil, false
		case file != "":
			kp := file
			if !filepath.IsAbs(kp) && dir != "" {
				kp = filepath.Join(dir, kp)
			}
			b, err := os.ReadFile(kp)
			if err != nil {
				at(key+"."+prefix+"key", "cannot read key: %v", err)
				return nil, false
			}
			pem = b
		case inline != "":
			pem = []byte(inline)
		case *id == "":
			return nil, true
		}
		if pem != nil {
			k, err := keys.ParsePublicKey(pem)
			if err != nil {
				at(key+"."+prefix+"key", "%v", err)
				return nil, false
			}
			if *id != "" && *id != k.ID {
				at(key+"."+prefix+"key_id", "%skey_id %s does not match the key (%s)", prefix, *id, k.ID)
				return nil, false
			}
			*id = k.ID
			return k, true
		}
		if !validKeyID(*id) {
			at(key+"."+prefix+"key_id", "%skey_id must be sha256:<64 lowercase hex> (got %q)", prefix, *id)
			return nil, false
		}
		return nil, true
	}
	for i := range p.Signers {
		s := &p.Signers[i]
		key := fmt.Sprintf("signers[%d]", i)
		if s.Key == "" && s.PublicKey == "" && s.KeyID == "" {
			at(key, "a signer needs key, public_key or key_id")
			continue
		}
		k, ok := resolve(key, "", s.Key, s.PublicKey, &s.KeyID)
		if !ok {
			continue
		}
		s.Resolved = k
		pk, ok := resolve(key, "pq_", s.PQKey, s.PQPublicKey, &s.PQKeyID)
		if !ok {
			continue
		}
		s.PQResolved = pk
		if s.Hybrid() {
			// The point of a hybrid signer is two different algorithms,
			// so that breaking one is not enough.
			if pk != nil && !pk.IsMLDSA() {
				at(key+".pq_key", "pq_key must be an ML-DSA key (got %s)", pk.Algorithm())
			}
			if k != nil && k.IsMLDSA() {
				at(key+".key", "a hybrid signer's key must be a classic key (Ed25519 or ECDSA P-256), not %s: pq_key is its ML-DSA half", k.Algorithm())
			}
			if s.PQKeyID == s.KeyID {
				at(key+".pq_key_id", "pq_key_id is the same key as key_id")
			}
			if ids[s.PQKeyID] {
				at(key, "key %s listed twice", s.PQKeyID)
			}
			ids[s.PQKeyID] = true
		}
		if ids[s.KeyID] {
			at(key, "signer %s listed twice", s.KeyID)
		}
		ids[s.KeyID] = true
		if !s.ValidFrom.IsZero() && !s.ValidUntil.IsZero() && !s.ValidUntil.After(s.ValidFrom) {
			at(key+".valid_until", "valid_until is not after valid_from")
		}
	}
	for i, id := range p.Identities {
		key := fmt.Sprintf("identities[%d]", i)
		switch {
		case id.Issuer == "" && id.IssuerRegexp == "":
			at(key, "an identity needs issuer or issuer_regexp (the OIDC issuer its certificate must name)")
		case id.Issuer != "" && id.IssuerRegexp != "":
			at(key, "give either issuer or issuer_regexp, not both")
		}
		switch {
		case id.Subject == "" && id.SubjectRegexp == "":
			at(key, "an identity needs subject or subject_regexp (the certificate's email or URI)")
		case id.Subject != "" && id.SubjectRegexp != "":
			at(key, "give either subject or subject_regexp, not both")
		}
		for _, re := range []string{id.IssuerRegexp, id.SubjectRegexp} {
			if _, err := regexp.Compile(re); re != "" && err != nil {
				at(key, "bad regular expression %q: %v", re, err)
			}
		}
		if ids[id.ID()] {
			at(key, "identity %s listed twice", id.ID())
		}
		ids[id.ID()] = true
	}
	switch {
	case p.TrustedRoot != "":
		tp := p.TrustedRoot
		if !filepath.IsAbs(tp) && dir != "" {
			tp = filepath.Join(dir, tp)
		}
		b, err := os.ReadFile(tp)
		switch {
		case err != nil:
			at("trusted_root", "cannot read the trusted root: %v", err)
		case len(b) > MaxSize*8:
			at("trusted_root", "the trusted root is %d bytes, limit %d", len(b), MaxSize*8)
		case !bytes.Contains(b, []byte("application/vnd.dev.sigstore.trustedroot")):
			at("trusted_root", "%s is not a sigstore trusted_root.json (no mediaType application/vnd.dev.sigstore.trustedroot+json)", tp)
		default:
			p.TrustedRootJSON = b
			p.TrustedRootDigest = fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		}
	case len(p.Identities) > 0:
		at("identities", "identities need trusted_root (a sigstore trusted_root.json naming the CAs and logs that vouch for them)")
	}
	if n := len(p.Signers) + len(p.Identities); p.Threshold > n {
		at("threshold", "threshold %d is more than the %d signers and identities listed: nothing could ever verify", p.Threshold, n)
	}
	logIDs := map[string]bool{}
	for i := range p.Logs {
		l := &p.Logs[i]
		key := fmt.Sprintf("logs[%d]", i)
		k, err := tlog.ParseLogKey(l.PublicKey)
		if err != nil {
			at(key+".public_key", "%v", err)
			continue
		}
		if l.ID != "" && l.ID != k.ID {
			at(key+".id", "id %s does not match the log key (%s)", l.ID, k.ID)
			continue
		}
		if l.Origin != "" && l.Origin != k.Origin {
			at(key+".origin", "origin %q does not match the key name %q", l.Origin, k.Origin)
			continue
		}
		l.ID, l.Origin, l.Resolved = k.ID, k.Origin, k
		if logIDs[k.ID] {
			at(key, "log %s listed twice", k.ID)
		}
		logIDs[k.ID] = true
	}
	if p.LogQuorum > len(p.Logs) {
		at("log_quorum", "log_quorum %d is more than the %d logs listed", p.LogQuorum, len(p.Logs))
	}
	return errs
}

func validKeyID(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// gatekeeper is the seeds' JSON policy. allowedSigners entries are key ids
// or objects.
type gatekeeper struct {
	Version            int               `json:"version"`
	Mode               Mode              `json:"mode"`
	RequiredPredicates []string          `json:"requiredPredicates"`
	AllowedSigners     []json.RawMessage `json:"allowedSigners"`
	LogQuorum          int               `json:"logQuorum"`
	Threshold          int               `json:"threshold"`
	Logs               []struct {
		ID        string `json:"id"`
		PublicKey string `json:"publicKey"`
		Origin    string `json:"origin"`
	} `json:"logs"`
}

type gatekeeperSigner struct {
	Name       string    `json:"name"`
	KeyID      string    `json:"keyId"`
	PublicKey  string    `json:"publicKey"`
	Key        string    `json:"key"`
	ValidFrom  time.Time `json:"validFrom"`
	ValidUntil time.Time `json:"validUntil"`

	PQKeyID     string `json:"pqKeyId"`
	PQPublicKey string `json:"pqPublicKey"`
	PQKey       string `json:"pqKey"`
}

func parseGatekeeper(data []byte) (*Policy, Errors) {
	var g gatekeeper
	if err := canonical.Unmarshal(data, &g, canonical.Options{MaxSize: MaxSize}); err != nil {
		return nil, Errors{{Line: jsonLine(data, err), Msg: "gatekeeper JSON: " + err.Error()}}
	}
	p := &Policy{Version: g.Version, Mode: g.Mode, RequiredPredicates: g.RequiredPredicates, LogQuorum: g.LogQuorum, Threshold: g.Threshold}
	if p.Version == 0 {
		p.Version = 1 // the seeds' files often omit it
	}
	for i, raw := range g.AllowedSigners {
		var id string
		if json.Unmarshal(raw, &id) == nil {
			p.Signers = append(p.Signers, Signer{KeyID: id})
			continue
		}
		var s gatekeeperSigner
		if err := canonical.Unmarshal(raw, &s, canonical.Options{}); err != nil {
			return nil, Errors{{Msg: fmt.Sprintf("allowedSigners[%d]: %v", i, err)}}
		}
		p.Signers = append(p.Signers, Signer{Name: s.Name, KeyID: s.KeyID, PublicKey: s.PublicKey, Key: s.Key, ValidFrom: s.ValidFrom, ValidUntil: s.ValidUntil,
			PQKeyID: s.PQKeyID, PQPublicKey: s.PQPublicKey, PQKey: s.PQKey})
	}
	for _, l := range g.Logs {
		p.Logs = append(p.Logs, Log{ID: l.ID, PublicKey: l.PublicKey, Origin: l.Origin})
	}
	return p, nil
}

// jsonLine finds the line of a json.SyntaxError offset, when there is one.
func jsonLine(data []byte, err error) int {
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset <= int64(len(data)) {
		return 1 + bytes.Count(data[:se.Offset], []byte("\n"))
	}
	return 0
}

// Window reports whether t is inside the signer's validity window.
func (s *Signer) Window(t time.Time) bool {
	if !s.ValidFrom.IsZero() && t.Before(s.ValidFrom) {
		return false
	}
	if !s.ValidUntil.IsZero() && !t.Before(s.ValidUntil) {
		return false
	}
	return true
}

// String names the signer for messages.
func (s *Signer) String() string {
	ids := s.KeyID
	if s.Hybrid() {
		ids += " + " + s.PQKeyID
	}
	if s.Name != "" {
		return s.Name + " (" + ids + ")"
	}
	return ids
}

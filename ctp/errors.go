package ctp

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error kind. The values are part of the
// bundle format's contract (docs/ctp-format.md): scripts and the containerd
// import plugin switch on them, so they never change meaning.
type Code string

const (
	// CodeMalformedBundle: the input is not a well-formed v1 bundle (tar
	// structure, paths, JSON/TOML syntax, digests, media types, limits).
	CodeMalformedBundle Code = "MALFORMED_BUNDLE"
	// CodeSubjectMismatch: a statement does not name this bundle's image
	// manifest and manifest.toml as its subjects.
	CodeSubjectMismatch Code = "SUBJECT_MISMATCH"
	// CodeUnknownKey: signatures exist, but none by a key the policy trusts.
	CodeUnknownKey Code = "UNKNOWN_KEY"
	// CodeExpiredKey: a trusted key signed, but outside its validity window.
	CodeExpiredKey Code = "EXPIRED_KEY"
	// CodeInvalidSignature: a signature claiming a trusted key does not verify.
	CodeInvalidSignature Code = "INVALID_SIGNATURE"
	// CodeMissingAttestation: a predicate type the policy requires is absent.
	CodeMissingAttestation Code = "MISSING_ATTESTATION"
	// CodeInsufficientLogCoverage: fewer trusted logs than the quorum prove
	// inclusion of the signatures.
	CodeInsufficientLogCoverage Code = "INSUFFICIENT_LOG_COVERAGE"
	// CodeLogProofInvalid: a log entry for a trusted log has a bad inclusion
	// proof or checkpoint.
	CodeLogProofInvalid Code = "LOG_PROOF_INVALID"
	// CodeThresholdNotMet: fewer distinct trusted signers than the threshold.
	CodeThresholdNotMet Code = "THRESHOLD_NOT_MET"
	// CodePolicyDenied: the policy forbids the bundle for another reason.
	CodePolicyDenied Code = "POLICY_DENIED"
)

// Reason refines CodeMalformedBundle (and a few other codes) so every kind of
// hostile input is distinguishable in tests and in `--json` output.
type Reason string

const (
	ReasonPathTraversal    Reason = "PATH_TRAVERSAL"
	ReasonAbsolutePath     Reason = "ABSOLUTE_PATH"
	ReasonLink             Reason = "LINK_ENTRY"
	ReasonSpecialFile      Reason = "SPECIAL_FILE"
	ReasonDuplicateEntry   Reason = "DUPLICATE_ENTRY"
	ReasonUnexpectedEntry  Reason = "UNEXPECTED_ENTRY"
	ReasonMissingEntry     Reason = "MISSING_ENTRY"
	ReasonDigestMismatch   Reason = "DIGEST_MISMATCH"
	ReasonMediaType        Reason = "MEDIA_TYPE"
	ReasonTruncated        Reason = "TRUNCATED"
	ReasonTarFormat        Reason = "TAR_FORMAT"
	ReasonTooLarge         Reason = "TOO_LARGE"
	ReasonDuplicateKey     Reason = "DUPLICATE_JSON_KEY"
	ReasonNonCanonical     Reason = "NON_CANONICAL_JSON"
	ReasonSyntax           Reason = "SYNTAX"
	ReasonInvalidField     Reason = "INVALID_FIELD"
	ReasonCompression      Reason = "COMPRESSION"
	ReasonUntrustedLog     Reason = "UNTRUSTED_CHECKPOINT"
	ReasonInclusionProof   Reason = "INCLUSION_PROOF"
	ReasonCheckpointFormat Reason = "CHECKPOINT_FORMAT"
)

// Error is the error type of every rejection. Use errors.As to get at the
// code; the wrapped error (if any) carries the low-level cause.
type Error struct {
	Code   Code
	Reason Reason // optional refinement, see the Reason constants
	Path   string // bundle entry or JSON location concerned, if any
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Reason != "" {
		s += "/" + string(e.Reason)
	}
	if e.Path != "" {
		s += ": " + e.Path
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, &Error{Code: X}) match on code (and reason, when the
// target names one), which keeps tests and callers short.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Reason == "" || t.Reason == e.Reason)
}

// CodeOf returns the Code of err, or "" when err is not (or does not wrap) an
// *Error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ReasonOf returns the Reason of err, or "".
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func malformed(reason Reason, path string, format string, args ...any) *Error {
	return &Error{Code: CodeMalformedBundle, Reason: reason, Path: path, Msg: fmt.Sprintf(format, args...)}
}

func malformedErr(reason Reason, path string, err error) *Error {
	return &Error{Code: CodeMalformedBundle, Reason: reason, Path: path, Err: err}
}

func newError(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func newErrorAt(code Code, path, format string, args ...any) *Error {
	return &Error{Code: code, Path: path, Msg: fmt.Sprintf(format, args...)}
}

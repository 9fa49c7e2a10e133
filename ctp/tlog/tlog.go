// Package tlog verifies transparency-log evidence offline: C2SP signed-note
// checkpoints (https://c2sp.org/tlog-checkpoint, verified with
// golang.org/x/mod/sumdb/note) and RFC 6962 Merkle inclusion proofs (verified
// with github.com/transparency-dev/merkle).
package tlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

var (
	// ErrCheckpointFormat: the checkpoint body is not origin/size/hash lines.
	ErrCheckpointFormat = errors.New("tlog: malformed checkpoint")
	// ErrUntrustedCheckpoint: the checkpoint is not signed by the log's key.
	ErrUntrustedCheckpoint = errors.New("tlog: checkpoint not signed by the trusted log key")
	// ErrInclusion: the inclusion proof does not lead to the checkpoint's root.
	ErrInclusion = errors.New("tlog: inclusion proof does not verify")
)

// Checkpoint is the body of a C2SP tlog checkpoint.
type Checkpoint struct {
	Origin string
	Size   uint64
	Hash   []byte // root hash, 32 bytes
	// Extension lines after the hash are allowed by the spec and kept here.
	Extensions []string
}

// Marshal returns the checkpoint body (the text a log signs).
func (c Checkpoint) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash))
	for _, e := range c.Extensions {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseCheckpoint parses a checkpoint body.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and hash lines", ErrCheckpointFormat)
	}
	lines = lines[:len(lines)-1]
	c := Checkpoint{Origin: lines[0], Extensions: lines[3:]}
	if c.Origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty origin", ErrCheckpointFormat)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: bad tree size %q", ErrCheckpointFormat, lines[1])
	}
	c.Size = size
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != sha256.Size {
		return Checkpoint{}, fmt.Errorf("%w: bad root hash %q", ErrCheckpointFormat, lines[2])
	}
	c.Hash = h
	for _, e := range c.Extensions {
		if e == "" {
			return Checkpoint{}, fmt.Errorf("%w: empty extension line", ErrCheckpointFormat)
		}
	}
	return c, nil
}

// LogKey is a trusted log: its note verifier key and derived identity.
type LogKey struct {
	Origin   string // the checkpoint origin line, also the note key name
	ID       string // sha256:<hex of DER SubjectPublicKeyInfo of the log key>
	VKey     string // the C2SP vkey string "<name>+<hash>+<base64(0x01||key)>"
	Verifier note.Verifier
}

// ParseLogKey parses a C2SP note verifier key (only Ed25519 keys, algorithm
// byte 0x01, are accepted) and derives the log id from it.
func ParseLogKey(vkey string) (*LogKey, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("tlog: log public key: %w", err)
	}
	parts := strings.SplitN(vkey, "+", 3)
	raw, err := base64.StdEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, fmt.Errorf("tlog: log public key %q is not an Ed25519 note key", vkey)
	}
	id, err := LogID(ed25519.PublicKey(raw[1:]))
	if err != nil {
		return nil, err
	}
	return &LogKey{Origin: v.Name(), ID: id, VKey: vkey, Verifier: v}, nil
}

// LogID returns "sha256:<hex of DER SubjectPublicKeyInfo>" of a log key, the
// same derivation used for signer key ids (and by Rekor for its log id).
func LogID(pub ed25519.PublicKey) (string, error) {
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// OpenCheckpoint verifies a signed checkpoint against the log key and parses
// its body. The origin line must equal the key's name.
func (k *LogKey) OpenCheckpoint(signed []byte) (Checkpoint, error) {
	if err := strictNoteSignatures(signed); err != nil {
		return Checkpoint{}, err
	}
	n, err := note.Open(signed, note.VerifierList(k.Verifier))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return Checkpoint{}, fmt.Errorf("%w: %v", ErrUntrustedCheckpoint, err)
		}
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrCheckpointFormat, err)
	}
	// note.Open accepts a note with extra signatures by unknown keys; the
	// signed text is all that matters and it is covered by k's signature.
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != k.Origin {
		return Checkpoint{}, fmt.Errorf("%w: origin %q, want %q", ErrUntrustedCheckpoint, c.Origin, k.Origin)
	}
	return c, nil
}

// strictNoteSignatures rejects signature lines whose base64 is not canonical.
// note.Open decodes them leniently, so the last character of a signature
// could be changed (its unused low bits) and the note would still verify: a
// signed bundle must have no byte that can change unnoticed.
func strictNoteSignatures(signed []byte) error {
	text := string(signed)
	i := strings.LastIndex(text, "\n\n")
	if i < 0 {
		return fmt.Errorf("%w: no signature block", ErrCheckpointFormat)
	}
	for _, line := range strings.Split(strings.TrimSuffix(text[i+2:], "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "\u2014" {
			return fmt.Errorf("%w: malformed signature line %q", ErrCheckpointFormat, line)
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(f[2]); err != nil {
			return fmt.Errorf("%w: signature of %s is not canonical base64: %v", ErrCheckpointFormat, f[1], err)
		}
	}
	return nil
}

// LeafHash is the RFC 6962 leaf hash of data.
func LeafHash(data []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(data) }

// VerifyInclusion checks that leaf is at index in the tree described by c.
func VerifyInclusion(leaf []byte, index uint64, c Checkpoint, hashes [][]byte) error {
	if index >= c.Size {
		return fmt.Errorf("%w: index %d outside tree of size %d", ErrInclusion, index, c.Size)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, c.Size, LeafHash(leaf), hashes, c.Hash); err != nil {
		return fmt.Errorf("%w: %v", ErrInclusion, err)
	}
	return nil
}

// SignCheckpoint signs c with a note signer key (for logs built in tests and
// the local log helper). skey is a C2SP note signer key string.
func SignCheckpoint(c Checkpoint, skey string) ([]byte, error) {
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: string(c.Marshal())}, s)
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

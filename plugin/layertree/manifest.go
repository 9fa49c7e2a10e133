package layertree

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"sort"
	"strings"
)

// Kind of an entry.
type Kind string

// Entry kinds. A whiteout is what overlayfs treats as one: a character device
// with device number 0:0 (the applier's conversion of ".wh.NAME", or a 0:0
// character device listed as such in the tar, which overlayfs cannot tell
// apart).
const (
	KindFile     Kind = "file"
	KindDir      Kind = "dir"
	KindSymlink  Kind = "symlink"
	KindWhiteout Kind = "whiteout"
	KindChar     Kind = "char"
	KindBlock    Kind = "block"
	KindFifo     Kind = "fifo"
)

// Version is the Manifest format version this package reads and writes.
const Version = 1

// maxID is the largest uid/gid lchown can set: uid_t is 32 bits and
// 0xffffffff means "leave unchanged".
const maxID int64 = math.MaxUint32 - 1

// validID reports whether id is a uid/gid lchown sets as given.
func validID(id int) bool { return id >= 0 && int64(id) <= maxID }

// ErrInvalidLayer is wrapped by FromTar and FromBaseTar when the layer is
// hostile or uses something this package cannot represent, and by
// Manifest.Validate (and so ParseManifest) for a malformed manifest.
var ErrInvalidLayer = errors.New("invalid or unsupported layer")

// Entry is one path of a layer directory as containerd writes it.
type Entry struct {
	// Path is clean, relative and slash-separated, without a leading "/" or
	// "./" (e.g. "bin/sh").
	Path string `json:"path"`
	Kind Kind   `json:"kind"`
	// Mode holds the permission bits plus setuid/setgid/sticky (07777), not
	// the type bits. Symlinks are always 0777 on Linux.
	Mode uint32 `json:"mode"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	// Size and Digest ("sha256:<hex>") are set for files only.
	Size   int64  `json:"size,omitempty"`
	Digest string `json:"digest,omitempty"`
	// Link is a symlink's target, verbatim.
	Link string `json:"link,omitempty"`
	// Major and Minor are a char or block device's number.
	Major uint32 `json:"major,omitempty"`
	Minor uint32 `json:"minor,omitempty"`
	// Opaque is set on a directory the layer made opaque (".wh..wh..opq").
	Opaque bool `json:"opaque,omitempty"`
	// Caps is the base64 of the security.capability xattr, if any, in the
	// form the kernel reports it (a v3 value whose root id is 0 reads back
	// as v2).
	Caps string `json:"caps,omitempty"`
	// Implicit marks a directory the tar does not list but the applier
	// created as the parent of something it does. Its Mode, UID, GID and
	// Caps are the applier's defaults (0755 root:root) unless
	// Manifest.Inherit replaced them.
	Implicit bool `json:"implicit,omitempty"`
}

// Manifest is the content of one layer directory.
type Manifest struct {
	Version int `json:"version"`
	// RootOpaque is set when the layer has ".wh..wh..opq" at its top level:
	// the overlay applier then marks the layer directory itself opaque,
	// hiding every lower layer.
	RootOpaque bool `json:"root_opaque,omitempty"`
	// Entries are sorted by Path (plain byte-wise string order) and unique.
	Entries []Entry `json:"entries"`
}

// MismatchError is returned by Compare when the directory does not hold
// exactly the layer's content.
type MismatchError struct {
	// Path is the manifest-style path of the first differing entry in
	// sorted order, "" for the layer directory itself.
	Path string
	// Reason says what differs, e.g. "not in the layer", "missing",
	// "content differs (…)", "mode 0755, layer says 0644".
	Reason string
}

func (e *MismatchError) Error() string {
	return "layer content differs at /" + e.Path + ": " + e.Reason
}

// Lookup returns the entry for p (manifest-style path).
func (m *Manifest) Lookup(p string) (Entry, bool) {
	i := sort.Search(len(m.Entries), func(i int) bool { return m.Entries[i].Path >= p })
	if i < len(m.Entries) && m.Entries[i].Path == p {
		return m.Entries[i], true
	}
	return Entry{}, false
}

// Executables returns the regular files with any execute bit set, or the
// setuid/setgid bit, in path order. Hard links are listed under every name.
func (m *Manifest) Executables() []Entry {
	var out []Entry
	for _, e := range m.Entries {
		if e.Kind == KindFile && e.Mode&(0o111|0o4000|0o2000) != 0 {
			out = append(out, e)
		}
	}
	return out
}

// ParseManifest decodes a JSON manifest and validates it. Unknown fields are
// an error: a manifest from a newer format must not be half-understood.
func ParseManifest(data []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding layer manifest: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decoding layer manifest: trailing data: %w", ErrInvalidLayer)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Validate checks the invariants Compare relies on: the version, sorted
// unique clean paths, well-formed fields per kind, and that every entry's
// parent is listed as a directory (implicit parents are recorded too).
func (m *Manifest) Validate() error {
	if m == nil {
		return fmt.Errorf("nil manifest: %w", ErrInvalidLayer)
	}
	if m.Version != Version {
		return fmt.Errorf("manifest version %d, want %d: %w", m.Version, Version, ErrInvalidLayer)
	}
	dirs := make(map[string]bool)
	for i := range m.Entries {
		e := &m.Entries[i]
		if err := e.validate(); err != nil {
			return fmt.Errorf("manifest entry %q: %w: %w", e.Path, err, ErrInvalidLayer)
		}
		if i > 0 && m.Entries[i-1].Path >= e.Path {
			return fmt.Errorf("manifest entries not sorted or not unique at %q: %w", e.Path, ErrInvalidLayer)
		}
		if dir := path.Dir(e.Path); dir != "." && !dirs[dir] {
			return fmt.Errorf("manifest entry %q: parent is not listed as a directory: %w", e.Path, ErrInvalidLayer)
		}
		if e.Kind == KindDir {
			dirs[e.Path] = true
		}
	}
	return nil
}

func (e *Entry) validate() error {
	if !cleanRel(e.Path) {
		return errors.New("path is not clean and relative")
	}
	if e.Mode&^0o7777 != 0 {
		return fmt.Errorf("mode %#o has bits outside 07777", e.Mode)
	}
	if !validID(e.UID) || !validID(e.GID) {
		return fmt.Errorf("uid/gid %d/%d out of range", e.UID, e.GID)
	}
	if e.Caps != "" {
		if _, err := base64.StdEncoding.DecodeString(e.Caps); err != nil {
			return fmt.Errorf("caps: %w", err)
		}
	}
	switch e.Kind {
	case KindFile, KindDir, KindSymlink, KindWhiteout, KindChar, KindBlock, KindFifo:
	default:
		return fmt.Errorf("unknown kind %q", e.Kind)
	}
	if e.Kind != KindFile && (e.Size != 0 || e.Digest != "") {
		return errors.New("size/digest on a non-file")
	}
	if e.Kind == KindFile {
		if e.Size < 0 {
			return errors.New("negative size")
		}
		hexDigest, ok := strings.CutPrefix(e.Digest, "sha256:")
		if _, err := hex.DecodeString(hexDigest); !ok || err != nil || len(hexDigest) != 64 || strings.ToLower(hexDigest) != hexDigest {
			return fmt.Errorf("digest %q is not sha256:<64 lowercase hex>", e.Digest)
		}
	}
	if (e.Kind == KindSymlink) != (e.Link != "") || strings.ContainsRune(e.Link, 0) {
		return errors.New("link target set on a non-symlink, missing, or containing NUL")
	}
	if e.Kind != KindChar && e.Kind != KindBlock && (e.Major != 0 || e.Minor != 0) {
		return errors.New("device number on a non-device")
	}
	if e.Kind == KindChar && e.Major == 0 && e.Minor == 0 {
		// overlayfs cannot tell this from a whiteout; FromTar records it as one.
		return errors.New("char device 0:0 must be recorded as a whiteout")
	}
	if e.Kind != KindDir && (e.Opaque || e.Implicit) {
		return errors.New("opaque/implicit on a non-directory")
	}
	return nil
}

// cleanRel reports whether p is a clean, relative, slash-separated path that
// stays inside the root and names something other than the root.
func cleanRel(p string) bool {
	return p != "" && p != "." && path.Clean(p) == p && !path.IsAbs(p) &&
		p != ".." && !strings.HasPrefix(p, "../") && !strings.ContainsRune(p, 0)
}

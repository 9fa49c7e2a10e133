//go:build linux

// Package rootfs proves that the rootfs a container is about to run from is
// a verified image's content, by content rather than by name
// (docs/threat-model.md, "The gate's content check"): each overlay lower
// directory must hold exactly the content of the corresponding layer of the
// signed manifest, and the writable upper directory may hold nothing but the
// mount points runc creates.
//
// The expected content of a layer is derived from its blob in containerd's
// content store (plugin/layertree) and cached by blob digest; a lower
// directory's verdict is cached by its identity and re-checked in full as
// soon as any entry in it changed (a ctime newer than the verdict).
package rootfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/vordr-project/vordr/plugin/layertree"
)

// ErrNotVerifiedContent is wrapped when the rootfs is not provably the
// verified image's content.
var ErrNotVerifiedContent = errors.New("rootfs is not the verified image's content")

// Layer is one layer of the signed manifest, bottom first.
type Layer struct {
	Blob   ocispec.Descriptor
	DiffID digest.Digest
}

// Checker checks rootfs mounts against layers.
type Checker struct {
	// Content holds the layer blobs (containerd's content store).
	Content content.Provider
	// CacheDir keeps layer manifests and lower-directory verdicts across
	// shims; empty: no cache (every check hashes every file). It must be
	// the operator's: whoever can write it can vouch for content.
	CacheDir string
}

// Result says what was checked.
type Result struct {
	// Upper is the writable directory (empty for a read-only rootfs).
	Upper string
	// Lowers are the lower directories, top first, as the mount lists them.
	Lowers []string
	// Hashed counts the lower directories compared in full; the others
	// had a current verdict.
	Hashed int
}

// Check proves that mounts (the Create request's rootfs) hold exactly
// layers, and that the upper directory holds only the mount points in
// allowed (paths inside the container; their ancestors are allowed too).
func (c *Checker) Check(ctx context.Context, layers []Layer, mounts []mount.Mount, allowed []string) (*Result, error) {
	if len(mounts) == 0 {
		return nil, fmt.Errorf("the Create request carries no rootfs mounts (a pre-mounted bundle rootfs), so its content cannot be traced to the image: %w: %w", ErrNotVerifiedContent, errdefs.ErrFailedPrecondition)
	}
	if len(mounts) != 1 {
		return nil, fmt.Errorf("the rootfs is %d stacked mounts; the gate proves content for a single overlay or read-only bind mount only: %w: %w", len(mounts), ErrNotVerifiedContent, errdefs.ErrFailedPrecondition)
	}
	res, err := parse(mounts[0])
	if err != nil {
		return nil, err
	}
	if len(res.Lowers) != len(layers) {
		return nil, fmt.Errorf("the rootfs has %d lower layers, the verified image %d: %w: %w", len(res.Lowers), len(layers), ErrNotVerifiedContent, errdefs.ErrFailedPrecondition)
	}
	if res.Upper != "" {
		if err := CheckUpper(res.Upper, allowed); err != nil {
			return nil, err
		}
	}
	// Each lower directory's expected content depends on its layer and,
	// for directories the tar does not list, on the layers below it
	// (containerd's sequential unpack copies their metadata up); the
	// bottom layer is applied without overlay whiteouts. Manifests are
	// only built for layers whose directory lacks a current verdict.
	var plain, inherited []*layertree.Manifest
	manifests := func(i int) (*layertree.Manifest, *layertree.Manifest, error) {
		for j := len(plain); j <= i; j++ {
			m, err := c.manifest(ctx, layers[j], j == 0)
			if err != nil {
				return nil, nil, fmt.Errorf("layer %d (%s): %w", j+1, layers[j].Blob.Digest, err)
			}
			lowers := make([]*layertree.Manifest, 0, j)
			for k := j - 1; k >= 0; k-- {
				lowers = append(lowers, inherited[k])
			}
			inh, err := m.Inherit(lowers...)
			if err != nil {
				return nil, nil, fmt.Errorf("layer %d (%s): %w", j+1, layers[j].Blob.Digest, err)
			}
			plain, inherited = append(plain, m), append(inherited, inh)
		}
		return plain[i], inherited[i], nil
	}
	var diffIDs []digest.Digest
	for i, l := range layers {
		diffIDs = append(diffIDs, l.DiffID)
		dir := res.Lowers[len(res.Lowers)-1-i] // lowerdir lists the top first
		hashed, err := c.checkLower(dir, identity.ChainID(diffIDs), func() (*layertree.Manifest, *layertree.Manifest, error) { return manifests(i) })
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i+1, l.Blob.Digest, err)
		}
		if hashed {
			res.Hashed++
		}
	}
	return res, nil
}

// parse reads an overlay (or read-only single-layer bind) mount.
func parse(m mount.Mount) (*Result, error) {
	res := &Result{}
	switch m.Type {
	case "overlay":
		seen := map[string]bool{}
		for _, o := range m.Options {
			// The options reach mount(2) joined by commas: one with a comma
			// (or an escape) inside would be two options to the kernel and
			// one here — a smuggled lowerdir.
			if strings.ContainsAny(o, ",\\\x00") {
				return nil, fmt.Errorf("the rootfs overlay option %q holds a separator or escape: %w: %w", o, ErrNotVerifiedContent, errdefs.ErrInvalidArgument)
			}
			k, v, _ := strings.Cut(o, "=")
			if seen[k] && (k == "lowerdir" || k == "upperdir" || k == "workdir") {
				return nil, fmt.Errorf("the rootfs overlay names %s twice: %w: %w", k, ErrNotVerifiedContent, errdefs.ErrInvalidArgument)
			}
			seen[k] = true
			switch k {
			case "lowerdir":
				res.Lowers = strings.Split(v, ":")
			case "upperdir":
				res.Upper = v
			case "workdir", "index", "volatile", "ro", "rw", "xino":
			case "redirect_dir", "metacopy":
				// Both let a lower layer's xattrs point at other content
				// than the file's own bytes.
				if v != "off" && v != "nofollow" {
					return nil, fmt.Errorf("the rootfs overlay sets %s: %w: %w", o, ErrNotVerifiedContent, errdefs.ErrFailedPrecondition)
				}
			case "userxattr":
				// Overlay would then obey user.overlay.* xattrs, which any
				// layer tar can carry (opaque dirs, redirects) and which the
				// content comparison does not model.
				return nil, fmt.Errorf("the rootfs overlay sets userxattr (user.overlay.* xattrs in the layers would take effect): %w: %w", ErrNotVerifiedContent, errdefs.ErrFailedPrecondition)
			case "uidmap", "gidmap":
				return nil, fmt.Errorf("the rootfs overlay remaps owners (%s); the gate cannot compare remapped content: %w: %w", k, ErrNotVerifiedContent, errdefs.ErrFailedPrecondition)
			default:
				return nil, fmt.Errorf("the rootfs overlay has option %q the gate does not know, so it cannot prove what the mount shows: %w: %w", o, ErrNotVerifiedContent, errdefs.ErrFailedPrecondition)
			}
		}
		if len(res.Lowers) == 0 {
			return nil, fmt.Errorf("the rootfs overlay has no lowerdir: %w: %w", ErrNotVerifiedContent, errdefs.ErrFailedPrecondition)
		}
	case "bind", "rbind":
		// containerd's overlayfs snapshotter gives a read-only view of a
		// single layer as a bind mount of that layer; a writable bind
		// (the native snapshotter, or a snapshot with no parent) is a
		// whole directory nobody can vouch for cheaply.
		ro := false
		for _, o := range m.Options {
			switch o {
			case "ro":
				ro = true
			case "rw":
				ro = false // the last of ro/rw is what mount(2) gets
			}
		}
		if !ro {
			return nil, fmt.Errorf("the rootfs is a writable bind mount of %s (snapshotter native, or a snapshot without a verified parent); the gate proves content only for overlay snapshots (overlayfs or the vordr snapshotter): %w: %w", m.Source, ErrNotVerifiedContent, errdefs.ErrFailedPrecondition)
		}
		res.Lowers = []string{m.Source}
	default:
		return nil, fmt.Errorf("the rootfs is a %q mount; the gate proves content only for overlay snapshots (overlayfs or the vordr snapshotter): %w: %w", m.Type, ErrNotVerifiedContent, errdefs.ErrFailedPrecondition)
	}
	for _, d := range append(slices.Clone(res.Lowers), res.Upper) {
		if d != "" && !filepath.IsAbs(d) {
			return nil, fmt.Errorf("the rootfs mount names a relative directory %q: %w: %w", d, ErrNotVerifiedContent, errdefs.ErrInvalidArgument)
		}
	}
	return res, nil
}

// CheckUpper checks that a container's writable layer holds nothing but the
// mount points runc creates: each entry must be one of allowed (a path in
// the container) or an ancestor of one, and be a directory or an empty
// regular file. Anything else was planted (a file written into the active
// snapshot before start would otherwise run as the entrypoint).
func CheckUpper(upper string, allowed []string) error {
	ok := map[string]bool{}
	for _, a := range allowed {
		for p := path.Clean("/" + a); p != "/"; p = path.Dir(p) {
			ok[p] = true
		}
	}
	return filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("writable layer %s: %w", upper, err)
		}
		if p == upper {
			return nil
		}
		rel, _ := filepath.Rel(upper, p)
		cpath := "/" + filepath.ToSlash(rel)
		planted := func(why string) error {
			return fmt.Errorf("the container's writable layer holds %s (%s), planted before start: it is not part of the verified image: %w: %w", cpath, why, ErrNotVerifiedContent, errdefs.ErrPermissionDenied)
		}
		if !ok[cpath] {
			return planted("not a mount point of the spec")
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Size() != 0 {
				return planted(fmt.Sprintf("a mount point file with %d bytes", fi.Size()))
			}
			return nil
		default:
			return planted("a " + d.Type().String() + " where a mount point must be a directory or an empty file")
		}
	})
}

// checkLower compares dir with the layer whose chain id is chain; hashed is
// false when a current verdict made the comparison unnecessary. want gives
// the layer's manifest as the tar alone describes it and as containerd's
// sequential unpack leaves it (implicit directories inherited from below);
// either exact form is accepted, as parallel unpack produces the first.
func (c *Checker) checkLower(dir string, chain digest.Digest, want func() (*layertree.Manifest, *layertree.Manifest, error)) (hashed bool, err error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return false, fmt.Errorf("lower directory %s: %w", dir, err)
	}
	if v, ok := c.loadVerdict(dir); ok && v.Dev == st.Dev && v.Ino == st.Ino && v.Chain == chain && unchangedSince(dir, v.VerifiedAt) {
		return false, nil
	}
	plain, inherited, err := want()
	if err != nil {
		return false, err
	}
	// Anything changed from here on has a ctime at or after this instant
	// (the coarse clock is what filesystems stamp ctime with).
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &now)
	err = layertree.Compare(dir, inherited)
	if err != nil && plain != inherited {
		if err2 := layertree.Compare(dir, plain); err2 == nil {
			err = nil
		}
	}
	if err != nil {
		return true, fmt.Errorf("%w (%w): %w", err, ErrNotVerifiedContent, errdefs.ErrPermissionDenied)
	}
	c.saveVerdict(dir, verdict{Dev: st.Dev, Ino: st.Ino, Chain: chain, VerifiedAt: now.Nano()})
	return true, nil
}

// unchangedSince walks dir with lstat only: true when no entry's ctime is
// at or after t. ctime is kept by the kernel (writes, renames, chmod,
// xattrs, links all set it; userspace cannot set it back), so this proves
// the tree is as it was when verified, at a fraction of hashing's cost.
func unchangedSince(dir string, t int64) bool {
	clean := true
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Ctim.Nano() >= t {
			clean = false
			return filepath.SkipAll
		}
		return nil
	})
	return err == nil && clean
}

type verdict struct {
	Dev uint64 `json:"dev"`
	Ino uint64 `json:"ino"`
	// Chain is the chain id of the layer and those below it: the expected
	// content of implicit directories depends on them.
	Chain      digest.Digest `json:"chain"`
	VerifiedAt int64         `json:"verified_at"`
}

func (c *Checker) verdictPath(dir string) string {
	h := sha256.Sum256([]byte(dir))
	return filepath.Join(c.CacheDir, "lowers", hex.EncodeToString(h[:])+".json")
}

func (c *Checker) loadVerdict(dir string) (verdict, bool) {
	var v verdict
	if c.CacheDir == "" {
		return v, false
	}
	b, err := os.ReadFile(c.verdictPath(dir))
	if err != nil || json.Unmarshal(b, &v) != nil {
		return v, false
	}
	return v, true
}

func (c *Checker) saveVerdict(dir string, v verdict) {
	if c.CacheDir == "" {
		return
	}
	b, _ := json.Marshal(v)
	_ = writeAtomic(c.verdictPath(dir), b)
}

// manifest returns the layer's manifest (as the bottom layer of a chain,
// or above another): cached by blob digest, else derived from the blob
// (decompressed, its diff id checked).
func (c *Checker) manifest(ctx context.Context, l Layer, bottom bool) (*layertree.Manifest, error) {
	var cachePath string
	if c.CacheDir != "" && l.Blob.Digest.Validate() == nil {
		kind := "upper"
		if bottom {
			kind = "base"
		}
		cachePath = filepath.Join(c.CacheDir, "layers", l.Blob.Digest.Algorithm().String()+"-"+l.Blob.Digest.Encoded()+"."+kind+".json")
		if b, err := os.ReadFile(cachePath); err == nil {
			if m, err := layertree.ParseManifest(b); err == nil {
				return m, nil
			}
			// Corrupt or from another version: derive it again.
		}
	}
	ra, err := c.Content.ReaderAt(ctx, l.Blob)
	if err != nil {
		return nil, fmt.Errorf("read layer blob: %w", err)
	}
	defer ra.Close()
	blobDigester := l.Blob.Digest.Algorithm().Digester()
	raw := io.TeeReader(io.NewSectionReader(ra, 0, ra.Size()), blobDigester.Hash())
	ds, err := compression.DecompressStream(raw)
	if err != nil {
		return nil, fmt.Errorf("decompress layer: %w", err)
	}
	defer ds.Close()
	diffDigester := digest.Canonical.Digester()
	from := layertree.FromTar
	if bottom {
		from = layertree.FromBaseTar
	}
	m, err := from(io.TeeReader(ds, diffDigester.Hash()))
	if err != nil {
		return nil, fmt.Errorf("read layer: %w", err)
	}
	// Drain what the tar reader left (padding), so both digests cover the
	// whole stream.
	if _, err := io.Copy(io.Discard, io.TeeReader(ds, diffDigester.Hash())); err != nil {
		return nil, fmt.Errorf("read layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, fmt.Errorf("read layer: %w", err)
	}
	if got := blobDigester.Digest(); got != l.Blob.Digest {
		return nil, fmt.Errorf("layer blob in the content store is %s, the signed manifest says %s: %w", got, l.Blob.Digest, errdefs.ErrDataLoss)
	}
	if l.DiffID != "" && diffDigester.Digest() != l.DiffID {
		return nil, fmt.Errorf("layer uncompresses to %s, the signed config says %s: %w", diffDigester.Digest(), l.DiffID, errdefs.ErrDataLoss)
	}
	if cachePath != "" {
		if b, err := json.Marshal(m); err == nil {
			_ = writeAtomic(cachePath, b)
		}
	}
	return m, nil
}

func writeAtomic(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.%d.%d.tmp", p, os.Getpid(), time.Now().UnixNano())
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Executables returns the sha256 (hex) of every executable file (any x bit,
// or set-id) of the image made of layers: the exec appraisal set. It is
// cached per chain under CacheDir.
func (c *Checker) Executables(ctx context.Context, layers []Layer) (map[string]struct{}, error) {
	var diffIDs []digest.Digest
	for _, l := range layers {
		diffIDs = append(diffIDs, l.DiffID)
	}
	chain := identity.ChainID(diffIDs)
	var cachePath string
	if c.CacheDir != "" && chain.Validate() == nil {
		cachePath = filepath.Join(c.CacheDir, "exec", chain.Encoded()+".json")
		if b, err := os.ReadFile(cachePath); err == nil {
			var list []string
			if json.Unmarshal(b, &list) == nil {
				set := make(map[string]struct{}, len(list))
				for _, d := range list {
					set[d] = struct{}{}
				}
				return set, nil
			}
		}
	}
	set := map[string]struct{}{}
	for i, l := range layers {
		m, err := c.manifest(ctx, l, i == 0)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i+1, l.Blob.Digest, err)
		}
		for _, e := range m.Executables() {
			set[strings.TrimPrefix(e.Digest, "sha256:")] = struct{}{}
		}
	}
	if cachePath != "" {
		list := make([]string, 0, len(set))
		for d := range set {
			list = append(list, d)
		}
		slices.Sort(list)
		if b, err := json.Marshal(list); err == nil {
			_ = writeAtomic(cachePath, b)
		}
	}
	return set, nil
}

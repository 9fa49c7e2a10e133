package layertree

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"sort"
	"strings"
)

// FromTar reads an UNCOMPRESSED OCI layer tar stream and returns the
// manifest of what containerd's overlayfs applier (archive.Apply with
// WithConvertWhiteout(OverlayConvertWhiteout)) writes into a fresh, empty
// layer directory. That is how containerd applies every layer except the
// bottom one of a chain (see FromBaseTar). Implicit parent directories are
// recorded as 0755 root:root; see Manifest.Inherit for sequential unpack.
//
// The model follows containerd v2.4's pkg/archive, including:
//   - a later entry for a path replaces the earlier one (a directory over a
//     directory only updates its metadata, keeping its children);
//   - parent paths are resolved through the layer's own symlinks, bounded to
//     the layer root (fs.RootPath), so "lib -> usr/lib" then "lib/x" writes
//     "usr/lib/x";
//   - a hard link shares the target's inode, and the link header's owner,
//     mode and capabilities are applied to that shared inode (so to the
//     target too); the chown drops capabilities the header does not repeat;
//   - ".wh.NAME" for a NAME this layer already created fails containerd's
//     mknod, so it fails here too;
//   - a PAX global header ('g') writes nothing but still replaces an
//     existing entry at its name and creates its parents.
//
// Input that containerd would clamp or ignore but that has no business in a
// layer is rejected with an error wrapping ErrInvalidLayer: absolute names,
// names or hard-link targets escaping the root with "..", NUL in names,
// uid/gid outside 0..2^32-2, and typeflags containerd cannot apply (old GNU
// sparse, contiguous, volume headers, …).
func FromTar(r io.Reader) (*Manifest, error) {
	return fromTar(r, true)
}

// FromBaseTar is FromTar for the bottom layer of a chain, which containerd
// applies through a bind mount without whiteout conversion: ".wh.NAME" just
// deletes NAME if this layer created it, ".wh..wh..opq" in D deletes what
// under D was not itself unpacked from the tar (in practice: implicitly
// created parent directories and their content), and no whiteout device or
// opaque xattr is written.
func FromBaseTar(r io.Reader) (*Manifest, error) {
	return fromTar(r, false)
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	paxCaps        = "SCHILY.xattr.security.capability"
	hashBufSize    = 1 << 20
	maxSymlinks    = 255 // continuity's fs.RootPath limit
)

// inode is one object of the modelled filesystem. Directories cannot be hard
// linked, so a directory inode also holds its children; other inodes may be
// shared by several names (hard links), which is why metadata lives here and
// not on the name.
type inode struct {
	kind         Kind
	mode         uint32
	uid, gid     int
	size         int64
	digest       string
	link         string
	major, minor uint32
	caps         string // raw xattr value
	opaque       bool
	implicit     bool
	children     map[string]*inode
}

func newDir(mode uint32, implicit bool) *inode {
	return &inode{kind: KindDir, mode: mode, implicit: implicit, children: make(map[string]*inode)}
}

type tree struct {
	root       *inode
	rootOpaque bool
	// unpacked and opaqueDone mirror applyNaive's unpackedPaths and
	// opaqueDirs, which only the non-overlay whiteout handling uses.
	unpacked   map[string]bool
	opaqueDone map[string]bool
	// dirHeaders are the cleaned names of the directory entries, which
	// applyNaive revisits at the end to set their times.
	dirHeaders []string
}

func newTree() *tree {
	return &tree{root: newDir(0o755, false), unpacked: make(map[string]bool), opaqueDone: make(map[string]bool)}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidLayer)
}

func fromTar(r io.Reader, overlay bool) (*Manifest, error) {
	t := newTree()
	tr := tar.NewReader(r)
	buf := make([]byte, hashBufSize)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading layer tar: %w", err)
		}
		if err := t.apply(hdr, tr, buf, overlay); err != nil {
			return nil, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	// applyNaive's last pass resolves every directory entry's name again
	// (symlinks included) and sets its times; a directory the layer removed
	// later (a whiteout or opaque marker in a base layer, a parent replaced
	// by a file) makes that fail, and containerd with it.
	for _, name := range t.dirHeaders {
		p, err := t.rootPath(name)
		if err != nil {
			return nil, fmt.Errorf("layer entry %q: %w", name, err)
		}
		if t.lookup(p) == nil {
			return nil, fmt.Errorf("layer entry %q: directory removed later in the layer: %w", name, ErrInvalidLayer)
		}
	}
	return t.manifest(), nil
}

// apply replays one header the way applyNaive and createTarFile do.
func (t *tree) apply(hdr *tar.Header, content io.Reader, buf []byte, overlay bool) error {
	name, err := checkName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		return nil // the layer root: containerd ignores it, metadata included
	}
	if hdr.Typeflag != tar.TypeXGlobalHeader {
		if !validID(hdr.Uid) || !validID(hdr.Gid) {
			// lchown would truncate to 32 bits or treat -1 as "unchanged".
			return invalid("uid/gid %d/%d out of range", hdr.Uid, hdr.Gid)
		}
	}

	// Only the parent is resolved through symlinks; the last element is
	// replaced, never followed.
	parentName, base := path.Split(name)
	parent, err := t.rootPath(parentName)
	if err != nil {
		return err
	}
	if err := t.mkparent(parent); err != nil {
		return err
	}
	full := path.Join(parent, base)

	if strings.HasPrefix(base, whiteoutPrefix) {
		return t.whiteout(hdr, parent, base, overlay)
	}

	if old := t.lookup(full); old != nil && (old.kind != KindDir || hdr.Typeflag != tar.TypeDir) {
		t.remove(full)
	}

	var node *inode
	switch hdr.Typeflag {
	case tar.TypeDir:
		if node = t.lookup(full); node == nil {
			node = newDir(0, false)
			t.insert(full, node)
		}
		node.implicit = false
		t.dirHeaders = append(t.dirHeaders, name)
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // containerd accepts TypeRegA too
		h := sha256.New()
		// Hide any WriterTo so CopyBuffer really uses the shared buffer.
		n, err := io.CopyBuffer(h, struct{ io.Reader }{content}, buf)
		if err != nil {
			return fmt.Errorf("reading content: %w", err)
		}
		node = &inode{kind: KindFile, size: n, digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}
		t.insert(full, node)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
			return invalid("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		node = &inode{kind: KindFifo}
		if hdr.Typeflag != tar.TypeFifo {
			node.kind, node.major, node.minor = KindBlock, uint32(hdr.Devmajor), uint32(hdr.Devminor)
			if hdr.Typeflag == tar.TypeChar {
				node.kind = KindChar
				if hdr.Devmajor == 0 && hdr.Devminor == 0 {
					node.kind = KindWhiteout // what overlayfs makes of it
				}
			}
		}
		t.insert(full, node)
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
			return invalid("empty symlink target or NUL in it")
		}
		node = &inode{kind: KindSymlink, mode: 0o777, link: hdr.Linkname}
		t.insert(full, node)
	case tar.TypeLink:
		if node, err = t.hardlinkTarget(hdr.Linkname); err != nil {
			return err
		}
		t.insert(full, node)
	case tar.TypeXGlobalHeader:
		// createTarFile returns before chown/xattrs/chmod; the removal and
		// mkparent above already happened.
		t.unpacked[full] = true
		return nil
	default:
		return invalid("unsupported typeflag %q", hdr.Typeflag)
	}

	// createTarFile's tail: Lchown, SCHILY xattrs, then lchmod. On a
	// non-directory the kernel's chown strips security.capability (and
	// setuid/setgid, which the chmod restores), even when the owner does
	// not change.
	node.uid, node.gid = hdr.Uid, hdr.Gid
	if node.kind != KindDir {
		node.caps = ""
	}
	if v, ok := hdr.PAXRecords[paxCaps]; ok {
		if node.caps, err = normalizeCaps(v); err != nil {
			return err
		}
	}
	if node.kind != KindSymlink { // lchmod skips symlinks
		node.mode = uint32(hdr.Mode) & 0o7777
	}
	t.unpacked[full] = true
	return nil
}

// checkName validates a tar entry name and returns it cleaned ("." for the
// root). containerd would clamp absolute and escaping names into the root;
// a layer has no reason to carry them, so they are refused.
func checkName(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", invalid("NUL in name")
	}
	if path.IsAbs(name) {
		return "", invalid("absolute path")
	}
	clean := path.Clean(name)
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", invalid("path escapes the layer root")
	}
	return clean, nil
}

func (t *tree) whiteout(hdr *tar.Header, parent, base string, overlay bool) error {
	if base == opaqueMarker {
		if overlay {
			if parent == "" {
				t.rootOpaque = true
			} else {
				t.lookup(parent).opaque = true
			}
			return nil
		}
		if !t.opaqueDone[parent] {
			t.opaqueDone[parent] = true
			t.prune(parent, t.lookup(parent))
		}
		return nil
	}
	orig := base[len(whiteoutPrefix):]
	if orig == "" || orig == "." || orig == ".." {
		// containerd's validateWhiteout: the target must be inside the dir.
		return invalid("invalid whiteout name %q", base)
	}
	target := path.Join(parent, orig)
	if !overlay {
		t.remove(target)
		return nil
	}
	if t.lookup(target) != nil {
		return invalid("whiteout for %q, which this layer already created (containerd's mknod fails with EEXIST)", target)
	}
	t.insert(target, &inode{kind: KindWhiteout, uid: hdr.Uid, gid: hdr.Gid})
	return nil
}

// prune is the non-overlay opaque handling: walk dir and delete whatever was
// not itself unpacked from this tar (implicit parents included), descending
// only into unpacked directories.
func (t *tree) prune(dirPath string, dir *inode) {
	for name, child := range dir.children {
		p := path.Join(dirPath, name)
		if !t.unpacked[p] {
			delete(dir.children, name)
		} else if child.kind == KindDir {
			t.prune(p, child)
		}
	}
}

// hardlinkTarget resolves a hard link's target like hardlinkRootPath: the
// parent through symlinks, the last element not (a hard link to a symlink
// links the symlink itself).
func (t *tree) hardlinkTarget(linkname string) (*inode, error) {
	if linkname == "" || strings.ContainsRune(linkname, 0) {
		return nil, invalid("empty hard link target or NUL in it")
	}
	if path.IsAbs(linkname) {
		return nil, invalid("absolute hard link target %q", linkname)
	}
	if clean := path.Clean(linkname); clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, invalid("hard link target %q escapes the layer root", linkname)
	}
	dir, base := path.Split(linkname)
	if base == "" || base == "." || base == ".." {
		return nil, invalid("unsupported hard link target %q", linkname)
	}
	parent, err := t.rootPath(dir)
	if err != nil {
		return nil, err
	}
	target := path.Join(parent, base)
	node := t.lookup(target)
	switch {
	case node == nil:
		return nil, invalid("hard link target %q does not exist", linkname)
	case node.kind == KindDir:
		return nil, invalid("hard link to directory %q", linkname)
	}
	return node, nil
}

// normalizeCaps returns the security.capability value as the kernel reports
// it back: a v3 (namespaced) value whose root id is 0 reads as v2. Other
// forms (v1, garbage) make the kernel refuse the setxattr, so containerd
// cannot apply the layer.
func normalizeCaps(v string) (string, error) {
	const (
		revMask   = 0xff000000
		rev2      = 0x02000000
		rev3      = 0x03000000
		v2Size    = 20
		v3Size    = 24
		effective = 0x000001
	)
	b := []byte(v)
	if len(b) < 4 {
		return "", invalid("malformed security.capability")
	}
	magic := binary.LittleEndian.Uint32(b)
	switch {
	case len(b) == v2Size && magic&revMask == rev2:
		return v, nil
	case len(b) == v3Size && magic&revMask == rev3:
		if binary.LittleEndian.Uint32(b[v2Size:]) != 0 {
			return v, nil
		}
		out := make([]byte, v2Size)
		binary.LittleEndian.PutUint32(out, rev2|magic&effective)
		copy(out[4:], b[4:v2Size])
		return string(out), nil
	}
	return "", invalid("unsupported security.capability value (%d bytes, magic %#x)", len(b), magic)
}

// rootPath resolves p (slash-separated, relative to the root) through the
// tree's symlinks, bounded to the root, like continuity's fs.RootPath: ".."
// is clamped at the root, a relative target is joined to the link's
// directory, an absolute one to the root, and resolution stops at the first
// element that does not exist (the rest is taken literally). It returns the
// clean relative result, "" for the root.
func (t *tree) rootPath(p string) (string, error) {
	comps := split(path.Clean("/" + p))
	links := 0
restart:
	dir := t.root
	for i, c := range comps {
		child := dir.children[c]
		switch {
		case child == nil:
			return strings.Join(comps, "/"), nil
		case child.kind == KindSymlink:
			if links++; links > maxSymlinks {
				return "", invalid("too many levels of symbolic links resolving %q", p)
			}
			target := child.link
			if !path.IsAbs(target) {
				target = path.Join("/", strings.Join(comps[:i], "/"), target)
			}
			comps = split(path.Join("/", target, strings.Join(comps[i+1:], "/")))
			goto restart
		case child.kind == KindDir:
			dir = child
		case i < len(comps)-1:
			return "", invalid("resolving %q: %q is not a directory", p, strings.Join(comps[:i+1], "/"))
		}
	}
	return strings.Join(comps, "/"), nil
}

// split turns a clean absolute or relative path into its elements.
func split(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" || p == "." {
		return nil
	}
	return strings.Split(p, "/")
}

// mkparent creates the missing directories of the resolved path p with the
// applier's defaults, and fails where an element is not a directory.
func (t *tree) mkparent(p string) error {
	dir := t.root
	for i, c := range split(p) {
		child := dir.children[c]
		if child == nil {
			child = newDir(0o755, true)
			dir.children[c] = child
		} else if child.kind != KindDir {
			return invalid("parent %q is not a directory", strings.Join(split(p)[:i+1], "/"))
		}
		dir = child
	}
	return nil
}

// lookup returns the node at the literal (already resolved) path p.
func (t *tree) lookup(p string) *inode {
	n := t.root
	for _, c := range split(p) {
		if n.kind != KindDir {
			return nil
		}
		if n = n.children[c]; n == nil {
			return nil
		}
	}
	return n
}

// insert links node at p, whose parent exists.
func (t *tree) insert(p string, node *inode) {
	dir, base := path.Split(p)
	t.lookup(dir).children[base] = node
}

// remove is os.RemoveAll of the name p (and so of its subtree).
func (t *tree) remove(p string) {
	dir, base := path.Split(p)
	if parent := t.lookup(dir); parent != nil && parent.kind == KindDir {
		delete(parent.children, base)
	}
}

func (t *tree) manifest() *Manifest {
	m := &Manifest{Version: Version, RootOpaque: t.rootOpaque, Entries: []Entry{}}
	var walk func(prefix string, dir *inode)
	walk = func(prefix string, dir *inode) {
		for name, n := range dir.children {
			p := path.Join(prefix, name)
			m.Entries = append(m.Entries, n.entry(p))
			if n.kind == KindDir {
				walk(p, n)
			}
		}
	}
	walk("", t.root)
	sort.Slice(m.Entries, func(i, j int) bool { return m.Entries[i].Path < m.Entries[j].Path })
	return m
}

func (n *inode) entry(p string) Entry {
	e := Entry{
		Path: p, Kind: n.kind, Mode: n.mode, UID: n.uid, GID: n.gid,
		Size: n.size, Digest: n.digest, Link: n.link, Major: n.major, Minor: n.minor,
		Opaque: n.opaque, Implicit: n.implicit,
	}
	if n.caps != "" {
		e.Caps = base64.StdEncoding.EncodeToString([]byte(n.caps))
	}
	return e
}

// treeOf rebuilds a tree from a validated manifest, for path resolution in
// Inherit. Hard links become separate inodes, which lookups do not mind.
func treeOf(m *Manifest) (*tree, error) {
	t := newTree()
	t.rootOpaque = m.RootOpaque
	for _, e := range m.Entries {
		n := &inode{
			kind: e.Kind, mode: e.Mode, uid: e.UID, gid: e.GID, size: e.Size,
			digest: e.Digest, link: e.Link, major: e.Major, minor: e.Minor,
			opaque: e.Opaque, implicit: e.Implicit,
		}
		if e.Caps != "" {
			b, err := base64.StdEncoding.DecodeString(e.Caps)
			if err != nil {
				return nil, fmt.Errorf("entry %q caps: %w", e.Path, err)
			}
			n.caps = string(b)
		}
		if n.kind == KindDir {
			n.children = make(map[string]*inode)
		}
		t.insert(e.Path, n)
	}
	return t, nil
}

// Inherit returns a copy of m whose implicit directories carry what
// containerd's sequential unpack gives them: archive.Apply is then called
// WithParents(lower dirs) and mkparent copies mode, owner and non-trusted
// xattrs (security.capability among them) from the first lower layer in
// which the path, resolved through that layer's own symlinks, exists — if it
// is a directory there; a non-directory (a whiteout, say) stops the search
// and the defaults stay.
//
// lowers are ordered like overlay's lowerdir option, nearest first, and must
// themselves already be inherited (walk a chain bottom-up). An error means
// containerd could not have applied m on these lowers (a path through a
// non-directory in a lower layer makes mkparent fail).
//
// Known gap: a directory first created implicitly and later listed by the
// tar keeps inherited xattrs the tar entry does not override; the manifest
// records the tar entry's capabilities (none), so Compare would flag such a
// (capability-carrying, hence absurd) directory.
func (m *Manifest) Inherit(lowers ...*Manifest) (*Manifest, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	trees := make([]*tree, len(lowers))
	for i, l := range lowers {
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("lower layer %d: %w", i, err)
		}
		t, err := treeOf(l)
		if err != nil {
			return nil, fmt.Errorf("lower layer %d: %w", i, err)
		}
		trees[i] = t
	}
	out := &Manifest{Version: m.Version, RootOpaque: m.RootOpaque, Entries: append([]Entry{}, m.Entries...)}
	for i := range out.Entries {
		e := &out.Entries[i]
		if !e.Implicit {
			continue
		}
		for j, lt := range trees {
			p, err := lt.rootPath(e.Path)
			if err != nil {
				return nil, fmt.Errorf("implicit directory %q in lower layer %d: %w", e.Path, j, err)
			}
			n := lt.lookup(p)
			if n == nil {
				continue
			}
			if n.kind == KindDir {
				e.Mode, e.UID, e.GID, e.Caps = n.mode, n.uid, n.gid, ""
				if n.caps != "" {
					e.Caps = base64.StdEncoding.EncodeToString([]byte(n.caps))
				}
			}
			break
		}
	}
	return out, nil
}

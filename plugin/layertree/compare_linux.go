//go:build linux

package layertree

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	xattrCaps   = "security.capability"
	xattrOpaque = "trusted.overlay.opaque"
	// Every trusted.overlay.* xattr but the opaque marker is foreign to a
	// lower directory written by containerd (it refuses trusted.* from tars
	// and never mounts overlayfs to apply). Several change what overlayfs
	// shows (redirect, metacopy, xattr whiteouts), so they count as
	// tampering.
	xattrOverlayPrefix = "trusted.overlay."
)

// Compare walks dir (an overlay lower directory as containerd's overlayfs
// snapshotter lays it out) and returns nil when it holds exactly m. When it
// does not, the error is a *MismatchError naming the first differing path in
// sorted order; any other error is an I/O failure (or an invalid manifest).
//
// Checked for every path: present on both sides (an implicit parent is a
// manifest entry like any other), kind, permission/setuid/setgid/sticky
// bits, uid, gid, symlink target, device number, file size and sha256,
// security.capability, and the overlay xattrs (trusted.overlay.opaque="y"
// exactly where the layer makes a directory opaque, no other
// trusted.overlay.* at all). Also checked: the opaque marker on dir itself.
// Not checked: times, directory sizes, hard-link identity (lower layers are
// read-only to overlayfs, so two equal files and one linked file are
// indistinguishable to a container), and other xattrs (security.selinux is
// the host's business; user.* from the tar is not recorded).
//
// Symlinks are never followed: the walk uses fstatat(AT_SYMLINK_NOFOLLOW) and
// O_NOFOLLOW opens relative to directory descriptors, and a file is hashed
// only if the descriptor opened for it is the inode seen during the walk.
// Xattrs of entries that cannot be opened safely (symlinks, devices) are read
// by path with l*xattr, which does not follow the last element. Compare
// cannot stop someone who can write dir from changing it after it returned;
// it proves what was there while it looked.
//
// Sizes are compared before anything is hashed, and nothing is hashed past
// the first mismatch.
func Compare(dir string, m *Manifest) error {
	if err := m.Validate(); err != nil {
		return err
	}
	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening layer directory: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(rootfd)

	c := &comparer{
		dir:     dir,
		rootfd:  rootfd,
		buf:     make([]byte, hashBufSize),
		dirents: make([]byte, 32<<10),
		xattrs:  make([]byte, 4<<10),
		hash:    sha256.New(),
		digests: make(map[fileID]string),
	}

	// The layer directory itself is made by the snapshotter, so only what the
	// layer can put on it is checked: the opaque marker.
	if err := c.checkXattrs(&Entry{Kind: KindDir, Opaque: m.RootOpaque}, "", rootfd); err != nil {
		return err
	}
	if err := c.walk(rootfd, ""); err != nil {
		return err
	}
	sort.Slice(c.disk, func(i, j int) bool { return c.disk[i].path < c.disk[j].path })

	// Merge the two sorted lists; the first difference wins.
	want, got := m.Entries, c.disk
	for len(want) > 0 || len(got) > 0 {
		switch {
		case len(got) == 0 || len(want) > 0 && want[0].Path < got[0].path:
			return mismatch(want[0].Path, "missing (the layer has a %s)", want[0].Kind)
		case len(want) == 0 || got[0].path < want[0].Path:
			return mismatch(got[0].path, "not in the layer (%s on disk)", got[0].kind())
		}
		if err := c.compare(&want[0], &got[0]); err != nil {
			return err
		}
		want, got = want[1:], got[1:]
	}
	return nil
}

func mismatch(p, format string, args ...any) *MismatchError {
	return &MismatchError{Path: p, Reason: fmt.Sprintf(format, args...)}
}

type fileID struct{ dev, ino uint64 }

// diskEntry is what the walk saw of one path.
type diskEntry struct {
	path       string
	mode       uint32 // st_mode, type bits included
	uid, gid   uint32
	size       int64
	rdev       uint64
	id         fileID
	nlink      uint64
	linkTarget string
}

func (d *diskEntry) kind() Kind {
	switch d.mode & unix.S_IFMT {
	case unix.S_IFREG:
		return KindFile
	case unix.S_IFDIR:
		return KindDir
	case unix.S_IFLNK:
		return KindSymlink
	case unix.S_IFCHR:
		if d.rdev == 0 {
			return KindWhiteout
		}
		return KindChar
	case unix.S_IFBLK:
		return KindBlock
	case unix.S_IFIFO:
		return KindFifo
	case unix.S_IFSOCK:
		return "socket"
	}
	return Kind(fmt.Sprintf("file type %#o", d.mode&unix.S_IFMT))
}

type comparer struct {
	dir     string
	rootfd  int
	buf     []byte // hashing buffer, reused
	dirents []byte
	xattrs  []byte
	hash    hash.Hash
	digests map[fileID]string // hard-linked files are hashed once
	disk    []diskEntry
}

// walk inventories the directory open as dfd (path rel) without following
// symlinks and without hashing.
func (c *comparer) walk(dfd int, rel string) error {
	names, err := c.readdir(dfd)
	if err != nil {
		return fmt.Errorf("reading directory %q: %w", filepath.Join(c.dir, rel), err)
	}
	for _, name := range names {
		p := path.Join(rel, name)
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %q: %w", filepath.Join(c.dir, p), err)
		}
		d := diskEntry{
			path: p, mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size,
			rdev: uint64(st.Rdev), id: fileID{uint64(st.Dev), uint64(st.Ino)}, nlink: uint64(st.Nlink),
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if d.linkTarget, err = readlinkat(dfd, name, st.Size); err != nil {
				return fmt.Errorf("readlink %q: %w", filepath.Join(c.dir, p), err)
			}
		case unix.S_IFDIR:
			c.disk = append(c.disk, d)
			if err := c.walkDir(dfd, name, &d); err != nil {
				return err
			}
			continue
		}
		c.disk = append(c.disk, d)
	}
	return nil
}

func (c *comparer) walkDir(dfd int, name string, d *diskEntry) error {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return mismatch(d.path, "changed while being compared")
		}
		return fmt.Errorf("opening %q: %w", filepath.Join(c.dir, d.path), err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %q: %w", filepath.Join(c.dir, d.path), err)
	}
	if (fileID{uint64(st.Dev), uint64(st.Ino)}) != d.id {
		return mismatch(d.path, "changed while being compared")
	}
	return c.walk(fd, d.path)
}

// readdir returns the names in the directory open as fd (without "." and
// ".."), sorted.
func (c *comparer) readdir(fd int) ([]string, error) {
	var names []string
	for {
		n, err := unix.ReadDirent(fd, c.dirents)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(c.dirents[:n], -1, names)
	}
	sort.Strings(names)
	return names, nil
}

func readlinkat(dfd int, name string, size int64) (string, error) {
	n := max(int(size)+1, 256)
	for {
		b := make([]byte, n)
		k, err := unix.Readlinkat(dfd, name, b)
		if err != nil {
			return "", err
		}
		if k < len(b) {
			return string(b[:k]), nil
		}
		n *= 2 // the link changed since the stat; try again
	}
}

// compare checks one path present on both sides, cheapest checks first.
func (c *comparer) compare(e *Entry, d *diskEntry) error {
	p := e.Path
	if k := d.kind(); k != e.Kind {
		return mismatch(p, "%s on disk, layer has a %s", k, e.Kind)
	}
	if e.Kind == KindChar || e.Kind == KindBlock {
		if maj, mnr := unix.Major(d.rdev), unix.Minor(d.rdev); maj != e.Major || mnr != e.Minor {
			return mismatch(p, "device %d:%d, layer says %d:%d", maj, mnr, e.Major, e.Minor)
		}
	}
	if mode := d.mode & 0o7777; mode != e.Mode {
		return mismatch(p, "mode %04o, layer says %04o", mode, e.Mode)
	}
	if int(d.uid) != e.UID || int(d.gid) != e.GID {
		return mismatch(p, "owner %d:%d, layer says %d:%d", d.uid, d.gid, e.UID, e.GID)
	}
	switch e.Kind {
	case KindSymlink:
		if d.linkTarget != e.Link {
			return mismatch(p, "symlink to %q, layer says %q", d.linkTarget, e.Link)
		}
	case KindFile:
		if d.size != e.Size {
			return mismatch(p, "size %d, layer says %d", d.size, e.Size)
		}
		return c.compareFile(e, d)
	}
	return c.checkXattrs(e, filepath.Join(c.dir, p), -1)
}

// compareFile opens the file seen by the walk (and only that inode), checks
// its xattrs through the descriptor, then its content.
func (c *comparer) compareFile(e *Entry, d *diskEntry) error {
	// O_NONBLOCK: if a FIFO was swapped in, opening it must not hang us.
	fd, err := unix.Openat(c.rootfd, d.path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENXIO) {
			return mismatch(e.Path, "changed while being compared")
		}
		return fmt.Errorf("opening %q: %w", filepath.Join(c.dir, d.path), err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %q: %w", filepath.Join(c.dir, d.path), err)
	}
	if (fileID{uint64(st.Dev), uint64(st.Ino)}) != d.id || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != e.Size {
		return mismatch(e.Path, "changed while being compared")
	}
	if err := c.checkXattrs(e, "", fd); err != nil {
		return err
	}

	digest, ok := c.digests[d.id]
	if !ok {
		c.hash.Reset()
		// The size was just checked on this descriptor: read exactly that
		// much, which spares small files the extra read that sees EOF.
		n, err := io.CopyBuffer(c.hash, io.LimitReader(fdReader(fd), e.Size), c.buf)
		if err != nil {
			return fmt.Errorf("reading %q: %w", filepath.Join(c.dir, d.path), err)
		}
		if n != e.Size {
			return mismatch(e.Path, "changed while being compared (read %d bytes, size %d)", n, e.Size)
		}
		digest = "sha256:" + hex.EncodeToString(c.hash.Sum(nil))
		if d.nlink > 1 {
			c.digests[d.id] = digest
		}
	}
	if digest != e.Digest {
		return mismatch(e.Path, "content differs (%s on disk, %s in the layer)", digest, e.Digest)
	}
	return nil
}

// fdReader reads a raw descriptor. Neither it nor io.LimitedReader has a
// WriterTo, so io.CopyBuffer really uses the caller's buffer.
type fdReader int

func (r fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), p)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// checkXattrs compares the capability and overlay xattrs of e, read through
// fd when fd >= 0, else by path without following a final symlink.
func (c *comparer) checkXattrs(e *Entry, p string, fd int) error {
	names, err := c.listXattrs(p, fd)
	if err != nil {
		return fmt.Errorf("listing xattrs of %q: %w", filepath.Join(c.dir, e.Path), err)
	}
	var sawCaps, sawOpaque bool
	for _, name := range names {
		switch {
		case name == xattrCaps:
			v, err := c.getXattr(p, fd, name)
			if err != nil {
				return fmt.Errorf("reading %s of %q: %w", name, filepath.Join(c.dir, e.Path), err)
			}
			sawCaps = true
			got := base64.StdEncoding.EncodeToString(v)
			if e.Caps == "" {
				return mismatch(e.Path, "file capabilities %s on disk, none in the layer", got)
			}
			if got != e.Caps {
				return mismatch(e.Path, "file capabilities %s on disk, layer says %s", got, e.Caps)
			}
		case name == xattrOpaque:
			v, err := c.getXattr(p, fd, name)
			if err != nil {
				return fmt.Errorf("reading %s of %q: %w", name, filepath.Join(c.dir, e.Path), err)
			}
			if !e.Opaque {
				return mismatch(e.Path, "opaque on disk (%s=%q), not in the layer", name, v)
			}
			if string(v) != "y" {
				return mismatch(e.Path, "%s=%q on disk, layer says \"y\"", name, v)
			}
			sawOpaque = true
		case strings.HasPrefix(name, xattrOverlayPrefix):
			return mismatch(e.Path, "overlay xattr %s on disk, not written by containerd", name)
		}
	}
	if e.Caps != "" && !sawCaps {
		return mismatch(e.Path, "no file capabilities on disk, layer says %s", e.Caps)
	}
	if e.Opaque && !sawOpaque {
		return mismatch(e.Path, "not opaque on disk, the layer makes it opaque")
	}
	return nil
}

// listXattrs returns the xattr names, sorted, using the shared buffer and
// growing it on ERANGE.
func (c *comparer) listXattrs(p string, fd int) ([]string, error) {
	list := func(b []byte) (int, error) {
		if fd >= 0 {
			return unix.Flistxattr(fd, b)
		}
		return unix.Llistxattr(p, b)
	}
	n, err := c.xattrCall(list)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	var names []string
	for _, name := range strings.Split(string(c.xattrs[:n]), "\x00") {
		if name != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

func (c *comparer) getXattr(p string, fd int, name string) ([]byte, error) {
	n, err := c.xattrCall(func(b []byte) (int, error) {
		if fd >= 0 {
			return unix.Fgetxattr(fd, name, b)
		}
		return unix.Lgetxattr(p, name, b)
	})
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), c.xattrs[:n]...), nil
}

// xattrCall runs call with c.xattrs, growing the buffer to the size the
// kernel asks for when it is too small.
func (c *comparer) xattrCall(call func([]byte) (int, error)) (int, error) {
	for {
		n, err := call(c.xattrs)
		if !errors.Is(err, unix.ERANGE) {
			return max(n, 0), err
		}
		need, err := call(nil)
		if err != nil {
			return 0, err
		}
		c.xattrs = make([]byte, max(need, 2*len(c.xattrs)))
	}
}

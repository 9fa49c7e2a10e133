//go:build linux

package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// epoch is the modification time of every entry in every layer. A fixed time
// (rather than the files' own) is what makes two builds byte-identical.
var epoch = time.Unix(0, 0).UTC()

// File is an entry of the image's root filesystem. It adds to or replaces
// what the builder put there (for example a custom /etc/passwd, or a script a
// test runs).
type File struct {
	// Path inside the image; leading "/" optional. Missing parent
	// directories are created with mode 0755.
	Path string
	// Mode gives the type (0 for a regular file, fs.ModeDir or
	// fs.ModeSymlink), the permission bits and fs.ModeSetuid,
	// fs.ModeSetgid, fs.ModeSticky. Zero permissions mean 0644 for files and
	// 0755 for directories.
	Mode fs.FileMode
	// Content of a regular file.
	Content []byte
	// Target of a symlink.
	Target string
}

// entry is one node of an in-memory root filesystem. Owners are always 0:0:
// test images never need anything else, and it keeps layers host-independent.
type entry struct {
	typ      byte  // tar.TypeReg, tar.TypeDir, tar.TypeSymlink or tar.TypeLink
	mode     int64 // permission and setuid/setgid/sticky bits, tar encoding
	content  []byte
	linkname string
}

// rootfs maps clean relative paths ("bin/sh") to entries.
type rootfs map[string]*entry

// cleanPath turns an in-image path into the relative form used as a rootfs
// key, refusing the root itself.
func cleanPath(p string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		return "", fmt.Errorf("path %q names the image root; give a path below /", p)
	}
	return c, nil
}

func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// add inserts f, replacing whatever was at its path. Replacing a directory by
// something else drops the directory's contents, as unpacking a layer would.
func (r rootfs) add(f File) error {
	p, err := cleanPath(f.Path)
	if err != nil {
		return err
	}
	e := &entry{mode: tarMode(f.Mode)}
	switch {
	case f.Mode.IsRegular():
		e.typ = tar.TypeReg
		e.content = f.Content
		if f.Mode.Perm() == 0 {
			e.mode |= 0o644
		}
	case f.Mode.IsDir():
		e.typ = tar.TypeDir
		if f.Mode.Perm() == 0 {
			e.mode |= 0o755
		}
	case f.Mode&fs.ModeSymlink != 0:
		if f.Target == "" {
			return fmt.Errorf("symlink %q has no Target: set File.Target", f.Path)
		}
		e.typ = tar.TypeSymlink
		e.linkname = f.Target
		e.mode = 0o777
	default:
		return fmt.Errorf("file %q has unsupported type %v: use a regular file, directory or symlink", f.Path, f.Mode.Type())
	}
	return r.put(p, e)
}

func (r rootfs) put(p string, e *entry) error {
	if err := r.mkdirParents(p); err != nil {
		return err
	}
	if old, ok := r[p]; ok && old.typ == tar.TypeDir && e.typ != tar.TypeDir {
		prefix := p + "/"
		for k := range r {
			if strings.HasPrefix(k, prefix) {
				delete(r, k)
			}
		}
	}
	r[p] = e
	return nil
}

func (r rootfs) mkdirParents(p string) error {
	dir := path.Dir(p)
	if dir == "." {
		return nil
	}
	if e, ok := r[dir]; ok {
		if e.typ != tar.TypeDir {
			return fmt.Errorf("cannot add %q: parent %q is not a directory in the image", p, dir)
		}
		return nil
	}
	if err := r.mkdirParents(dir); err != nil {
		return err
	}
	r[dir] = &entry{typ: tar.TypeDir, mode: 0o755}
	return nil
}

// addDir copies the tree at dir into r. Files that are hard links of each
// other stay hard links; owners and times are not kept (see entry, epoch).
func (r rootfs) addDir(dir string) error {
	type inode struct{ dev, ino uint64 }
	var (
		regular []string // in walk (lexical) order, so link roles are stable
		inodes  = map[string]inode{}
	)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := tarMode(info.Mode())
		switch {
		case info.Mode().IsDir():
			return r.put(rel, &entry{typ: tar.TypeDir, mode: mode})
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return r.put(rel, &entry{typ: tar.TypeSymlink, mode: 0o777, linkname: target})
		case info.Mode().IsRegular():
			content, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				inodes[rel] = inode{uint64(st.Dev), st.Ino} // Dev is not uint64 on every arch
			}
			regular = append(regular, rel)
			return r.put(rel, &entry{typ: tar.TypeReg, mode: mode, content: content})
		default:
			return fmt.Errorf("%s: %v files are not supported in test images; remove it or add it with Options.Files as a regular file", p, info.Mode().Type())
		}
	})
	if err != nil {
		return fmt.Errorf("read rootfs %s: %w", dir, err)
	}
	// The first path of each inode, in sorted order, keeps the content so the
	// tar has it before any link to it.
	sort.Strings(regular)
	first := map[inode]string{}
	for _, p := range regular {
		ino, ok := inodes[p]
		if !ok {
			continue
		}
		if target, ok := first[ino]; ok {
			r[p] = &entry{typ: tar.TypeLink, mode: r[p].mode, linkname: target}
			continue
		}
		first[ino] = p
	}
	return nil
}

// layer returns the uncompressed tar of r: entries sorted by path (parents
// before children), uid/gid 0, fixed times, so equal trees give equal bytes.
func (r rootfs) layer() ([]byte, error) {
	paths := make([]string, 0, len(r))
	for p := range r {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := r[p]
		hdr := &tar.Header{
			Typeflag: e.typ,
			Name:     p,
			Linkname: e.linkname,
			Mode:     e.mode,
			ModTime:  epoch,
		}
		switch e.typ {
		case tar.TypeDir:
			hdr.Name += "/"
		case tar.TypeReg:
			hdr.Size = int64(len(e.content))
		case tar.TypeLink:
			// A hard link to a path that was later replaced would unpack to
			// the wrong content or fail; catch it here.
			if t, ok := r[e.linkname]; !ok || t.typ != tar.TypeReg {
				return nil, fmt.Errorf("hard link %q points to %q, which is no longer a regular file in the image", p, e.linkname)
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write layer entry %q: %w", p, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write(e.content); err != nil {
				return nil, fmt.Errorf("write layer entry %q: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finish layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

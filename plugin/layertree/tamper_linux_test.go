//go:build linux

package layertree

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func tamperLayer(tb testing.TB) []byte {
	return buildTar(tb,
		dir("b", 0o755),
		file("b/z", 0o644, "zzz"),
		dir("bin", 0o755),
		file("bin/busybox", 0o755, "busybox binary"),
		hardlink("bin/sh", "bin/busybox", 0o755),
		symlink("bin/ls", "busybox"),
		file("bin/su", 0o4755, "su"),
		file("bin/ping", 0o755, "ping", withCaps(capV2())),
		dir("dev", 0o755),
		device(tar.TypeChar, "dev/null", 0o666, 1, 3),
		device(tar.TypeFifo, "dev/fifo", 0o600, 0, 0),
		dir("etc", 0o755),
		file("etc/empty", 0o644, ""),
		file("etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n"),
		whiteout("etc/shadow"),
		file("opt/implicit/f", 0o644, "f"),
		dir("usr", 0o755),
		dir("var", 0o755),
		dir("var/lib", 0o755),
		opaque("var/lib"),
		file("var/lib/db", 0o600, "db"),
	)
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

type tamper struct {
	name string
	do   func(t *testing.T, dir string)
	// path is the mismatch Compare must report; "-" means no mismatch.
	path   string
	reason string // substring of the reason, optional
}

func tampers() []tamper {
	p := filepath.Join
	write := func(name, content string) func(*testing.T, string) {
		return func(t *testing.T, dir string) { must(t, os.WriteFile(p(dir, name), []byte(content), 0)) }
	}
	remove := func(name string) func(*testing.T, string) {
		return func(t *testing.T, dir string) { must(t, os.RemoveAll(p(dir, name))) }
	}
	chmod := func(name string, mode os.FileMode) func(*testing.T, string) {
		return func(t *testing.T, dir string) { must(t, os.Chmod(p(dir, name), mode)) }
	}
	setx := func(name, attr, value string) func(*testing.T, string) {
		return func(t *testing.T, dir string) { must(t, unix.Lsetxattr(p(dir, name), attr, []byte(value), 0)) }
	}
	return []tamper{
		{"change one byte", func(t *testing.T, dir string) {
			b, err := os.ReadFile(p(dir, "etc/passwd"))
			must(t, err)
			b[len(b)/2] ^= 1
			must(t, os.WriteFile(p(dir, "etc/passwd"), b, 0))
		}, "etc/passwd", "content differs"},
		{"replace content keeping size", write("etc/passwd", "root:x:0:0::/root:/bin/SH\n"), "etc/passwd", "content differs"},
		{"append a byte", write("etc/passwd", "root:x:0:0::/root:/bin/sh\n\n"), "etc/passwd", "size"},
		{"fill an empty file", write("etc/empty", "x"), "etc/empty", "size"},
		{"add a file", write("etc/evil", "evil"), "etc/evil", "not in the layer"},
		{"add a file in an implicit dir", write("opt/implicit/g", "g"), "opt/implicit/g", "not in the layer"},
		{"add a directory", func(t *testing.T, dir string) { must(t, os.Mkdir(p(dir, "usr/local"), 0o755)) }, "usr/local", "not in the layer"},
		{"add a hard link", func(t *testing.T, dir string) { must(t, os.Link(p(dir, "bin/busybox"), p(dir, "bin/sh2"))) }, "bin/sh2", "not in the layer"},
		{"add a socket", func(t *testing.T, dir string) { must(t, unix.Mknod(p(dir, "etc/sock"), unix.S_IFSOCK|0o600, 0)) }, "etc/sock", "socket"},
		{"remove a file", remove("etc/passwd"), "etc/passwd", "missing"},
		{"remove an empty file", remove("etc/empty"), "etc/empty", "missing"},
		{"remove a directory tree", remove("var/lib"), "var/lib", "missing"},
		{"remove an implicit directory", remove("opt"), "opt", "missing"},
		{"chmod +s", chmod("bin/busybox", os.ModeSetuid|0o755), "bin/busybox", "mode 4755, layer says 0755"},
		{"chmod -s", chmod("bin/su", 0o755), "bin/su", "mode"},
		{"chmod a file", chmod("etc/passwd", 0o666), "etc/passwd", "mode 0666"},
		{"chmod a directory", chmod("usr", 0o777), "usr", "mode"},
		{"chmod an implicit directory", chmod("opt/implicit", 0o700), "opt/implicit", "mode"},
		{"sticky bit on a directory", chmod("etc", os.ModeSticky|0o755), "etc", "mode 1755"},
		{"chown uid", func(t *testing.T, dir string) { must(t, os.Lchown(p(dir, "etc/passwd"), 1000, 0)) }, "etc/passwd", "owner 1000:0"},
		{"chown gid", func(t *testing.T, dir string) { must(t, os.Lchown(p(dir, "etc/passwd"), 0, 1000)) }, "etc/passwd", "owner 0:1000"},
		{"chown a symlink", func(t *testing.T, dir string) { must(t, os.Lchown(p(dir, "bin/ls"), 5, 5)) }, "bin/ls", "owner"},
		{"replace a file by a symlink", func(t *testing.T, dir string) {
			must(t, os.Remove(p(dir, "etc/passwd")))
			must(t, os.Symlink("/etc/passwd", p(dir, "etc/passwd")))
		}, "etc/passwd", "symlink on disk, layer has a file"},
		{"replace a file by a symlink to an identical copy", func(t *testing.T, dir string) {
			must(t, os.Rename(p(dir, "etc/passwd"), p(dir, "etc/passwd.real")))
			must(t, os.Symlink("passwd.real", p(dir, "etc/passwd")))
		}, "etc/passwd", "symlink"},
		{"replace a directory by a symlink to a copy", func(t *testing.T, dir string) {
			must(t, os.Rename(p(dir, "var"), p(dir, "var.orig")))
			must(t, os.Symlink("var.orig", p(dir, "var")))
		}, "var", "symlink"},
		{"change a symlink target", func(t *testing.T, dir string) {
			must(t, os.Remove(p(dir, "bin/ls")))
			must(t, os.Symlink("/bin/busybox", p(dir, "bin/ls")))
		}, "bin/ls", `symlink to "/bin/busybox", layer says "busybox"`},
		{"replace a symlink by a file", func(t *testing.T, dir string) {
			must(t, os.Remove(p(dir, "bin/ls")))
			must(t, os.WriteFile(p(dir, "bin/ls"), []byte("busybox binary"), 0o777))
		}, "bin/ls", "file on disk, layer has a symlink"},
		{"break a hard link with other content", func(t *testing.T, dir string) {
			must(t, os.Remove(p(dir, "bin/sh")))
			must(t, os.WriteFile(p(dir, "bin/sh"), []byte("evil-b binary"), 0o755))
		}, "bin/sh", "size"},
		{"add file capabilities", setx("bin/busybox", xattrCaps, string(capV2())), "bin/busybox", "capabilities"},
		{"change file capabilities", setx("bin/ping", xattrCaps, string(capV3(1000))), "bin/ping", "capabilities"},
		{"remove file capabilities", func(t *testing.T, dir string) {
			must(t, unix.Lremovexattr(p(dir, "bin/ping"), xattrCaps))
		}, "bin/ping", "no file capabilities"},
		{"remove a whiteout", remove("etc/shadow"), "etc/shadow", "missing (the layer has a whiteout)"},
		{"replace a whiteout by an empty file", func(t *testing.T, dir string) {
			must(t, os.Remove(p(dir, "etc/shadow")))
			must(t, os.WriteFile(p(dir, "etc/shadow"), nil, 0))
		}, "etc/shadow", "file on disk, layer has a whiteout"},
		{"replace a whiteout by a real device", func(t *testing.T, dir string) {
			must(t, os.Remove(p(dir, "etc/shadow")))
			must(t, unix.Mknod(p(dir, "etc/shadow"), unix.S_IFCHR, int(unix.Mkdev(1, 3))))
		}, "etc/shadow", "char on disk"},
		{"chown a whiteout", func(t *testing.T, dir string) { must(t, os.Lchown(p(dir, "etc/shadow"), 1, 1)) }, "etc/shadow", "owner"},
		{"add the opaque xattr", setx("usr", xattrOpaque, "y"), "usr", "opaque on disk"},
		{"remove the opaque xattr", func(t *testing.T, dir string) {
			must(t, unix.Lremovexattr(p(dir, "var/lib"), xattrOpaque))
		}, "var/lib", "not opaque on disk"},
		{"change the opaque xattr", setx("var/lib", xattrOpaque, "x"), "var/lib", `"x"`},
		{"make the layer root opaque", setx(".", xattrOpaque, "y"), "", "opaque on disk"},
		{"add an overlay redirect", setx("usr", "trusted.overlay.redirect", "/etc"), "usr", "trusted.overlay.redirect"},
		{"add an xattr whiteout", setx("etc/empty", "trusted.overlay.whiteout", ""), "etc/empty", "trusted.overlay.whiteout"},
		{"add metacopy", setx("etc/passwd", "trusted.overlay.metacopy", ""), "etc/passwd", "trusted.overlay.metacopy"},
		{"change a device number", func(t *testing.T, dir string) {
			must(t, os.Remove(p(dir, "dev/null")))
			must(t, unix.Mknod(p(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))))
			must(t, os.Chmod(p(dir, "dev/null"), 0o666))
		}, "dev/null", "device 1:5, layer says 1:3"},
		{"replace a FIFO by a file", func(t *testing.T, dir string) {
			must(t, os.Remove(p(dir, "dev/fifo")))
			must(t, os.WriteFile(p(dir, "dev/fifo"), nil, 0o600))
		}, "dev/fifo", "file on disk, layer has a fifo"},
		{"replace a file by a FIFO", func(t *testing.T, dir string) {
			must(t, os.Remove(p(dir, "etc/passwd")))
			must(t, unix.Mkfifo(p(dir, "etc/passwd"), 0o644))
		}, "etc/passwd", "fifo on disk"},
		{"two changes: the first in sorted order wins", func(t *testing.T, dir string) {
			write("b/z", "ZZZ")(t, dir)
			write("b-a", "sorts before b/z")(t, dir)
			remove("bin/ls")(t, dir)
		}, "b-a", "not in the layer"},
		{"two changes: content before a later path", func(t *testing.T, dir string) {
			write("b/z", "ZZZ")(t, dir)
			remove("bin/ls")(t, dir)
		}, "b/z", "content differs"},
		{"times only (not a difference)", func(t *testing.T, dir string) {
			old := time.Unix(1, 0)
			must(t, filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
				must(t, err)
				return unix.Lutimes(path, []unix.Timeval{unix.NsecToTimeval(old.UnixNano()), unix.NsecToTimeval(old.UnixNano())})
			}))
		}, "-", ""},
		{"user xattrs (not recorded, not a difference)", setx("etc/passwd", "user.note", "hello"), "-", ""},
	}
}

// TestCompareDetectsTampering applies a layer with containerd, changes the
// directory the way an attacker forging a snapshot would, and requires
// Compare to name the changed path.
func TestCompareDetectsTampering(t *testing.T) {
	requireRoot(t)
	layer := tamperLayer(t)
	m, err := FromTar(bytes.NewReader(layer))
	must(t, err)
	for _, tc := range tampers() {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := containerdApply(t, layer, overlayMode)
			must(t, err)
			if err := Compare(dir, m); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			tc.do(t, dir)
			err = Compare(dir, m)
			if tc.path == "-" {
				if err != nil {
					t.Fatalf("Compare = %v, want nil", err)
				}
				return
			}
			t.Log(err)
			var mm *MismatchError
			if !errors.As(err, &mm) {
				t.Fatalf("Compare = %v, want a *MismatchError", err)
			}
			if mm.Path != tc.path || !strings.Contains(mm.Reason, tc.reason) {
				t.Fatalf("Compare = %q (path %q), want path %q with reason containing %q", err, mm.Path, tc.path, tc.reason)
			}
			if want := "layer content differs at /" + tc.path + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("Error() = %q, want prefix %q", err, want)
			}
		})
	}
}

func TestCompareErrors(t *testing.T) {
	requireRoot(t)
	layer := tamperLayer(t)
	m, err := FromTar(bytes.NewReader(layer))
	must(t, err)
	dir, err := containerdApply(t, layer, overlayMode)
	must(t, err)
	var mm *MismatchError

	// The layer directory itself must not be a symlink.
	link := filepath.Join(t.TempDir(), "link")
	must(t, os.Symlink(dir, link))
	if err := Compare(link, m); err == nil || errors.As(err, &mm) {
		t.Errorf("Compare(symlink to the layer) = %v, want an open error", err)
	}
	if err := Compare(filepath.Join(t.TempDir(), "nope"), m); err == nil || errors.As(err, &mm) {
		t.Errorf("Compare(missing dir) = %v, want an open error", err)
	}
	bad := *m
	bad.Entries = append([]Entry{}, m.Entries...)
	bad.Entries[0], bad.Entries[1] = bad.Entries[1], bad.Entries[0]
	if err := Compare(dir, &bad); !errors.Is(err, ErrInvalidLayer) {
		t.Errorf("Compare(unsorted manifest) = %v, want ErrInvalidLayer", err)
	}
	if err := Compare(dir, nil); !errors.Is(err, ErrInvalidLayer) {
		t.Errorf("Compare(nil) = %v, want ErrInvalidLayer", err)
	}

	// A manifest symlink pointing at a host file: the host file is never
	// read, and an empty layer directory is reported as missing content.
	hostLayer := buildTar(t, symlink("passwd", "/etc/passwd"))
	hm, err := FromTar(bytes.NewReader(hostLayer))
	must(t, err)
	hdir, err := containerdApply(t, hostLayer, overlayMode)
	must(t, err)
	must(t, Compare(hdir, hm))
	empty := t.TempDir()
	if err := Compare(empty, hm); !errors.As(err, &mm) || mm.Path != "passwd" {
		t.Errorf("Compare(empty dir) = %v, want missing passwd", err)
	}
}

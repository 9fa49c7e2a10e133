//go:build linux

package layertree

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/log"
)

func init() {
	// containerd's applier warns through logrus; keep test output readable.
	_ = log.SetLevel("error")
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: device nodes, chown, trusted.* xattrs")
	}
}

// applyMode is one of containerd's two ways of writing a layer.
type applyMode struct {
	name     string
	fromTar  func(r *bytes.Reader) (*Manifest, error)
	applyOpt []archive.ApplyOpt
}

var (
	overlayMode = applyMode{
		name:     "overlay",
		fromTar:  func(r *bytes.Reader) (*Manifest, error) { return FromTar(r) },
		applyOpt: []archive.ApplyOpt{archive.WithConvertWhiteout(archive.OverlayConvertWhiteout)},
	}
	baseMode = applyMode{
		name:    "base",
		fromTar: func(r *bytes.Reader) (*Manifest, error) { return FromBaseTar(r) },
	}
)

// containerdApply writes layer into a new directory with containerd's own
// applier and returns the directory.
func containerdApply(tb testing.TB, layer []byte, mode applyMode, extra ...archive.ApplyOpt) (string, error) {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	opts := append(append([]archive.ApplyOpt{}, mode.applyOpt...), extra...)
	_, err := archive.Apply(context.Background(), dir, bytes.NewReader(layer), opts...)
	return dir, err
}

func entry(tb testing.TB, m *Manifest, p string) Entry {
	tb.Helper()
	e, ok := m.Lookup(p)
	if !ok {
		tb.Fatalf("manifest has no %q", p)
	}
	return e
}

func absent(tb testing.TB, m *Manifest, p string) {
	tb.Helper()
	if _, ok := m.Lookup(p); ok {
		tb.Fatalf("manifest has %q, want it absent", p)
	}
}

type applyCase struct {
	name string
	ents []ent
	// wantFail names the modes in which containerd must refuse the layer
	// (FromTar/FromBaseTar must then fail too).
	wantFail []string
	// check inspects the overlay-mode manifest (and base-mode one if
	// checkBase is set), to pin down the semantics being modelled.
	check     func(t *testing.T, m *Manifest)
	checkBase func(t *testing.T, m *Manifest)
}

func applyCases() []applyCase {
	big := randomBytes(1, 3<<20+17)
	return []applyCase{{
		name: "nested dirs and files",
		ents: []ent{
			dir("etc", 0o755),
			file("etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n"),
			file("etc/empty", 0o600, ""),
			dir("usr", 0o755), dir("usr/share", 0o755), dir("usr/share/doc", 0o750, owner(0, 50)),
			file("usr/share/doc/README", 0o444, "read me", owner(1000, 1000)),
			dir("usr/bin", 0o755),
			file("usr/bin/env", 0o755, "#!env"),
		},
		check: func(t *testing.T, m *Manifest) {
			if e := entry(t, m, "usr/share/doc/README"); e.UID != 1000 || e.Mode != 0o444 || e.Size != 7 {
				t.Errorf("README = %+v", e)
			}
			if e := entry(t, m, "etc/empty"); e.Size != 0 || e.Digest != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
				t.Errorf("empty file = %+v", e)
			}
		},
	}, {
		name: "implicit parents",
		ents: []ent{
			file("a/b/c/file", 0o644, "deep"),
			file("x/y", 0o644, "y"),
			dir("x", 0o700, owner(7, 8)), // after its child: merges metadata
			whiteout("w1/w2/gone"),
		},
		check: func(t *testing.T, m *Manifest) {
			for _, p := range []string{"a", "a/b", "a/b/c"} {
				if e := entry(t, m, p); !e.Implicit || e.Mode != 0o755 || e.UID != 0 || e.GID != 0 {
					t.Errorf("%s = %+v, want implicit 0755 0:0", p, e)
				}
			}
			if e := entry(t, m, "x"); e.Implicit || e.Mode != 0o700 || e.UID != 7 || e.GID != 8 {
				t.Errorf("x = %+v, want explicit 0700 7:8", e)
			}
			if e := entry(t, m, "w1/w2"); !e.Implicit {
				t.Errorf("whiteout parent w1/w2 = %+v, want implicit", e)
			}
		},
	}, {
		name: "hard links",
		ents: []ent{
			dir("bin", 0o755),
			file("bin/busybox", 0o755, "busybox binary"),
			hardlink("bin/sh", "bin/busybox", 0o755),
			// The link header's mode and owner land on the shared inode.
			hardlink("bin/ls", "bin/busybox", 0o4711, owner(5, 6)),
			// A link to a file that is replaced later keeps the old content.
			file("lib/a", 0o644, "version 1"),
			hardlink("lib/b", "lib/a", 0o644),
			file("lib/a", 0o644, "version 2 (longer)"),
			// A hard link to a symlink links the symlink itself.
			symlink("lib/s", "a"),
			hardlink("lib/s2", "lib/s", 0o600, owner(3, 3)),
			// The target's parent is resolved through symlinks.
			symlink("b", "bin"),
			hardlink("via", "b/busybox", 0o4711, owner(5, 6)),
			// chown drops capabilities the link header does not repeat.
			file("caps/a", 0o755, "a", withCaps(capV2())),
			hardlink("caps/a2", "caps/a", 0o755),
			file("caps/b", 0o755, "b"),
			hardlink("caps/b2", "caps/b", 0o755, withCaps(capV2())),
			// ./-prefixed link names, as "tar -C dir ." writes them.
			hardlink("./lib/c", "./lib/a", 0o644),
		},
		check: func(t *testing.T, m *Manifest) {
			for _, p := range []string{"bin/busybox", "bin/sh", "bin/ls", "via"} {
				if e := entry(t, m, p); e.Kind != KindFile || e.Mode != 0o4711 || e.UID != 5 || e.GID != 6 {
					t.Errorf("%s = %+v, want the last link header's 04711 5:6", p, e)
				}
			}
			if a, b := entry(t, m, "lib/a"), entry(t, m, "lib/b"); a.Digest == b.Digest || b.Size != 9 {
				t.Errorf("lib/b should keep version 1: a=%+v b=%+v", a, b)
			}
			if e := entry(t, m, "lib/s2"); e.Kind != KindSymlink || e.Link != "a" || e.Mode != 0o777 || e.UID != 3 {
				t.Errorf("lib/s2 = %+v, want a symlink to a owned by 3", e)
			}
			for p, want := range map[string]bool{"caps/a": false, "caps/a2": false, "caps/b": true, "caps/b2": true} {
				if got := entry(t, m, p).Caps != ""; got != want {
					t.Errorf("%s has caps = %v, want %v", p, got, want)
				}
			}
		},
	}, {
		name: "hard link to a replaced path fails",
		ents: []ent{file("f", 0o644, "x"), hardlink("f", "f", 0o644)},
		// The old f is removed before linking, so the target is gone.
		wantFail: []string{"overlay", "base"},
	}, {
		name: "whiteouts",
		ents: []ent{
			dir("etc", 0o755),
			whiteout("etc/shadow"),
			whiteout("gone", owner(5, 5)),
			whiteout("deep/er/x"),
			file("etc/keep", 0o644, "keep"),
			// A whiteout named like a whiteout deletes ".wh.x".
			whiteout("etc/.wh.x"),
		},
		check: func(t *testing.T, m *Manifest) {
			if e := entry(t, m, "gone"); e.Kind != KindWhiteout || e.Mode != 0 || e.UID != 5 {
				t.Errorf("gone = %+v, want a whiteout 0000 5:5", e)
			}
			entry(t, m, "etc/.wh.x")
		},
		checkBase: func(t *testing.T, m *Manifest) {
			absent(t, m, "gone")
			absent(t, m, "etc/shadow")
			entry(t, m, "deep/er") // the parents are still created
		},
	}, {
		name: "whiteout of this layer's own file",
		ents: []ent{file("tmp/f", 0o644, "f"), whiteout("tmp/f"), file("tmp/g", 0o644, "g"), file("tmp/d/c", 0o644, "c"), whiteout("tmp/d")},
		// overlay: mknod fails with EEXIST; base: the file is deleted.
		wantFail: []string{"overlay"},
		checkBase: func(t *testing.T, m *Manifest) {
			absent(t, m, "tmp/f")
			absent(t, m, "tmp/d")
			entry(t, m, "tmp/g")
		},
	}, {
		name: "directory entry deleted later",
		ents: []ent{dir("tmp/d", 0o755), whiteout("tmp/d")},
		// overlay: EEXIST; base: the final chtimes of tmp/d fails.
		wantFail: []string{"overlay", "base"},
	}, {
		name:     "directory entry whose parent is replaced",
		ents:     []ent{dir("a/b", 0o755), file("a", 0o644, "a")},
		wantFail: []string{"overlay", "base"},
	}, {
		name: "directory entry replaced by a symlink",
		ents: []ent{dir("a", 0o755), dir("d", 0o755), symlink("d", "a"), dir("e", 0o755), symlink("e", "nowhere")},
		// The final chtimes follows d to a; e dangles.
		wantFail: []string{"overlay", "base"},
	}, {
		name: "whiteout replaced by a later entry",
		ents: []ent{whiteout("a"), file("a", 0o644, "back")},
		check: func(t *testing.T, m *Manifest) {
			if e := entry(t, m, "a"); e.Kind != KindFile {
				t.Errorf("a = %+v", e)
			}
		},
	}, {
		name: "opaque dirs",
		ents: []ent{
			dir("var", 0o755), dir("var/lib", 0o755),
			opaque("var/lib"),
			file("var/lib/x", 0o644, "x"),
			opaque("opt/app"), // implicit parent, made opaque
			file("opt/app/y", 0o644, "y"),
			dir("opt/app", 0o700), // metadata update keeps the opaque xattr
			file("p/q/r", 0o644, "r"),
			opaque("p"), // after implicit children
			opaque(""),  // the layer root
		},
		check: func(t *testing.T, m *Manifest) {
			if !m.RootOpaque {
				t.Error("root not opaque")
			}
			for _, p := range []string{"var/lib", "opt/app", "p"} {
				if !entry(t, m, p).Opaque {
					t.Errorf("%s not opaque", p)
				}
			}
			if entry(t, m, "var").Opaque {
				t.Error("var opaque")
			}
			entry(t, m, "p/q/r")
		},
		// base: the root marker deletes the implicit "opt" and with it the
		// listed "opt/app", whose final chtimes then fails.
		wantFail: []string{"base"},
	}, {
		name: "opaque after implicit children",
		ents: []ent{
			file("p/q/r", 0o644, "r"),
			dir("p/s", 0o755),
			file("p/s/t", 0o644, "t"),
			opaque("p"),
		},
		check: func(t *testing.T, m *Manifest) {
			if !entry(t, m, "p").Opaque {
				t.Error("p not opaque")
			}
			entry(t, m, "p/q/r")
		},
		checkBase: func(t *testing.T, m *Manifest) {
			for _, e := range m.Entries {
				if e.Opaque {
					t.Errorf("%s opaque in a base layer", e.Path)
				}
			}
			// The marker deletes what was not unpacked: the implicit p/q
			// and its content (p/q/r was unpacked, but lives under p/q).
			absent(t, m, "p/q")
			entry(t, m, "p/s/t")
		},
	}, {
		name: "symlinks",
		ents: []ent{
			dir("bin", 0o755),
			file("bin/busybox", 0o755, "bb"),
			symlink("bin/sh", "busybox"),
			symlink("bin/abs", "/bin/busybox", owner(2, 2)),
			symlink("dangling", "does/not/exist"),
			symlink("hostetc", "/nonexistent-vordr-layertree-test"),
			file("hostetc/f", 0o644, "stays inside the layer"),
			symlink("lib", "usr/lib"),
			file("lib/libc.so", 0o755, "libc"),
			symlink("esc", "../../../outside"),
			file("esc/f", 0o644, "clamped"),
			symlink("chain1", "chain2"), symlink("chain2", "real"), dir("real", 0o755),
			file("chain1/f", 0o644, "chained"),
			symlink("./dot/link", "./target"),
		},
		check: func(t *testing.T, m *Manifest) {
			entry(t, m, "nonexistent-vordr-layertree-test/f")
			entry(t, m, "usr/lib/libc.so")
			entry(t, m, "outside/f")
			entry(t, m, "real/f")
			absent(t, m, "lib/libc.so")
			if e := entry(t, m, "bin/abs"); e.Link != "/bin/busybox" || e.Mode != 0o777 || e.UID != 2 {
				t.Errorf("bin/abs = %+v", e)
			}
			if e := entry(t, m, "dot/link"); e.Link != "./target" {
				t.Errorf("dot/link = %+v, want the target verbatim", e)
			}
		},
	}, {
		name: "special mode bits and owners",
		ents: []ent{
			file("setuid", 0o4755, "su"),
			file("setgid", 0o2755, "sg", owner(0, 42)),
			file("setgid-noexec", 0o2644, "lock"),
			dir("tmp", 0o1777),
			dir("shared", 0o2775, owner(1000, 1000)),
			file("none", 0, "no permissions"),
			file("big-ids", 0o640, "ids", owner(4294967294, 65534)),
		},
		check: func(t *testing.T, m *Manifest) {
			if e := entry(t, m, "setuid"); e.Mode != 0o4755 {
				t.Errorf("setuid mode %04o", e.Mode)
			}
			if e := entry(t, m, "tmp"); e.Mode != 0o1777 {
				t.Errorf("tmp mode %04o", e.Mode)
			}
		},
	}, {
		name: "devices",
		ents: []ent{
			dir("dev", 0o755),
			device(tar.TypeChar, "dev/null", 0o666, 1, 3),
			device(tar.TypeBlock, "dev/loop9", 0o660, 7, 9, owner(0, 6)),
			device(tar.TypeFifo, "dev/fifo", 0o600, 0, 0),
			device(tar.TypeChar, "dev/zero-zero", 0o644, 0, 0), // overlayfs: a whiteout
			device(tar.TypeChar, "dev/bigminor", 0o600, 259, 1<<19),
		},
		check: func(t *testing.T, m *Manifest) {
			if e := entry(t, m, "dev/null"); e.Kind != KindChar || e.Major != 1 || e.Minor != 3 {
				t.Errorf("dev/null = %+v", e)
			}
			if e := entry(t, m, "dev/zero-zero"); e.Kind != KindWhiteout || e.Mode != 0o644 {
				t.Errorf("dev/zero-zero = %+v", e)
			}
		},
	}, {
		name: "empty and large files",
		ents: []ent{file("empty", 0o644, ""), blob("big", 0o644, big)},
		check: func(t *testing.T, m *Manifest) {
			if e := entry(t, m, "big"); e.Size != int64(len(big)) {
				t.Errorf("big = %+v", e)
			}
		},
	}, {
		name: "replacements",
		ents: []ent{
			dir("r", 0o755),
			file("r/f", 0o644, "file"), dir("r/f", 0o700), // file -> dir
			dir("r/d", 0o755), file("r/d/c", 0o644, "child"), file("r/d", 0o600, "dir -> file"),
			dir("r/m", 0o700), file("r/m/kept", 0o644, "kept"), dir("r/m", 0o755, owner(3, 3)), // merge
			symlink("r/s", "x"), file("r/s", 0o644, "symlink -> file"),
			file("r/t", 0o644, "file -> symlink"), symlink("r/t", "f"),
			dir("r/u", 0o755), file("r/u/c", 0o644, "c"), symlink("r/u", "f"), // dir -> symlink
			dir("r/o", 0o755), opaque("r/o"), file("r/o", 0o644, "opaque dir -> file"),
			file("r/v", 0o644, "v1"), file("r/v", 0o640, "v2", owner(9, 9)),
		},
		check: func(t *testing.T, m *Manifest) {
			absent(t, m, "r/d/c")
			absent(t, m, "r/u/c")
			if e := entry(t, m, "r/m"); e.Mode != 0o755 || e.UID != 3 {
				t.Errorf("r/m = %+v", e)
			}
			entry(t, m, "r/m/kept")
			if e := entry(t, m, "r/f"); e.Kind != KindDir || e.Mode != 0o700 {
				t.Errorf("r/f = %+v", e)
			}
			if e := entry(t, m, "r/t"); e.Kind != KindSymlink {
				t.Errorf("r/t = %+v", e)
			}
			if e := entry(t, m, "r/v"); e.Mode != 0o640 || e.UID != 9 || e.Size != 2 {
				t.Errorf("r/v = %+v", e)
			}
		},
	}, {
		name: "file capabilities",
		ents: []ent{
			file("v2", 0o755, "v2", withCaps(capV2())),
			file("v3-root0", 0o755, "v3", withCaps(capV3(0))),
			file("v3-root1000", 0o755, "v3", withCaps(capV3(1000))),
			symlink("link-with-caps", "v2", withCaps(capV2())),
			// chown does not strip a directory's capabilities, so a later
			// entry without them keeps them.
			dir("capdir", 0o755, withCaps(capV2())),
			dir("capdir", 0o700),
		},
		check: func(t *testing.T, m *Manifest) {
			v2 := base64.StdEncoding.EncodeToString(capV2())
			if e := entry(t, m, "capdir"); e.Caps != v2 || e.Mode != 0o700 {
				t.Errorf("capdir = %+v, want caps kept and mode 0700", e)
			}
			if e := entry(t, m, "v3-root0"); e.Caps != v2 {
				t.Errorf("v3 caps with root id 0 = %q, want the kernel's v2 form %q", e.Caps, v2)
			}
		},
	}, {
		name: "global header, root entry and ./ names",
		ents: []ent{
			globalHeader("pax_global_header"),
			dir(".", 0o700, owner(1, 1)), // ignored, like containerd
			dir("./etc", 0o755),
			file("./etc/x", 0o644, "x"),
			file("etc//y", 0o644, "y"),
			file("etc/pg", 0o644, "replaced by the global header below"),
			globalHeader("etc/pg"),
		},
		check: func(t *testing.T, m *Manifest) {
			absent(t, m, "pax_global_header")
			absent(t, m, "etc/pg")
			entry(t, m, "etc/y")
		},
	}, {
		name:     "path through a file",
		ents:     []ent{file("f", 0o644, "x"), file("f/x", 0o644, "x")},
		wantFail: []string{"overlay", "base"},
	}, {
		name:     "path through a symlink to a file",
		ents:     []ent{file("f", 0o644, "x"), symlink("l", "f"), file("l/x", 0o644, "x")},
		wantFail: []string{"overlay", "base"},
	}, {
		name:     "hard link to a missing target",
		ents:     []ent{hardlink("l", "nothing", 0o644)},
		wantFail: []string{"overlay", "base"},
	}, {
		name:     "hard link to a directory",
		ents:     []ent{dir("d", 0o755), hardlink("l", "d", 0o644)},
		wantFail: []string{"overlay", "base"},
	}, {
		name:     "whiteout then a path under it",
		ents:     []ent{whiteout("w"), file("w/x", 0o644, "x")},
		wantFail: []string{"overlay"}, // base: the whiteout writes nothing
	}, {
		name:     "symlink loop in a parent path",
		ents:     []ent{symlink("a", "b"), symlink("b", "a"), file("a/x", 0o644, "x")},
		wantFail: []string{"overlay", "base"},
	}}
}

// TestMatchesContainerdApply replays each layer with FromTar/FromBaseTar and
// with containerd's applier, and requires them to agree: both fail, or
// Compare finds the directory identical to the manifest (also after a JSON
// round trip).
func TestMatchesContainerdApply(t *testing.T) {
	requireRoot(t)
	for _, tc := range applyCases() {
		layer := buildTar(t, tc.ents...)
		for _, mode := range []applyMode{overlayMode, baseMode} {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				wantFail := false
				for _, f := range tc.wantFail {
					wantFail = wantFail || f == mode.name
				}
				dir, applyErr := containerdApply(t, layer, mode)
				m, err := mode.fromTar(bytes.NewReader(layer))
				switch {
				case wantFail && applyErr == nil:
					t.Fatalf("containerd applied the layer, want it to fail")
				case !wantFail && applyErr != nil:
					t.Fatalf("containerd: %v", applyErr)
				case wantFail && err == nil:
					t.Fatalf("FromTar accepted a layer containerd refuses (%v)", applyErr)
				case wantFail:
					return
				case err != nil:
					t.Fatalf("FromTar: %v", err)
				}
				if err := Compare(dir, m); err != nil {
					t.Fatalf("Compare: %v", err)
				}
				data, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				m2, err := ParseManifest(data)
				if err != nil {
					t.Fatalf("ParseManifest: %v", err)
				}
				if err := Compare(dir, m2); err != nil {
					t.Fatalf("Compare after a JSON round trip: %v", err)
				}
				if mode.name == "overlay" && tc.check != nil {
					tc.check(t, m)
				}
				if mode.name == "base" && tc.checkBase != nil {
					tc.checkBase(t, m)
				}
			})
		}
	}
}

// TestInheritMatchesSequentialUnpack applies a layer on top of a lower one
// the way containerd's sequential unpack does (WithParents), where implicit
// directories copy the lower layer's metadata.
func TestInheritMatchesSequentialUnpack(t *testing.T) {
	requireRoot(t)
	lowerTar := buildTar(t,
		dir("usr", 0o750, owner(10, 20)),
		dir("srv", 0o700, owner(5, 5), withCaps(capV2())),
		symlink("opt", "srv"), // resolved in the lower layer
		file("etc", 0o644, "a file here stops the search"),
		dir("var", 0o1777),
	)
	lowerDir, err := containerdApply(t, lowerTar, baseMode)
	if err != nil {
		t.Fatal(err)
	}
	lower, err := FromBaseTar(bytes.NewReader(lowerTar))
	if err != nil {
		t.Fatal(err)
	}
	if err := Compare(lowerDir, lower); err != nil {
		t.Fatal(err)
	}
	upperTar := buildTar(t,
		file("usr/bin/tool", 0o755, "tool"),
		file("opt/app/run", 0o755, "run"),
		file("etc2/x", 0o644, "x"),
		file("var/new/f", 0o644, "f"),
	)
	upperDir, err := containerdApply(t, upperTar, overlayMode, archive.WithParents([]string{lowerDir}))
	if err != nil {
		t.Fatal(err)
	}
	upper, err := FromTar(bytes.NewReader(upperTar))
	if err != nil {
		t.Fatal(err)
	}
	inherited, err := upper.Inherit(lower)
	if err != nil {
		t.Fatal(err)
	}
	if err := Compare(upperDir, inherited); err != nil {
		t.Fatalf("Compare with inherited implicit dirs: %v", err)
	}
	var mm *MismatchError
	if err := Compare(upperDir, upper); !errors.As(err, &mm) || mm.Path != "opt" {
		t.Fatalf("Compare without Inherit = %v, want a mismatch at opt (0700 5:5 copied from srv)", err)
	}
	if e := entry(t, inherited, "opt"); e.Mode != 0o700 || e.UID != 5 || e.Caps == "" {
		t.Errorf("opt = %+v, want srv's 0700 5:5 with caps", e)
	}
	if e := entry(t, inherited, "opt/app"); e.Mode != 0o755 || e.UID != 0 {
		t.Errorf("opt/app = %+v, want defaults (srv/app is not in the lower layer)", e)
	}
	if upper.Entries[0].Mode != 0o755 {
		t.Error("Inherit modified its receiver")
	}

	// A lower layer where an implicit path goes through a non-directory:
	// containerd's mkparent fails, and so does Inherit.
	lowerFile := buildTar(t, file("a", 0o644, "x"))
	lowerFileDir, err := containerdApply(t, lowerFile, baseMode)
	if err != nil {
		t.Fatal(err)
	}
	through := buildTar(t, dir("a", 0o755), file("a/b/c", 0o644, "c")) // a listed, a/b implicit
	if _, err := containerdApply(t, through, overlayMode, archive.WithParents([]string{lowerFileDir})); err == nil {
		t.Fatal("containerd applied a layer whose implicit parent goes through a lower file")
	}
	lf, _ := FromBaseTar(bytes.NewReader(lowerFile))
	up, err := FromTar(bytes.NewReader(through))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Inherit(lf); err == nil {
		t.Fatal("Inherit accepted an implicit path through a lower file")
	}
}

// TestContainerdClampsHostileNames documents why FromTar refuses what
// containerd quietly rewrites: "../x" and "/x" land at "x".
func TestContainerdClampsHostileNames(t *testing.T) {
	requireRoot(t)
	for _, name := range []string{"../escape", "/abs", "a/../../b"} {
		layer := buildTar(t, file(name, 0o644, "x"))
		dir, err := containerdApply(t, layer, overlayMode)
		if err != nil {
			t.Fatalf("%s: containerd: %v", name, err)
		}
		want := filepath.Join(dir, filepath.Base(name))
		if _, err := os.Lstat(want); err != nil {
			t.Errorf("%s: containerd did not clamp it to %s: %v", name, want, err)
		}
		if _, err := FromTar(bytes.NewReader(layer)); !errors.Is(err, ErrInvalidLayer) {
			t.Errorf("%s: FromTar = %v, want ErrInvalidLayer", name, err)
		}
	}
}

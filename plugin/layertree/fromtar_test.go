package layertree

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestFromTarRejectsHostileInput(t *testing.T) {
	withFormat := func(e ent, f tar.Format) ent { e.hdr.Format = f; return e }
	withPAX := func(e ent, k, v string) ent {
		e.hdr.PAXRecords = map[string]string{k: v}
		return e
	}
	for _, tc := range []struct {
		name string
		ents []ent
	}{
		{"dot-dot escape", []ent{file("../escape", 0o644, "x")}},
		{"dot-dot escape after clean", []ent{file("a/../../b", 0o644, "x")}},
		{"absolute path", []ent{file("/etc/passwd", 0o644, "x")}},
		{"absolute root", []ent{dir("/", 0o755)}},
		{"hard link escaping", []ent{hardlink("l", "../../etc/passwd", 0o644)}},
		{"hard link absolute", []ent{file("f", 0o644, "x"), hardlink("l", "/f", 0o644)}},
		{"hard link to dot-dot", []ent{dir("d", 0o755), hardlink("l", "d/..", 0o644)}},
		{"hard link to missing", []ent{hardlink("l", "nothing", 0o644)}},
		{"hard link to directory", []ent{dir("d", 0o755), hardlink("l", "d", 0o644)}},
		{"empty symlink target", []ent{symlink("l", "")}},
		{"bare whiteout", []ent{file(".wh.", 0o644, "")}},
		{"whiteout of dot", []ent{file("a/.wh..", 0o644, "")}},
		{"whiteout of dot-dot", []ent{file("a/.wh...", 0o644, "")}},
		{"contiguous file typeflag", []ent{mk(tar.Header{Typeflag: tar.TypeCont, Name: "c", Mode: 0o644}, nil, nil)}},
		{"volume header typeflag", []ent{mk(tar.Header{Typeflag: 'V', Name: "v", Mode: 0o644}, nil, nil)}},
		{"uid beyond 32 bits", []ent{file("f", 0o644, "x", owner(1<<32, 0))}},
		{"uid -1 as 32 bits", []ent{file("f", 0o644, "x", owner(1<<32-1, 0))}},
		{"device number out of range", []ent{withFormat(device(tar.TypeChar, "d", 0o600, 1<<33, 1), tar.FormatGNU)}},
		{"v1 file capabilities", []ent{withPAX(file("f", 0o755, "x"), paxCaps, "\x00\x00\x00\x01abcdefgh")}},
		{"symlink loop", []ent{symlink("a", "b"), symlink("b", "a"), file("a/x", 0o644, "x")}},
		{"path through a file", []ent{file("f", 0o644, "x"), file("f/x", 0o644, "x")}},
		{"whiteout over own file", []ent{file("f", 0o644, "x"), whiteout("f")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := FromTar(bytes.NewReader(buildTar(t, tc.ents...)))
			if !errors.Is(err, ErrInvalidLayer) {
				t.Fatalf("FromTar = %v, %v; want an error wrapping ErrInvalidLayer", m, err)
			}
			t.Log(err)
		})
	}
}

func TestFromTarOldGNUSparse(t *testing.T) {
	// archive/tar reports old GNU sparse files with typeflag 'S', which
	// containerd's applier does not handle.
	layer := buildTar(t, withGNU(file("sparse", 0o644, "data")))
	hdrBlock := layer[:512]
	hdrBlock[156] = tar.TypeGNUSparse
	// realsize (offset 483, 12 bytes octal) must cover the data.
	copy(hdrBlock[483:], "00000000004\x00")
	fixChecksum(hdrBlock)
	if _, err := FromTar(bytes.NewReader(layer)); !errors.Is(err, ErrInvalidLayer) {
		t.Fatalf("FromTar(GNU sparse) = %v, want ErrInvalidLayer", err)
	}
}

func withGNU(e ent) ent { e.hdr.Format = tar.FormatGNU; return e }

func fixChecksum(b []byte) {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b[:512] {
		sum += int64(c)
	}
	copy(b[148:156], []byte(strings.Repeat("0", 6-len(octal(sum)))+octal(sum)+"\x00 "))
}

func octal(v int64) string {
	if v == 0 {
		return "0"
	}
	var s []byte
	for ; v > 0; v /= 8 {
		s = append([]byte{byte('0' + v%8)}, s...)
	}
	return string(s)
}

func TestFromTarTruncated(t *testing.T) {
	layer := buildTar(t, file("f", 0o644, strings.Repeat("x", 2000)))
	_, err := FromTar(bytes.NewReader(layer[:1024]))
	if err == nil || errors.Is(err, ErrInvalidLayer) {
		t.Fatalf("FromTar(truncated) = %v, want a read error", err)
	}
}

func TestCheckNameNUL(t *testing.T) {
	// archive/tar cannot carry NUL in a name (it ends USTAR strings and is
	// refused in PAX records), but the check must hold on its own.
	if _, err := checkName("a\x00b"); !errors.Is(err, ErrInvalidLayer) {
		t.Fatalf("checkName(NUL) = %v", err)
	}
}

func richLayer(tb testing.TB) []byte {
	return buildTar(tb,
		dir("bin", 0o755),
		file("bin/busybox", 0o4755, "busybox"),
		hardlink("bin/sh", "bin/busybox", 0o4755),
		symlink("bin/ls", "busybox"),
		file("bin/ping", 0o755, "ping", withCaps(capV2())),
		file("etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n", owner(0, 42)),
		whiteout("etc/shadow", owner(3, 4)),
		dir("var/lib", 0o700),
		opaque("var/lib"),
		opaque(""),
		device(tar.TypeChar, "dev/null", 0o666, 1, 3),
		device(tar.TypeBlock, "dev/sda", 0o660, 8, 0),
		device(tar.TypeFifo, "run/fifo", 0o600, 0, 0),
		file("usr/lib/empty", 0o644, ""),
		file("usr/bin/sgid", 0o2711, "sgid"),
		file("usr/share/lockfile", 0o2644, "setgid without exec"),
	)
}

func TestManifestJSONRoundTrip(t *testing.T) {
	m, err := FromTar(bytes.NewReader(richLayer(t)))
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(data)
	if err != nil {
		t.Fatalf("ParseManifest: %v\n%s", err, data)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, m)
	}
	again, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, data) {
		t.Fatal("re-encoding is not byte-identical")
	}
	for _, key := range []string{`"version": 1`, `"root_opaque": true`, `"entries"`, `"path"`, `"kind": "whiteout"`,
		`"mode"`, `"uid"`, `"gid"`, `"size"`, `"digest": "sha256:`, `"link"`, `"major"`, `"minor"`,
		`"opaque": true`, `"caps"`, `"implicit": true`} {
		if !bytes.Contains(data, []byte(key)) {
			t.Errorf("JSON lacks %s:\n%s", key, data)
		}
	}
	// omitempty: a directory carries none of the file/link/device fields.
	var raw struct{ Entries []map[string]any }
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, e := range raw.Entries {
		if e["path"] == "bin" {
			for _, k := range []string{"size", "digest", "link", "major", "minor", "opaque", "caps", "implicit"} {
				if _, ok := e[k]; ok {
					t.Errorf("directory entry has %q: %v", k, e)
				}
			}
		}
	}
	// An empty layer encodes entries as [], not null.
	empty, err := FromTar(bytes.NewReader(buildTar(t)))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(empty); string(b) != `{"version":1,"entries":[]}` {
		t.Errorf("empty manifest = %s", b)
	}
}

func TestParseManifestRejects(t *testing.T) {
	const digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	file := `{"path":"f","kind":"file","mode":420,"uid":0,"gid":0,"digest":"` + digest + `"}`
	for name, doc := range map[string]string{
		"version 2":        `{"version":2,"entries":[]}`,
		"unknown field":    `{"version":1,"entries":[],"extra":1}`,
		"trailing data":    `{"version":1,"entries":[]} {}`,
		"unsorted":         `{"version":1,"entries":[{"path":"z","kind":"dir","mode":493,"uid":0,"gid":0},{"path":"a","kind":"dir","mode":493,"uid":0,"gid":0}]}`,
		"duplicate":        `{"version":1,"entries":[` + file + `,` + file + `]}`,
		"missing parent":   `{"version":1,"entries":[{"path":"d/f","kind":"fifo","mode":420,"uid":0,"gid":0}]}`,
		"parent not a dir": `{"version":1,"entries":[` + file + `,{"path":"f/x","kind":"fifo","mode":420,"uid":0,"gid":0}]}`,
		"bad digest":       `{"version":1,"entries":[{"path":"f","kind":"file","mode":420,"uid":0,"gid":0,"digest":"sha256:abc"}]}`,
		"unclean path":     `{"version":1,"entries":[{"path":"./f","kind":"fifo","mode":420,"uid":0,"gid":0}]}`,
		"absolute path":    `{"version":1,"entries":[{"path":"/f","kind":"fifo","mode":420,"uid":0,"gid":0}]}`,
		"escaping path":    `{"version":1,"entries":[{"path":"../f","kind":"fifo","mode":420,"uid":0,"gid":0}]}`,
		"type bits":        `{"version":1,"entries":[{"path":"f","kind":"fifo","mode":33188,"uid":0,"gid":0}]}`,
		"unknown kind":     `{"version":1,"entries":[{"path":"f","kind":"socket","mode":420,"uid":0,"gid":0}]}`,
		"char 0:0":         `{"version":1,"entries":[{"path":"f","kind":"char","mode":420,"uid":0,"gid":0}]}`,
		"opaque file":      `{"version":1,"entries":[{"path":"f","kind":"fifo","mode":420,"uid":0,"gid":0,"opaque":true}]}`,
		"symlink no link":  `{"version":1,"entries":[{"path":"f","kind":"symlink","mode":511,"uid":0,"gid":0}]}`,
		"negative uid":     `{"version":1,"entries":[{"path":"f","kind":"fifo","mode":420,"uid":-1,"gid":0}]}`,
		"bad caps":         `{"version":1,"entries":[{"path":"f","kind":"fifo","mode":420,"uid":0,"gid":0,"caps":"!!"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseManifest([]byte(doc)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestExecutables(t *testing.T) {
	m, err := FromTar(bytes.NewReader(richLayer(t)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range m.Executables() {
		if e.Digest == "" || e.Size == 0 {
			t.Errorf("%s lacks its digest/size", e.Path)
		}
		got = append(got, e.Path)
	}
	want := []string{"bin/busybox", "bin/ping", "bin/sh", "usr/bin/sgid", "usr/share/lockfile"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Executables = %v, want %v", got, want)
	}
}

func TestInheritRejectsInvalidLowers(t *testing.T) {
	m, err := FromTar(bytes.NewReader(buildTar(t, file("a/b", 0o644, "x"))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Inherit(&Manifest{Version: 7}); !errors.Is(err, ErrInvalidLayer) {
		t.Fatalf("Inherit(bad lower) = %v", err)
	}
	// No lower has "a": the defaults stay.
	lower, err := FromBaseTar(bytes.NewReader(buildTar(t, dir("other", 0o700))))
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Inherit(lower)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("Inherit changed unrelated entries: %+v", got)
	}
}

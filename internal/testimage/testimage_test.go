//go:build linux

package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// requireBusybox fails (not skips) without busybox: every machine that runs
// the tests is provisioned by make deps, so its absence is a setup bug.
func requireBusybox(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(DefaultBusyboxPath); err != nil {
		t.Fatalf("%s is missing: run `make deps` (hack/deps.sh installs Debian's busybox-static): %v", DefaultBusyboxPath, err)
	}
}

var (
	busyboxOnce sync.Once
	busyboxImg  *Image
	busyboxErr  error
)

// defaultBusybox builds the default busybox image once per test binary.
func defaultBusybox(t *testing.T) *Image {
	t.Helper()
	requireBusybox(t)
	busyboxOnce.Do(func() { busyboxImg, busyboxErr = Busybox(Options{}) })
	if busyboxErr != nil {
		t.Fatal(busyboxErr)
	}
	return busyboxImg
}

func archiveBytes(t *testing.T, img *Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := img.WriteArchive(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// parsedArchive is an OCI archive read back and checked the way a strict
// consumer would: every blob's name is its digest, and the graph
// index → manifest → config/layers resolves.
type parsedArchive struct {
	files    map[string][]byte
	order    []string
	index    ocispec.Index
	manifest ocispec.Manifest
	config   ocispec.Image
	layerTar []byte // uncompressed
}

func parseArchive(t *testing.T, b []byte) parsedArchive {
	t.Helper()
	p := parsedArchive{files: map[string][]byte{}}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p.order = append(p.order, hdr.Name)
		if hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(epoch) {
			t.Errorf("archive entry %s: uid %d gid %d mtime %v, want 0 0 %v", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime, epoch)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		p.files[hdr.Name] = content
	}

	var layout ocispec.ImageLayout
	mustJSON(t, p.files[ocispec.ImageLayoutFile], &layout)
	if layout.Version != ocispec.ImageLayoutVersion {
		t.Fatalf("oci-layout version %q, want %q", layout.Version, ocispec.ImageLayoutVersion)
	}
	for name, content := range p.files {
		if !strings.HasPrefix(name, "blobs/") {
			continue
		}
		d := digest.Digest(strings.Replace(strings.TrimPrefix(name, "blobs/"), "/", ":", 1))
		if err := d.Validate(); err != nil {
			t.Fatalf("blob %s: %v", name, err)
		}
		if got := digest.FromBytes(content); got != d {
			t.Fatalf("blob %s has digest %s", name, got)
		}
	}
	blob := func(desc ocispec.Descriptor) []byte {
		t.Helper()
		b, ok := p.files[blobPath(desc.Digest)]
		if !ok {
			t.Fatalf("blob %s (%s) missing from archive", desc.Digest, desc.MediaType)
		}
		if int64(len(b)) != desc.Size {
			t.Fatalf("blob %s: size %d, descriptor says %d", desc.Digest, len(b), desc.Size)
		}
		return b
	}

	mustJSON(t, p.files[ocispec.ImageIndexFile], &p.index)
	if p.index.SchemaVersion != 2 || p.index.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("index: schemaVersion %d mediaType %q", p.index.SchemaVersion, p.index.MediaType)
	}
	if len(p.index.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(p.index.Manifests))
	}
	mdesc := p.index.Manifests[0]
	if mdesc.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("manifest media type %q", mdesc.MediaType)
	}
	mustJSON(t, blob(mdesc), &p.manifest)
	if p.manifest.SchemaVersion != 2 || p.manifest.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("manifest: schemaVersion %d mediaType %q", p.manifest.SchemaVersion, p.manifest.MediaType)
	}
	if p.manifest.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Fatalf("config media type %q", p.manifest.Config.MediaType)
	}
	mustJSON(t, blob(p.manifest.Config), &p.config)
	if len(p.manifest.Layers) != 1 || p.manifest.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("layers %+v, want one %s", p.manifest.Layers, ocispec.MediaTypeImageLayerGzip)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(p.manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() || zr.Comment != "" {
		t.Errorf("gzip header carries name %q, time %v, comment %q; want none", zr.Name, zr.ModTime, zr.Comment)
	}
	if p.layerTar, err = io.ReadAll(zr); err != nil {
		t.Fatal(err)
	}
	if p.config.RootFS.Type != "layers" || !reflect.DeepEqual(p.config.RootFS.DiffIDs, []digest.Digest{digest.FromBytes(p.layerTar)}) {
		t.Fatalf("rootfs %+v, want diff_ids [%s]", p.config.RootFS, digest.FromBytes(p.layerTar))
	}
	return p
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if b == nil {
		t.Fatalf("missing JSON for %T", v)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %T: %v", v, err)
	}
}

type layerEntry struct {
	hdr     *tar.Header
	content []byte
}

// readLayer returns the entries of an uncompressed layer in order.
func readLayer(t *testing.T, b []byte) ([]string, map[string]layerEntry) {
	t.Helper()
	var order []string
	entries := map[string]layerEntry{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return order, entries
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if _, dup := entries[name]; dup {
			t.Fatalf("layer has %s twice", name)
		}
		order = append(order, name)
		entries[name] = layerEntry{hdr, content}
	}
}

func TestBusyboxDeterministic(t *testing.T) {
	a := defaultBusybox(t)
	b, err := Busybox(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Manifest.Digest != b.Manifest.Digest {
		t.Fatalf("manifest digests differ: %s, %s", a.Manifest.Digest, b.Manifest.Digest)
	}
	if !bytes.Equal(archiveBytes(t, a), archiveBytes(t, b)) {
		t.Fatal("two archives of the same input differ")
	}

	// The layout directory holds the same bytes as the archive.
	dirA, dirB := t.TempDir(), t.TempDir()
	if err := a.WriteLayout(dirA); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteLayout(dirB); err != nil {
		t.Fatal(err)
	}
	filesA, filesB := readTree(t, dirA), readTree(t, dirB)
	if !reflect.DeepEqual(filesA, filesB) {
		t.Fatal("two layouts of the same input differ")
	}
	p := parseArchive(t, archiveBytes(t, a))
	if !reflect.DeepEqual(filesA, p.files) {
		t.Fatalf("layout files %v differ from archive files %v", keys(filesA), keys(p.files))
	}

	// A different input changes the digest.
	c, err := Busybox(Options{Files: []File{{Path: "/etc/motd", Content: []byte("hi\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Manifest.Digest == a.Manifest.Digest {
		t.Fatal("an extra file did not change the manifest digest")
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestBusyboxArchive(t *testing.T) {
	img := defaultBusybox(t)
	p := parseArchive(t, archiveBytes(t, img))

	want := []string{"blobs/", "blobs/sha256/"}
	for _, d := range []digest.Digest{img.Manifest.Digest, img.Config.Digest, img.Layers[0].Digest} {
		want = append(want, blobPath(d))
	}
	sort.Strings(want[2:])
	want = append(want, "index.json", "oci-layout")
	if !reflect.DeepEqual(p.order, want) {
		t.Errorf("archive entries %v, want %v", p.order, want)
	}

	m := p.index.Manifests[0]
	if m.Digest != img.Manifest.Digest || m.Size != img.Manifest.Size {
		t.Errorf("index manifest %s/%d, Image.Manifest %s/%d", m.Digest, m.Size, img.Manifest.Digest, img.Manifest.Size)
	}
	if got := m.Annotations[AnnotationImageName]; got != DefaultBusyboxName {
		t.Errorf("%s = %q, want %q", AnnotationImageName, got, DefaultBusyboxName)
	}
	if got := m.Annotations[ocispec.AnnotationRefName]; got != "test" {
		t.Errorf("%s = %q, want the tag %q", ocispec.AnnotationRefName, got, "test")
	}
	if m.Platform == nil || m.Platform.OS != "linux" || m.Platform.Architecture != runtime.GOARCH {
		t.Errorf("manifest platform %+v, want linux/%s", m.Platform, runtime.GOARCH)
	}
	if p.manifest.Config.Digest != img.Config.Digest || p.manifest.Layers[0].Digest != img.Layers[0].Digest {
		t.Error("manifest descriptors differ from Image's")
	}
	if img.DiffIDs[0] != digest.FromBytes(p.layerTar) {
		t.Errorf("Image.DiffIDs %v, uncompressed layer %s", img.DiffIDs, digest.FromBytes(p.layerTar))
	}

	c := p.config
	if c.OS != "linux" || c.Architecture != runtime.GOARCH {
		t.Errorf("config platform %s/%s", c.OS, c.Architecture)
	}
	if c.Created != nil {
		t.Errorf("config has Created %v; a timestamp breaks determinism", c.Created)
	}
	if !reflect.DeepEqual(c.Config.Cmd, []string{"/bin/sh"}) || c.Config.Entrypoint != nil {
		t.Errorf("config Cmd %q Entrypoint %q, want [/bin/sh] and none", c.Config.Cmd, c.Config.Entrypoint)
	}
	if !reflect.DeepEqual(c.Config.Env, []string{DefaultPath}) {
		t.Errorf("config Env %q", c.Config.Env)
	}
}

func TestBusyboxRootfs(t *testing.T) {
	img := defaultBusybox(t)
	p := parseArchive(t, archiveBytes(t, img))
	order, entries := readLayer(t, p.layerTar)

	if !sort.StringsAreSorted(order) {
		t.Error("layer entries are not sorted")
	}
	seen := map[string]bool{}
	for _, name := range order {
		e := entries[name]
		if dir := filepath.Dir(name); dir != "." && !seen[dir] {
			t.Errorf("%s comes before its parent directory %s", name, dir)
		}
		seen[name] = true
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 || !e.hdr.ModTime.Equal(epoch) {
			t.Errorf("%s: uid %d gid %d mtime %v", name, e.hdr.Uid, e.hdr.Gid, e.hdr.ModTime)
		}
	}

	host, err := os.ReadFile(DefaultBusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	bb := entries["bin/busybox"]
	if bb.hdr == nil || bb.hdr.Typeflag != tar.TypeReg || bb.hdr.Mode != 0o755 || !bytes.Equal(bb.content, host) {
		t.Fatalf("bin/busybox missing or not the host's busybox with mode 0755")
	}
	// Every applet resolves to bin/busybox.
	links := 0
	for _, name := range order {
		e := entries[name]
		if e.hdr.Typeflag != tar.TypeSymlink {
			continue
		}
		links++
		if got := filepath.Join(filepath.Dir(name), e.hdr.Linkname); got != "bin/busybox" {
			t.Errorf("%s -> %s resolves to %s, want bin/busybox", name, e.hdr.Linkname, got)
		}
	}
	if links < 100 {
		t.Errorf("%d applet links, want busybox's full list", links)
	}
	for name, target := range map[string]string{"bin/sh": "busybox", "usr/bin/env": "../../bin/busybox", "sbin/ip": "../bin/busybox"} {
		if e := entries[name]; e.hdr == nil || e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != target {
			t.Errorf("%s is not a symlink to %s", name, target)
		}
	}

	for name, want := range map[string]struct {
		typ  byte
		mode int64
		has  string
	}{
		"etc/passwd": {tar.TypeReg, 0o644, "nobody:x:65534:65534:"},
		"etc/group":  {tar.TypeReg, 0o644, "root:x:0:"},
		"etc/shadow": {tar.TypeReg, 0o640, "root:*:"},
		"tmp":        {tar.TypeDir, 0o1777, ""},
		"root":       {tar.TypeDir, 0o700, ""},
		"proc":       {tar.TypeDir, 0o555, ""},
		"sys":        {tar.TypeDir, 0o555, ""},
		"dev":        {tar.TypeDir, 0o755, ""},
	} {
		e := entries[name]
		if e.hdr == nil || e.hdr.Typeflag != want.typ || e.hdr.Mode != want.mode || !strings.Contains(string(e.content), want.has) {
			t.Errorf("%s: got %+v, want type %c mode %o containing %q", name, e.hdr, want.typ, want.mode, want.has)
		}
	}
	if _, ok := entries["linuxrc"]; ok {
		t.Error("linuxrc should not be in a container image")
	}
}

func TestExtraFiles(t *testing.T) {
	requireBusybox(t)
	img, err := Busybox(Options{
		Name: "vordr/custom",
		Files: []File{
			{Path: "etc/passwd", Content: []byte("root:x:0:0::/:/bin/sh\n")},
			{Path: "/opt/app/run.sh", Mode: 0o755 | fs.ModeSetuid, Content: []byte("#!/bin/sh\necho ok\n")},
			{Path: "/opt/app/current", Mode: fs.ModeSymlink, Target: "run.sh"},
			{Path: "/srv/data", Mode: fs.ModeDir | 0o750},
			// Replacing a directory by a file drops its contents.
			{Path: "/root/.profile", Content: []byte("x")},
			{Path: "/root", Content: []byte("not a dir any more")},
		},
		Cmd:        []string{"/opt/app/run.sh"},
		Env:        []string{"FOO=bar"},
		WorkingDir: "/opt/app",
		User:       "nobody",
		Labels:     map[string]string{"vordr.test": "1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "docker.io/vordr/custom:latest" {
		t.Errorf("name %q, want docker.io/vordr/custom:latest", img.Name)
	}
	p := parseArchive(t, archiveBytes(t, img))
	_, entries := readLayer(t, p.layerTar)
	checks := []struct {
		name string
		typ  byte
		mode int64
		body string
		link string
	}{
		{"etc/passwd", tar.TypeReg, 0o644, "root:x:0:0::/:/bin/sh\n", ""},
		{"opt", tar.TypeDir, 0o755, "", ""},
		{"opt/app", tar.TypeDir, 0o755, "", ""},
		{"opt/app/run.sh", tar.TypeReg, 0o4755, "#!/bin/sh\necho ok\n", ""},
		{"opt/app/current", tar.TypeSymlink, 0o777, "", "run.sh"},
		{"srv/data", tar.TypeDir, 0o750, "", ""},
		{"root", tar.TypeReg, 0o644, "not a dir any more", ""},
	}
	for _, c := range checks {
		e := entries[c.name]
		if e.hdr == nil || e.hdr.Typeflag != c.typ || e.hdr.Mode != c.mode || string(e.content) != c.body || e.hdr.Linkname != c.link {
			t.Errorf("%s: got %+v %q", c.name, e.hdr, e.content)
		}
	}
	if _, ok := entries["root/.profile"]; ok {
		t.Error("root/.profile survived replacing /root by a file")
	}
	cfg := p.config.Config
	if !reflect.DeepEqual(cfg.Env, []string{DefaultPath, "FOO=bar"}) || cfg.WorkingDir != "/opt/app" || cfg.User != "nobody" ||
		!reflect.DeepEqual(cfg.Cmd, []string{"/opt/app/run.sh"}) || cfg.Labels["vordr.test"] != "1" {
		t.Errorf("config %+v", cfg)
	}

	for _, bad := range []File{
		{Path: "/", Mode: fs.ModeDir},
		{Path: "/bin/sh/x", Content: []byte("parent is a symlink")},
		{Path: "/l", Mode: fs.ModeSymlink},
		{Path: "/p", Mode: fs.ModeNamedPipe},
	} {
		if _, err := Busybox(Options{Files: []File{bad}}); err == nil {
			t.Errorf("Files %+v accepted", bad)
		}
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string][2]string{
		"busybox":                   {"docker.io/library/busybox:latest", "latest"},
		"vordr/busybox:test":        {"docker.io/vordr/busybox:test", "test"},
		"localhost:5000/x/y:v1":     {"localhost:5000/x/y:v1", "v1"},
		"registry.k8s.io/pause:3.1": {"registry.k8s.io/pause:3.1", "3.1"},
	} {
		name, tag, err := normalizeName(in)
		if err != nil || name != want[0] || tag != want[1] {
			t.Errorf("normalizeName(%q) = %q, %q, %v; want %q, %q", in, name, tag, err, want[0], want[1])
		}
	}
	for _, bad := range []string{"has space", "UpperCase", "x:1:2", "x@sha256:" + strings.Repeat("a", 64)} {
		if _, err := Build("", Options{Name: bad}); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

func TestBuildDir(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "usr/bin/tool"), []byte("tool"), 0o755))
	must(os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/alias")))
	must(os.Symlink("tool", filepath.Join(dir, "usr/bin/link")))
	must(os.WriteFile(filepath.Join(dir, "secret"), []byte("s"), 0o600))
	must(os.Chmod(filepath.Join(dir, "secret"), 0o600))

	build := func() *Image {
		img, err := Build(dir, Options{Name: "example.com/dir:1", Entrypoint: []string{"/usr/bin/tool"}})
		must(err)
		return img
	}
	a := build()
	// Times and owners on disk do not matter.
	must(os.Chtimes(filepath.Join(dir, "secret"), epoch.Add(12345e9), epoch.Add(12345e9)))
	must(os.Lchown(filepath.Join(dir, "secret"), 1000, 1000))
	b := build()
	if !bytes.Equal(archiveBytes(t, a), archiveBytes(t, b)) {
		t.Fatal("rebuilding the same tree after touching times and owners changed the archive")
	}

	p := parseArchive(t, archiveBytes(t, a))
	_, entries := readLayer(t, p.layerTar)
	// "alias" sorts before "tool", so it carries the content and tool links to it.
	if e := entries["usr/bin/alias"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeReg || string(e.content) != "tool" {
		t.Errorf("usr/bin/alias: %+v", e.hdr)
	}
	if e := entries["usr/bin/tool"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeLink || e.hdr.Linkname != "usr/bin/alias" {
		t.Errorf("usr/bin/tool: %+v", e.hdr)
	}
	if e := entries["usr/bin/link"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeSymlink || e.hdr.Linkname != "tool" {
		t.Errorf("usr/bin/link: %+v", e.hdr)
	}
	if e := entries["secret"]; e.hdr == nil || e.hdr.Mode != 0o600 || e.hdr.Uid != 0 {
		t.Errorf("secret: %+v", e.hdr)
	}
	if p.config.Config.Cmd != nil || !reflect.DeepEqual(p.config.Config.Entrypoint, []string{"/usr/bin/tool"}) {
		t.Errorf("config %+v", p.config.Config)
	}

	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	if _, err := Build(dir, Options{}); err == nil || !strings.Contains(err.Error(), "fifo") {
		t.Errorf("a FIFO in the tree: err %v, want one naming it", err)
	}
}

// TestContainerdImport feeds the archive to containerd's own importer (what
// `ctr image import --local` and Client.Import run) with an on-disk content
// store, and resolves the image for this platform as the unpacker would.
func TestContainerdImport(t *testing.T) {
	img := defaultBusybox(t)
	ctx := context.Background()
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := archive.ImportIndex(ctx, store, bytes.NewReader(archiveBytes(t, img)))
	if err != nil {
		t.Fatal(err)
	}
	idxJSON, err := content.ReadBlob(ctx, store, idxDesc)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	mustJSON(t, idxJSON, &idx)
	if got := idx.Manifests[0].Annotations[images.AnnotationImageName]; got != DefaultBusyboxName {
		t.Errorf("containerd sees image name %q, want %q", got, DefaultBusyboxName)
	}
	m, err := images.Manifest(ctx, store, idxDesc, platforms.Default())
	if err != nil {
		t.Fatalf("containerd cannot resolve a manifest for %s: %v", platforms.DefaultString(), err)
	}
	if m.Config.Digest != img.Config.Digest {
		t.Errorf("resolved config %s, want %s", m.Config.Digest, img.Config.Digest)
	}
	available, _, _, missing, err := images.Check(ctx, store, idx.Manifests[0], platforms.Default())
	if err != nil || !available || len(missing) != 0 {
		t.Errorf("images.Check: available %v missing %v err %v", available, missing, err)
	}
	diffIDs, err := images.RootFS(ctx, store, m.Config)
	if err != nil || !reflect.DeepEqual(diffIDs, img.DiffIDs) {
		t.Errorf("containerd reads diff ids %v (%v), want %v", diffIDs, err, img.DiffIDs)
	}
}

func TestWriteArchiveFile(t *testing.T) {
	img := defaultBusybox(t)
	path := filepath.Join(t.TempDir(), "busybox.tar")
	if err := img.WriteArchiveFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, archiveBytes(t, img)) {
		t.Fatal("WriteArchiveFile and WriteArchive differ")
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestBusyboxMissing(t *testing.T) {
	_, err := Busybox(Options{BusyboxPath: filepath.Join(t.TempDir(), "busybox")})
	if err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("missing busybox: err %v, want one telling to run make deps", err)
	}
	// A dynamically linked binary would fail inside the image; refuse it.
	dynamic := ""
	for _, p := range []string{"/usr/bin/true", "/bin/true", "/usr/bin/env"} {
		if f, err := elf.Open(p); err == nil {
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					dynamic = p
				}
			}
			f.Close()
		}
		if dynamic != "" {
			break
		}
	}
	if dynamic == "" {
		t.Log("no dynamically linked binary found to check the static check with")
		return
	}
	if _, err := Busybox(Options{BusyboxPath: dynamic}); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("dynamic %s: err %v", dynamic, err)
	}
}

//go:build linux

package integration

// The gate on multi-layer images: every other gate test runs a single-layer
// image, where only the bottom-layer applier (no whiteout conversion, no
// inherited parents) is exercised. These images stack hand-written layers
// on the busybox layer that use what real image builders emit and what
// containerd's overlay applier treats specially: implicit parent
// directories (whose metadata the sequential unpack copies from the layer
// below), hard links, symlinks, setuid bits, file capabilities, whiteouts of
// a lower file and a lower directory, and opaque directories over lower
// ones.

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/plugin"
)

// Layer 2 and 3 content. suid is what the forged middle layer changes: the
// top layer does not touch it, so the forgery shows in the container.
const (
	toolV1  = "#!/bin/sh\necho tool v1\n"
	toolV2  = "#!/bin/sh\necho tool v2\n"
	suidSh  = "#!/bin/sh\necho suid genuine\n"
	suidBad = "#!/bin/sh\necho suid FORGED!\n" // same size: only the hash tells
	// capNetRawEP is a v2 security.capability value: cap_net_raw+ep.
	capNetRawEP = "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
)

// multiLayerImage is a three-layer image:
//
//  1. busybox plus /etc/marker (= marker), /etc/removeme,
//     /var/lib/data/{old1,old2}, /usr/share/doc/readme and
//     /var/cache/stale;
//  2. with no directory entries for its parents: /opt/app/bin/tool (0755),
//     a hard link tool2 to it, a symlink tool-link -> tool, a setuid
//     script suid (4755, content suid), a script with a file capability
//     (cap_net_raw+ep), /root/l2 (/root implicit, inheriting the base
//     layer's 0700), a whiteout of /etc/removeme, an opaque /var/lib/data
//     holding only "new", and explicit directories /srv (0700) and
//     /srv/owned (0750, 1000:1000);
//  3. again without directory entries: a new /opt/app/bin/tool, /srv/x/y
//     (/srv implicit, inheriting 0700; /srv/x implicit and new, 0755),
//     /srv/owned/f (/srv/owned implicit, inheriting 0750 1000:1000),
//     /root/l3 (inheriting layer 2's inherited 0700), /tmp/l3/x (/tmp
//     implicit: layer 2 has no /tmp, so it inherits the base layer's
//     1777), a whiteout of the base layer's directory /usr/share/doc, and
//     an opaque /var/cache written the way docker does (directory entry,
//     marker, new content) over the base layer's.
func multiLayerImage(t *testing.T, ref, marker, suid string) *testimage.Image {
	t.Helper()
	l2, err := testimage.LayerTar(
		testimage.LayerEntry{Name: "opt/app/bin/tool", Mode: 0o755, Content: []byte(toolV1)},
		testimage.LayerEntry{Name: "opt/app/bin/tool2", Type: tar.TypeLink, Mode: 0o755, Link: "opt/app/bin/tool"},
		testimage.LayerEntry{Name: "opt/app/bin/tool-link", Type: tar.TypeSymlink, Link: "tool"},
		testimage.LayerEntry{Name: "opt/app/bin/suid", Mode: 0o4755, Content: []byte(suid)},
		testimage.LayerEntry{Name: "opt/app/bin/capped", Mode: 0o755, Content: []byte("#!/bin/sh\necho capped\n"),
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": capNetRawEP}},
		testimage.LayerEntry{Name: "root/l2", Content: []byte("l2\n")},
		testimage.LayerEntry{Name: "etc/.wh.removeme"},
		testimage.LayerEntry{Name: "var/lib/data/.wh..wh..opq"},
		testimage.LayerEntry{Name: "var/lib/data/new", Content: []byte("new\n")},
		testimage.LayerEntry{Name: "srv", Type: tar.TypeDir, Mode: 0o700},
		testimage.LayerEntry{Name: "srv/owned", Type: tar.TypeDir, Mode: 0o750, UID: 1000, GID: 1000},
	)
	if err != nil {
		t.Fatal(err)
	}
	l3, err := testimage.LayerTar(
		testimage.LayerEntry{Name: "opt/app/bin/tool", Mode: 0o755, Content: []byte(toolV2)},
		testimage.LayerEntry{Name: "srv/x/y", Content: []byte("y\n")},
		testimage.LayerEntry{Name: "srv/owned/f", Content: []byte("f\n")},
		testimage.LayerEntry{Name: "root/l3", Content: []byte("l3\n")},
		testimage.LayerEntry{Name: "tmp/l3/x", Content: []byte("x\n")},
		testimage.LayerEntry{Name: "usr/share/.wh.doc"},
		testimage.LayerEntry{Name: "var/cache", Type: tar.TypeDir, Mode: 0o755},
		testimage.LayerEntry{Name: "var/cache/.wh..wh..opq"},
		testimage.LayerEntry{Name: "var/cache/fresh", Content: []byte("fresh\n")},
	)
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Layered(testimage.Options{Name: ref, Files: []testimage.File{
		{Path: "/etc/marker", Content: []byte(marker + "\n")},
		{Path: "/etc/removeme", Content: []byte("removed by layer 2\n")},
		{Path: "/var/lib/data/old1", Content: []byte("old1\n")},
		{Path: "/var/lib/data/old2", Content: []byte("old2\n")},
		{Path: "/usr/share/doc/readme", Content: []byte("readme\n")},
		{Path: "/var/cache/stale", Content: []byte("stale\n")},
	}}, l2, l3)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 3 || len(img.DiffIDs) != 3 {
		t.Fatalf("precondition: image has %d layers, %d diff ids, want 3", len(img.Layers), len(img.DiffIDs))
	}
	return img
}

// multiLayerCheck lists what the container sees of every layer feature;
// multiLayerWant is its output on the genuine image. set -e: a missing
// file fails the run.
const (
	multiLayerCheck = `set -e
cat /etc/marker
/opt/app/bin/tool
/opt/app/bin/tool2
/opt/app/bin/tool-link
readlink /opt/app/bin/tool-link
/opt/app/bin/suid
/opt/app/bin/capped
stat -c '%n %a %u:%g' /opt/app/bin/tool /opt/app/bin/suid /srv /srv/x /srv/owned /root /tmp /tmp/l3
test ! -e /etc/removeme
echo removeme gone
ls /var/lib/data
test ! -e /usr/share/doc
ls /usr/share /var/cache
cat /srv/x/y /srv/owned/f /root/l2 /root/l3 /tmp/l3/x
`
	multiLayerWant = `MARKER
tool v2
tool v1
tool v2
tool
suid genuine
capped
/opt/app/bin/tool 755 0:0
/opt/app/bin/suid 4755 0:0
/srv 700 0:0
/srv/x 755 0:0
/srv/owned 750 1000:1000
/root 700 0:0
/tmp 1777 0:0
/tmp/l3 755 0:0
removeme gone
new
/usr/share:

/var/cache:
fresh
y
f
l2
l3
x
`
)

// packSigned packs img into a bundle signed by the test key.
func packSigned(t *testing.T, img *testimage.Image, ref string) string {
	t.Helper()
	dir := t.TempDir()
	archive := filepath.Join(dir, "image.tar")
	if err := img.WriteArchiveFile(archive); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "app.ctp")
	res, err := ctp.Pack(context.Background(), archive, out, ctp.PackOptions{
		Name: "multilayer", Version: "1.0", ImageRef: ref, Created: time.Unix(1700000000, 0).UTC(),
		Signers: []*keys.Signer{testKeys(t).signer},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Layers != len(img.Layers) || res.ManifestDigest != img.Manifest.Digest {
		t.Fatalf("precondition: bundle has %d layers, manifest %s; the image %d, %s", res.Layers, res.ManifestDigest, len(img.Layers), img.Manifest.Digest)
	}
	return out
}

// importMultiLayer imports img as a signed bundle under the strict policy;
// the image is deleted when the test ends.
func importMultiLayer(t *testing.T, e *env, img *testimage.Image, ref string) *plugin.ImportResult {
	t.Helper()
	res, err := plugin.Import(e.ctx, e.c, packSigned(t, img, ref), testKeys(t).policy(t, policy.Strict), plugin.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	removeImage(e, ref)
	if want := identity.ChainID(img.DiffIDs); res.ChainID != want {
		t.Fatalf("precondition: imported chain %s, image chain %s", res.ChainID, want)
	}
	return res
}

// gateVerified reports whether the shared daemon's log has the gate's
// "image verified" line for container id.
func gateVerified(e *env, id string) bool {
	for _, line := range strings.Split(e.d.Log(), "\n") {
		if strings.Contains(line, "vordr gate: image verified") && strings.Contains(line, id) {
			return true
		}
	}
	return false
}

// TestMultiLayerGateAccepts: a genuine, signed three-layer image whose
// upper layers use implicit parents, hard links, symlinks, setuid, file
// capabilities, whiteouts and opaque directories is unpacked by containerd's default
// (sequential) unpacker and runs under the strict gate, showing the same
// filesystem as under runc.v2.
func TestMultiLayerGateAccepts(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/gate-multilayer:1"
	importMultiLayer(t, e, multiLayerImage(t, ref, "multilayer", suidSh), ref)
	want := strings.Replace(multiLayerWant, "MARKER", "multilayer", 1)

	// Control: this is what containerd's unpack and overlayfs make of the
	// layers (the stat lines prove the implicit directories of layer 3
	// inherited layer 2's metadata).
	r := newEnv(t, shared, runcV2)
	code, out := r.runTask(r.containerOn("overlayfs", ref, "sh", "-c", multiLayerCheck))
	if code != 0 || out.stdout.String() != want {
		t.Fatalf("control: runc.v2: exit %d\nstdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", code, out.stdout.String(), out.stderr.String(), want)
	}

	// Twice: the first Create hashes every lower directory, the second may
	// use the verdicts the first cached.
	for i := range 2 {
		ctr := e.containerOn("overlayfs", ref, "sh", "-c", multiLayerCheck)
		out := &output{}
		task, err := ctr.NewTask(e.ctx, e.ioCreator(out))
		if err != nil {
			t.Fatalf("run %d: the strict gate refused a genuine multi-layer image: %v", i+1, err)
		}
		if code := e.complete(task); code != 0 || out.stdout.String() != want {
			t.Fatalf("run %d: vordr: exit %d\nstdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", i+1, code, out.stdout.String(), out.stderr.String(), want)
		}
		if !gateVerified(e, ctr.ID()) {
			t.Errorf("run %d: no \"image verified\" gate log line for %s", i+1, ctr.ID())
		}
	}
}

// applyBlob writes layer i of img into mounts through the content store and
// the diff service, as any API client can.
func applyBlob(t *testing.T, e *env, ctx context.Context, img *testimage.Image, i int, mounts []mount.Mount) {
	t.Helper()
	layer := img.Layers[i]
	b, _ := img.Blob(layer.Digest)
	if err := content.WriteBlob(ctx, e.c.ContentStore(), "forge-"+layer.Digest.Encoded(), bytes.NewReader(b), layer); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.DiffService().Apply(ctx, layer, mounts); err != nil {
		t.Fatal(err)
	}
}

// seedChain commits, in the overlayfs snapshotter, one snapshot per step,
// each on the previous one, as GC roots, the way an API client can: the
// step's layer applied through the diff service, committed under the
// step's chain id. They are removed, top first, when the test ends.
func seedChain(t *testing.T, e *env, steps []seedStep) {
	t.Helper()
	ctx, done, err := e.c.WithLease(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done(ctx)
	ss := e.c.SnapshotService("overlayfs")
	parent := ""
	for _, s := range steps {
		key := "forge-" + uniqueID(t)
		mounts, err := ss.Prepare(ctx, key, parent)
		if err != nil {
			t.Fatal(err)
		}
		applyBlob(t, e, ctx, s.img, s.layer, mounts)
		name := s.chain.String()
		if err := ss.Commit(ctx, name, key, snapshots.WithLabels(map[string]string{"containerd.io/gc.root": "forged"})); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeSnapshot(t, e, s.chain) })
		parent = name
	}
}

// removeSnapshot removes an overlayfs snapshot, if it exists.
func removeSnapshot(t *testing.T, e *env, name digest.Digest) {
	t.Helper()
	err := e.c.SnapshotService("overlayfs").Remove(e.d.Context(context.Background()), name.String())
	if err != nil && !errdefs.IsNotFound(err) {
		t.Errorf("remove snapshot %s: %v", name, err)
	}
}

// seedStep is one snapshot of seedChain: layer `layer` of img committed as
// chain.
type seedStep struct {
	img   *testimage.Image
	layer int
	chain digest.Digest
}

// TestMultiLayerGateForgedMiddle: before the verified import, an API client
// commits the image's first two chain ids itself: the genuine bottom layer
// and a forged middle layer (one file differs). The import's unpack finds
// them "already unpacked" and applies only the top layer. runc.v2 runs the
// forged file as the verified image; the gate refuses the container, naming
// the file.
func TestMultiLayerGateForgedMiddle(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/gate-multilayer-forged:1"
	genuine := multiLayerImage(t, ref, "multilayer forged", suidSh)
	forged := multiLayerImage(t, "forged", "multilayer forged", suidBad)
	if genuine.Layers[0].Digest != forged.Layers[0].Digest || genuine.Layers[2].Digest != forged.Layers[2].Digest || genuine.Layers[1].Digest == forged.Layers[1].Digest {
		t.Fatal("precondition: the images must differ in the middle layer only")
	}
	chains := identity.ChainIDs(append([]digest.Digest(nil), genuine.DiffIDs...))
	seedChain(t, e, []seedStep{
		{genuine, 0, chains[0]},
		{forged, 1, chains[1]}, // the middle layer's content under the genuine chain id
	})
	importMultiLayer(t, e, genuine, ref)
	// The unpack's top snapshot is removed through the API before the image
	// is deleted: containerd's GC would collect it but leave it listed as a
	// child of the seeded snapshot, which could then never be removed.
	t.Cleanup(func() { removeSnapshot(t, e, chains[2]) })

	r := newEnv(t, shared, runcV2)
	code, out := r.runTask(r.containerOn("overlayfs", ref, "sh", "-c", "/opt/app/bin/suid; /opt/app/bin/tool"))
	if code != 0 || out.stdout.String() != "suid FORGED!\ntool v2\n" {
		t.Fatalf("control: runc.v2 on the forged middle layer: exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
	}

	_, err := e.containerOn("overlayfs", ref, "sh", "-c", "/opt/app/bin/suid").NewTask(e.ctx, e.ioCreator(&output{}))
	if err == nil {
		t.Fatal("vordr created a container on a forged middle layer")
	}
	t.Logf("refused: %v", err)
	for _, want := range []string{"/opt/app/bin/suid", "not the verified image's content", fmt.Sprintf("layer 2 (%s)", genuine.Layers[1].Digest)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("vordr on the forged middle layer: %v\nwant it to say %q", err, want)
		}
	}
}

//go:build linux

package integration

// The gate verifies content, not names (docs/threat-model.md): a snapshot
// committed under a verified image's chain id, or files written into a
// container's snapshot before it starts, are found by their content. Each
// attack uses the containerd API only (content store, diff service,
// snapshots), as an API client would, and each is shown to work under
// io.containerd.runc.v2.

import (
	"bytes"
	"context"
	"strings"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"

	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/plugin"
)

// busyboxWith is the test busybox image with /etc/marker = marker and extra
// files.
func busyboxWith(t *testing.T, ref, marker string, extra ...testimage.File) *testimage.Image {
	t.Helper()
	files := append([]testimage.File{{Path: "/etc/marker", Content: []byte(marker + "\n")}}, extra...)
	img, err := testimage.Busybox(testimage.Options{Name: ref, Files: files})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// applyLayer writes img's (single) layer into mounts through containerd's
// content store and diff service: what any API client can do.
func applyLayer(t *testing.T, e *env, ctx context.Context, img *testimage.Image, mounts []mount.Mount) {
	t.Helper()
	layer := img.Layers[0]
	b, _ := img.Blob(layer.Digest)
	if err := content.WriteBlob(ctx, e.c.ContentStore(), "forge-"+layer.Digest.Encoded(), bytes.NewReader(b), layer); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.DiffService().Apply(ctx, layer, mounts); err != nil {
		t.Fatal(err)
	}
}

// forgeChain commits, in snapshotter sn, a snapshot named chainID holding
// the forged image's layer.
func forgeChain(t *testing.T, e *env, sn string, chainID digest.Digest, forged *testimage.Image) {
	t.Helper()
	ctx, done, err := e.c.WithLease(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done(ctx)
	ss := e.c.SnapshotService(sn)
	key := "forge-" + uniqueID(t)
	mounts, err := ss.Prepare(ctx, key, "")
	if err != nil {
		t.Fatal(err)
	}
	applyLayer(t, e, ctx, forged, mounts)
	// A GC root: the forgery outlives the lease, as the attacker's would.
	if err := ss.Commit(ctx, chainID.String(), key, snapshots.WithLabels(map[string]string{"containerd.io/gc.root": "forged"})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Remove(e.d.Context(context.Background()), chainID.String()) })
}

// containerOn is snapContainer that fails the test on error.
func (e *env) containerOn(sn, ref string, args ...string) containerd.Container {
	e.t.Helper()
	ctr, err := e.snapContainer(sn, ref, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return ctr
}

// TestGateForgedChainInOtherSnapshotter: a snapshot committed in the native
// snapshotter under the verified image's chain id, with other content.
func TestGateForgedChainInOtherSnapshotter(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/gate-forged-native:1"
	res := importSigned(t, e, ref, "genuine")
	forgeChain(t, e, "native", res.ChainID, busyboxWith(t, "forged", "forged"))

	// Control: runc.v2 runs the forged content as the verified image.
	r := newEnv(t, shared, runcV2)
	code, out := r.runTask(r.containerOn("native", ref, "cat", "/etc/marker"))
	if code != 0 || out.stdout.String() != "forged\n" {
		t.Fatalf("control: runc.v2 on the forged chain: exit %d stdout %q", code, out.stdout.String())
	}
	_, err := e.containerOn("native", ref, "cat", "/etc/marker").NewTask(e.ctx, e.ioCreator(&output{}))
	if err == nil || !strings.Contains(err.Error(), "not the verified image's content") {
		t.Fatalf("vordr on the forged chain: %v, want a content refusal", err)
	}
}

// TestGateForgedChainPreseeded: the attacker commits the forged snapshot
// under the chain id before the verified import; the importer's unpack
// finds the chain "already unpacked" and the verified image sits on forged
// layers. Only a content check can tell.
func TestGateForgedChainPreseeded(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/gate-preseeded:1"
	genuine := busyboxWith(t, ref, "genuine")
	chainID := identity.ChainID(genuine.DiffIDs)
	forgeChain(t, e, "overlayfs", chainID, busyboxWith(t, "forged", "forged"))
	path := makeBundle(t, bundleOpts{ref: ref, marker: "genuine", sign: true})
	res, err := plugin.Import(e.ctx, e.c, path, testKeys(t).policy(t, policy.Strict), plugin.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	removeImage(e, ref)
	if res.ChainID != chainID {
		t.Fatalf("precondition: bundle chain %s, forged %s", res.ChainID, chainID)
	}

	r := newEnv(t, shared, runcV2)
	code, out := r.runTask(r.containerOn("overlayfs", ref, "cat", "/etc/marker"))
	if code != 0 || out.stdout.String() != "forged\n" {
		t.Fatalf("control: runc.v2 on the pre-seeded chain: exit %d stdout %q", code, out.stdout.String())
	}
	_, err = e.containerOn("overlayfs", ref, "cat", "/etc/marker").NewTask(e.ctx, e.ioCreator(&output{}))
	if err == nil || !strings.Contains(err.Error(), "/etc/marker") || !strings.Contains(err.Error(), "not the verified image's content") {
		t.Fatalf("vordr on the pre-seeded chain: %v, want a content refusal naming /etc/marker", err)
	}
}

// plant writes a file into a container's snapshot through the diff
// service, as an API client can between create and start.
func plant(t *testing.T, e *env, ctr containerd.Container, what *testimage.Image) {
	t.Helper()
	info, err := ctr.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := e.c.SnapshotService(info.Snapshotter).Mounts(e.ctx, info.SnapshotKey)
	if err != nil {
		t.Fatal(err)
	}
	ctx, done, err := e.c.WithLease(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer done(ctx)
	applyLayer(t, e, ctx, what, mounts)
}

// planted is a layer that replaces /etc/marker and drops a new file.
func planted(t *testing.T) *testimage.Image {
	t.Helper()
	img, err := testimage.Build(t.TempDir(), testimage.Options{Name: "planted", Files: []testimage.File{
		{Path: "/etc/marker", Content: []byte("planted\n")},
		{Path: "/opt/implant", Mode: 0o755, Content: []byte("#!/bin/sh\necho implant\n")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestGatePlantedBeforeCreate: content written into the container's active
// snapshot after `ctr c create` and before the task is created.
func TestGatePlantedBeforeCreate(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/gate-planted-create:1"
	importSigned(t, e, ref, "genuine")

	r := newEnv(t, shared, runcV2)
	ctr := r.containerOn("overlayfs", ref, "cat", "/etc/marker")
	plant(t, r, ctr, planted(t))
	if code, out := r.runTask(ctr); code != 0 || out.stdout.String() != "planted\n" {
		t.Fatalf("control: runc.v2 runs planted content: exit %d stdout %q", code, out.stdout.String())
	}

	ctr = e.containerOn("overlayfs", ref, "cat", "/etc/marker")
	plant(t, e, ctr, planted(t))
	_, err := ctr.NewTask(e.ctx, e.ioCreator(&output{}))
	if err == nil || !strings.Contains(err.Error(), "planted before start") || !strings.Contains(err.Error(), "/etc") {
		t.Fatalf("vordr with planted content: %v, want a refusal naming the planted path", err)
	}
}

// TestGatePlantedBeforeStart: content written into the snapshot after the
// task was created (the init waits in runc init) and before it starts.
func TestGatePlantedBeforeStart(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/gate-planted-start:1"
	importSigned(t, e, ref, "genuine")

	for _, rt := range []runtimeCase{runcV2, e.rt} {
		env := newEnv(t, shared, rt)
		// /opt is looked up first after start (runc reads /etc at create,
		// so an overlay mount of its own would not show a new /etc file).
		ctr := env.containerOn("overlayfs", ref, "sh", "-c", "/opt/implant")
		out := &output{}
		task, err := ctr.NewTask(env.ctx, env.ioCreator(out))
		if err != nil {
			t.Fatalf("%s: create: %v", rt.name, err)
		}
		plant(t, env, ctr, planted(t))
		ch, _ := task.Wait(env.ctx)
		err = task.Start(env.ctx)
		if rt.runtime == runcRuntime {
			if err != nil {
				t.Fatal(err)
			}
			<-ch
			task.IO().Wait()
			if out.stdout.String() != "implant\n" {
				t.Fatalf("control: runc.v2 runs content planted before start: %q %q", out.stdout.String(), out.stderr.String())
			}
		} else if err == nil || !strings.Contains(err.Error(), "planted before start") || !strings.Contains(err.Error(), "at start") {
			t.Fatalf("vordr with content planted before start: %v, want a refusal at start naming a planted path", err)
		}
		_, _ = task.Delete(env.ctx, containerd.WithProcessKill)
	}
}

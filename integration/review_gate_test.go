//go:build linux

package integration

// Security review (review_*): the verification gate. Each test asserts the
// SECURE behaviour and runs the attack under io.containerd.runc.v2 as a
// control. "FAILS NOW (bypass)" marks a test that fails against the current
// code because of a real bypass.
//
// Status: every test failed against 7c9a890 because of a real bypass; all
// pass since the fixes that followed the review (mount-type allow-list,
// resolved and re-verified bind sources, ro/rw normalisation, noexec on
// every mount but the rootfs, rprivate propagation, hooked task Update,
// the gate's stricter overlay options). docs/threat-model.md lists them.

import (
	"archive/tar"
	"context"
	"strings"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/go-digest"

	"github.com/vordr-project/vordr/internal/testimage"
)

// zzForgedDir is a directory holding a forged busybox (/etc/marker =
// "forged"), made through the containerd API only: an active overlayfs
// snapshot written by the diff service.
func zzForgedDir(t *testing.T, e *env) string {
	t.Helper()
	ctx, done, err := e.c.WithLease(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = done(context.Background()) })
	ss := e.c.SnapshotService("overlayfs")
	key := "zz-forge-" + uniqueID(t)
	ms, err := ss.Prepare(ctx, key, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Remove(e.d.Context(context.Background()), key) })
	applyLayer(t, e, ctx, busyboxWith(t, "forged", "forged"), ms)
	if len(ms) != 1 || ms[0].Type != "bind" {
		t.Fatalf("unexpected mounts of an empty active snapshot: %+v", ms)
	}
	return ms[0].Source
}

func importSignedChain(t *testing.T, e *env, ref string) digest.Digest {
	t.Helper()
	return importSigned(t, e, ref, "genuine").ChainID
}

// zzBareContainer creates a container record naming image ref with no
// snapshot of its own (an API client sends the rootfs mounts with Create),
// and returns the mounts of a fresh active snapshot of the image's chain.
func (e *env) zzBareContainer(ref string, chain digest.Digest, args ...string) (containerd.Container, []mount.Mount) {
	e.t.Helper()
	img, err := e.c.GetImage(e.ctx, ref)
	if err != nil {
		e.t.Fatal(err)
	}
	id := uniqueID(e.t)
	ss := e.c.SnapshotService("overlayfs")
	key := "zz-rootfs-" + id
	// Under a lease: an unreferenced active snapshot is garbage.
	lctx, done, err := e.c.WithLease(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = done(context.Background()) })
	ms, err := ss.Prepare(lctx, key, chain.String())
	if err != nil {
		e.t.Fatal(err)
	}
	// No WithImageConfig: it reads the user database from a snapshot the
	// record does not have; the default spec's PATH finds busybox.
	ctr, err := e.c.NewContainer(e.ctx, id,
		containerd.WithImage(img),
		containerd.WithNewSpec(oci.WithProcessArgs(args...)),
		containerd.WithRuntime(e.rt.runtime, e.rt.options(e.d)),
	)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx := e.d.Context(context.Background())
		if task, err := ctr.Task(ctx, nil); err == nil {
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
		}
		_ = ctr.Delete(ctx)
		_ = ss.Remove(ctx, key)
	})
	return ctr, ms
}

// TestReviewGateOverlayOptionSmuggling: the gate parses the Create
// request's overlay options one list element at a time and ignores the
// value of keys it deems harmless (index, workdir, xino, redirect_dir, …).
// containerd's mount joins the elements with "," and the kernel splits on
// ",", so one element "index=off,lowerdir=/forged" is, for the kernel, a
// second lowerdir= that replaces the first. The gate checks the genuine
// lowers; the kernel mounts the forged directory. An API client (who may
// send any rootfs mounts, row 20) runs forged content as the verified image.
//
// Was a bypass (review of this session); fixed, see docs/threat-model.md. Fix: plugin/rootfs/rootfs.go parse — refuse any option
// element containing "," (or "\"), refuse duplicate keys, and validate the
// values of accepted keys; better, rebuild the mount from the parsed fields.
func TestReviewGateOverlayOptionSmuggling(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/zz-smuggle:1"
	forged := zzForgedDir(t, e)

	res := importSignedChain(t, e, ref)
	run := func(rt runtimeCase) (string, error) {
		env := newEnv(t, shared, rt)
		ctr, ms := env.zzBareContainer(ref, res, "/bin/busybox", "cat", "/etc/marker")
		if len(ms) != 1 || ms[0].Type != "overlay" {
			t.Fatalf("precondition: container rootfs %+v, want one overlay", ms)
		}
		ms[0].Options = append(append([]string(nil), ms[0].Options...), "index=off,lowerdir="+forged)
		out := &output{}
		task, err := ctr.NewTask(env.ctx, env.ioCreator(out), containerd.WithRootFS(ms))
		if err != nil {
			return "", err
		}
		env.complete(task)
		return out.stdout.String(), nil
	}
	if got, err := run(runcV2); err != nil || got != "forged\n" {
		t.Fatalf("control: runc.v2 with the smuggled lowerdir: %v %q", err, got)
	}
	got, err := run(e.rt)
	if err == nil && strings.Contains(got, "forged") {
		t.Fatalf("BYPASS: the gate accepted a rootfs whose kernel lowerdir is forged content: /etc/marker = %q", got)
	}
	t.Logf("gate: %v %q", err, got)
}

// TestReviewGateUserxattrOpaque: the gate accepts the overlay option
// "userxattr", with which overlayfs reads its markers (opaque, whiteouts)
// from user.overlay.* xattrs — and layertree.Compare ignores user.*
// xattrs (it checks only trusted.overlay.*), while containerd's diff
// applier writes user.* xattrs from a tar. An API client lays out an upper
// layer with the verified content plus user.overlay.opaque on /etc/policy
// and sends it as the lower with "userxattr": the gate verifies it, and the
// container no longer sees the lower layer's /etc/policy/deny. Only content
// is hidden (no byte outside the image appears), but the rootfs is not the
// verified image.
//
// Was a bypass (review of this session); fixed, see docs/threat-model.md. Fix: plugin/rootfs/rootfs.go parse — refuse
// "userxattr" (or, with it, have layertree.Compare treat user.overlay.* like
// trusted.overlay.*); validate the values of redirect_dir/metacopy/index/
// xino/volatile instead of accepting any.
func TestReviewGateUserxattrOpaque(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/zz-userxattr:1"
	mk := func(pax map[string]string) *testimage.Image {
		l2, err := testimage.LayerTar(
			testimage.LayerEntry{Name: "etc/policy", Type: tar.TypeDir, Mode: 0o755, PAXRecords: pax},
			testimage.LayerEntry{Name: "etc/policy/extra", Content: []byte("EXTRA\n")},
		)
		if err != nil {
			t.Fatal(err)
		}
		img, err := testimage.Layered(testimage.Options{Name: ref, Files: []testimage.File{
			{Path: "/etc/marker", Content: []byte("userxattr\n")},
			{Path: "/etc/policy/deny", Content: []byte("DENY-RULES\n")},
		}}, l2)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	genuine := mk(nil)
	forged := mk(map[string]string{"SCHILY.xattr.user.overlay.opaque": "y"})
	res := importMultiLayer(t, e, genuine, ref)

	ctx, done, err := e.c.WithLease(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = done(context.Background()) })
	ss := e.c.SnapshotService("overlayfs")
	key := "zz-l2-" + uniqueID(t)
	ms, err := ss.Prepare(ctx, key, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Remove(e.d.Context(context.Background()), key) })
	applyBlob(t, e, ctx, forged, 1, ms)
	l2 := ms[0].Source

	run := func(rt runtimeCase) (string, error) {
		env := newEnv(t, shared, rt)
		ctr, ms := env.zzBareContainer(ref, res.ChainID, "/bin/busybox", "sh", "-c", "cat /etc/policy/deny; cat /etc/policy/extra")
		for i, o := range ms[0].Options {
			if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
				lowers := strings.Split(v, ":")
				lowers[0] = l2
				ms[0].Options[i] = "lowerdir=" + strings.Join(lowers, ":")
			}
		}
		ms[0].Options = append(ms[0].Options, "userxattr")
		out := &output{}
		task, err := ctr.NewTask(env.ctx, env.ioCreator(out), containerd.WithRootFS(ms))
		if err != nil {
			return "", err
		}
		env.complete(task)
		return out.stdout.String(), nil
	}
	got, err := run(runcV2)
	if err != nil || strings.Contains(got, "DENY-RULES") || !strings.Contains(got, "EXTRA") {
		t.Fatalf("control: under runc.v2 the opaque marker hides the lower /etc/policy: %v %q", err, got)
	}
	got, err = run(e.rt)
	if err == nil && !strings.Contains(got, "DENY-RULES") && strings.Contains(got, "EXTRA") {
		t.Fatalf("BYPASS: the gate verified a rootfs whose userxattr opaque marker hides /etc/policy/deny of the verified image: %q", got)
	}
	t.Logf("gate: %v %q", err, got)
}

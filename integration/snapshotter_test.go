//go:build linux

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"

	"github.com/vordr-project/vordr/alerts"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/plugin"
)

var (
	snapBinOnce sync.Once
	snapBin     string
	snapBinErr  error
)

// snapshotterBinary builds cmd/vordr-snapshotter of this tree next to the shim.
func snapshotterBinary(t testing.TB) string {
	t.Helper()
	snapBinOnce.Do(func() {
		snapBin = filepath.Join(shimDir, "vordr-snapshotter")
		if out, err := runGo("build", "-o", snapBin, "../cmd/vordr-snapshotter"); err != nil {
			snapBinErr = fmt.Errorf("build vordr-snapshotter: %v\n%s", err, out)
		}
	})
	if snapBinErr != nil {
		t.Fatal(snapBinErr)
	}
	return snapBin
}

// snapProc is a running vordr-snapshotter.
type snapProc struct {
	name, dir, sock, log string
	cmd                  *exec.Cmd
	exited               chan struct{}
}

// startSnapshotterProc starts vordr-snapshotter with its root and socket
// under dir, the policy file (none if empty) and containerd's address.
func startSnapshotterProc(t testing.TB, name, dir, policyFile, ctrdAddress string, extra ...string) (*snapProc, error) {
	bin := snapshotterBinary(t)
	p := &snapProc{name: name, dir: dir, sock: filepath.Join(dir, name+".sock"), log: filepath.Join(dir, name+".log")}
	args := append([]string{"--root", filepath.Join(dir, name), "--address", p.sock, "--containerd-address", ctrdAddress, "--log-level", "debug"}, extra...)
	if policyFile != "" {
		args = append(args, "--policy", policyFile)
	}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(p.sock); err == nil {
			return p, nil
		}
		select {
		case <-p.exited:
			data, _ := os.ReadFile(p.log)
			return nil, fmt.Errorf("vordr-snapshotter %s exited at start:\n%s", name, data)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("vordr-snapshotter %s did not create %s within 10s", name, p.sock)
		}
	}
}

// stop terminates the snapshotter and says what it left behind.
func (p *snapProc) stop() (leaks []string) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		leaks = append(leaks, fmt.Sprintf("vordr-snapshotter %s did not exit on SIGTERM", p.name))
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	if _, err := os.Stat(p.sock); err == nil {
		leaks = append(leaks, "socket "+p.sock+" left behind")
	}
	return leaks
}

func (p *snapProc) logText() string {
	data, _ := os.ReadFile(p.log)
	return string(data)
}

// snapFixture is a private containerd with two vordr snapshotters as proxy
// plugins: "vordr" under the strict test policy and "vordr-permissive" under
// the permissive one. Both re-verify evidence through containerd.
type snapFixture struct {
	d      *daemon.Daemon
	strict *snapProc
	perm   *snapProc
}

func startSnapFixture(t *testing.T) *snapFixture {
	t.Helper()
	k := testKeys(t)
	snapshotterBinary(t)
	sdir, err := os.MkdirTemp("", "vsn-")
	if err != nil {
		t.Fatal(err)
	}
	ddir, err := os.MkdirTemp("", "vordr-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	ctrdAddr := filepath.Join(ddir, "c.sock") // daemon.Start's address in Dir
	f := &snapFixture{}
	var procs []*snapProc
	t.Cleanup(func() {
		// After containerd: it removes container snapshots through us.
		for _, p := range procs {
			for _, l := range p.stop() {
				t.Errorf("snapshotter %s: %s", p.name, l)
			}
		}
		for _, m := range daemon.MountsUnder(sdir) {
			t.Errorf("mount left under the snapshotters' directory: %s", m)
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("%s log:\n%s", p.name, tail(p.logText(), 40))
			}
		}
		_ = os.RemoveAll(sdir)
	})
	for _, s := range []struct {
		name string
		mode policy.Mode
		dst  **snapProc
	}{{"vordr", policy.Strict, &f.strict}, {"vordr-permissive", policy.Permissive, &f.perm}} {
		p, err := startSnapshotterProc(t, s.name, sdir, k.policies[s.mode], ctrdAddr)
		if err != nil {
			_ = os.RemoveAll(ddir)
			t.Fatal(err)
		}
		procs = append(procs, p)
		*s.dst = p
	}
	extra := fmt.Sprintf("[proxy_plugins.vordr]\n  type = \"snapshot\"\n  address = %q\n[proxy_plugins.vordr-permissive]\n  type = \"snapshot\"\n  address = %q\n",
		f.strict.sock, f.perm.sock)
	d, err := startDaemon(context.Background(), daemon.Options{Dir: ddir, ExtraConfig: extra})
	if err != nil {
		_ = os.RemoveAll(ddir)
		t.Fatal(err)
	}
	f.d = d
	t.Cleanup(func() {
		if leaks := d.Stop(); len(leaks) > 0 {
			t.Errorf("containerd had to clean up by force: %v", leaks)
		}
	})
	return f
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// importPlainInto loads a unique busybox image the way `ctr image import`
// does (no vordr evidence) and unpacks it into snapshotter sn. It returns the
// image and its top chain id.
func importPlainInto(t *testing.T, e *env, ref, marker, sn string) (images.Image, digest.Digest) {
	t.Helper()
	img, err := testimage.Busybox(testimage.Options{Name: ref, Files: []testimage.File{{Path: "/etc/marker", Content: []byte(marker + "\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := img.WriteArchive(&buf); err != nil {
		t.Fatal(err)
	}
	imgs, err := e.c.Import(e.ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	removeImage(e, ref)
	if len(imgs) != 1 {
		t.Fatalf("imported %d images", len(imgs))
	}
	if err := containerd.NewImage(e.c, imgs[0]).Unpack(e.ctx, sn); err != nil {
		t.Fatalf("unpack into %s: %v", sn, err)
	}
	return imgs[0], identity.ChainID(img.DiffIDs)
}

// snapContainer creates a container of image ref whose rootfs is prepared
// by snapshotter sn; the error is NewContainer's.
func (e *env) snapContainer(sn, ref string, args ...string) (containerd.Container, error) {
	e.t.Helper()
	img, err := e.c.GetImage(e.ctx, ref)
	if err != nil {
		e.t.Fatal(err)
	}
	id := uniqueID(e.t)
	ctr, err := e.c.NewContainer(e.ctx, id,
		containerd.WithImage(img),
		containerd.WithSnapshotter(sn),
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs(args...)),
		containerd.WithRuntime(e.rt.runtime, e.rt.options(e.d)),
	)
	if err != nil {
		return nil, err
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(e.d.Context(context.Background()), 30*time.Second)
		defer cancel()
		if task, err := ctr.Task(ctx, nil); err == nil {
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
		}
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
			e.t.Errorf("delete container %s: %v", id, err)
		}
	})
	return ctr, nil
}

// assertRefused checks a strict snapshotter's refusal: permission denied,
// naming the unverified chain.
func assertRefused(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: allowed by the strict snapshotter", what)
	}
	if !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "not from a verified image") {
		t.Fatalf("%s: want a permission-denied refusal of an unverified chain, got %v", what, err)
	}
}

// TestSnapshotter runs vordr-snapshotter as containerd proxy plugins
// (strict and permissive) in front of a real containerd.
func TestSnapshotter(t *testing.T) {
	f := startSnapFixture(t)
	k := testKeys(t)
	runc := runtimes[2]
	if runc.runtime != runcRuntime {
		t.Fatalf("runtimes[2] is %s", runc.runtime)
	}
	signedRef := "docker.io/vordr/sn-signed:1"
	var signed images.Image
	var signedChain digest.Digest

	// `vordr import --snapshotter vordr` unpacks into the proxy, labels the
	// chain, and a container of it runs — under runc.v2 (the snapshotter
	// alone decides) and under vordr with a strict gate.
	t.Run("VerifiedImportRuns", func(t *testing.T) {
		e := newEnv(t, f.d, runc)
		path := makeBundle(t, bundleOpts{ref: signedRef, marker: "sn-signed", sign: true})
		out, errOut, code := runCmd(t, vordrBinary(t), "import", "--address", f.d.Address, "--namespace", f.d.Namespace,
			"--policy", k.policies[policy.Strict], "--snapshotter", "vordr", "--progress", "never", path)
		if code != 0 {
			t.Fatalf("vordr import --snapshotter vordr: exit %d\n%s%s", code, out, errOut)
		}
		var err error
		if signed, err = e.c.ImageService().Get(e.ctx, signedRef); err != nil {
			t.Fatal(err)
		}
		// Not removeImage: the later subtests use it; the fixture's
		// daemon is removed whole.
		rs, err := containerd.NewImage(e.c, signed).RootFS(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		signedChain = identity.ChainID(rs)
		info, err := e.c.SnapshotService("vordr").Stat(e.ctx, signedChain.String())
		if err != nil {
			t.Fatalf("top layer %s in the vordr snapshotter: %v", signedChain, err)
		}
		if info.Labels[plugin.SnapshotLabelVerifiedImage] != signed.Target.Digest.String() || info.Labels[plugin.SnapshotLabelPolicy] == "" {
			t.Fatalf("chain labels %v", info.Labels)
		}
		ctr, err := e.snapContainer("vordr", signedRef, "cat", "/etc/marker")
		if err != nil {
			t.Fatalf("container on the verified chain refused: %v", err)
		}
		if code, out := e.runTask(ctr); code != 0 || out.stdout.String() != "sn-signed\n" {
			t.Fatalf("exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
		}
		e.rt = gateRuntime(t, f.d, "strict")
		ctr, err = e.snapContainer("vordr", signedRef, "cat", "/etc/marker")
		if err != nil {
			t.Fatalf("container on the verified chain refused: %v", err)
		}
		if code, out := e.runTask(ctr); code != 0 || out.stdout.String() != "sn-signed\n" {
			t.Fatalf("under vordr: exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
		}
		if !strings.Contains(f.strict.logText(), "vordr snapshotter: verified chain") {
			t.Errorf("the snapshotter logged no verified chain:\n%s", tail(f.strict.logText(), 20))
		}
	})
	if signed.Name == "" {
		t.Fatal("no verified image to compare with")
	}

	// An image loaded without evidence unpacks into the strict snapshotter
	// but gets no container rootfs, whatever its labels claim, under any
	// runtime.
	t.Run("UnverifiedRefusedUnderStrict", func(t *testing.T) {
		e := newEnv(t, f.d, runc)
		ref := "docker.io/vordr/sn-plain:1"
		img, chain := importPlainInto(t, e, ref, "sn-plain", "vordr")
		_, err := e.snapContainer("vordr", ref, "true")
		assertRefused(t, "plain image", err)
		sn := e.c.SnapshotService("vordr")
		// Nothing of the refused container is left in containerd.
		if err := sn.Walk(e.ctx, func(_ context.Context, info snapshots.Info) error {
			if info.Kind == snapshots.KindActive {
				t.Errorf("active snapshot %s left after the refusal", info.Name)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}

		// Forged records: labels are hints, the evidence decides.
		forge := func(imageDigest string) {
			t.Helper()
			if _, err := sn.Update(e.ctx, snapshots.Info{Name: chain.String(), Labels: map[string]string{
				plugin.SnapshotLabelVerifiedImage: imageDigest,
				plugin.SnapshotLabelPolicy:        signedPolicyLabel(t, e, signedChain),
			}}, "labels."+plugin.SnapshotLabelVerifiedImage, "labels."+plugin.SnapshotLabelPolicy); err != nil {
				t.Fatal(err)
			}
		}
		forge(img.Target.Digest.String())
		_, err = e.snapContainer("vordr", ref, "true")
		assertRefused(t, "plain image labelled as verified", err)
		if !strings.Contains(err.Error(), "carries vordr evidence") {
			t.Errorf("want the missing evidence named, got %v", err)
		}
		forge(signed.Target.Digest.String())
		_, err = e.snapContainer("vordr", ref, "true")
		assertRefused(t, "plain image labelled as the verified image", err)
		if !strings.Contains(err.Error(), "is not the top layer") {
			t.Errorf("want the chain mismatch named, got %v", err)
		}

		// An "extract" snapshot (what the unpacker prepares, allowed so
		// plain pulls and imports still unpack) cannot be used as a rootfs:
		// its mounts are refused.
		key := fmt.Sprintf(snapshots.UnpackKeyFormat, "bypass", chain)
		if _, err := sn.Prepare(e.ctx, key, chain.String()); err != nil {
			t.Fatalf("extract-style prepare: %v", err)
		}
		_, err = sn.Mounts(e.ctx, key)
		if rerr := sn.Remove(e.ctx, key); rerr != nil {
			t.Error(rerr)
		}
		assertRefused(t, "mounts of an extract snapshot on an unverified chain", err)

		// No parent at all: nothing verified.
		_, err = sn.Prepare(e.ctx, "empty-rootfs", "")
		assertRefused(t, "empty rootfs", err)

		log := f.strict.logText()
		if !strings.Contains(log, "refused: parent chain not verified") {
			t.Errorf("the snapshotter did not log its refusal:\n%s", tail(log, 20))
		}
	})

	// The permissive snapshotter lets the same kind of image run, loudly.
	t.Run("PermissiveAllows", func(t *testing.T) {
		e := newEnv(t, f.d, runc)
		ref := "docker.io/vordr/sn-plain-permissive:1"
		importPlainInto(t, e, ref, "sn-permissive", "vordr-permissive")
		evCtx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		evs, errs := e.c.Subscribe(evCtx, fmt.Sprintf(`topic==%q,namespace==%q`, alerts.TopicAlert, e.d.Namespace))
		ctr, err := e.snapContainer("vordr-permissive", ref, "cat", "/etc/marker")
		if err != nil {
			t.Fatalf("permissive snapshotter refused: %v", err)
		}
		// The pass is reported on containerd's event bus, as vordr's
		// runtime reports its alerts.
		select {
		case env := <-evs:
			mt, data, ok := alerts.Decode(env.Event)
			if !ok || mt != alerts.MediaTypeAlert || !strings.Contains(string(data), `"rule":"unverified-chain"`) ||
				!strings.Contains(string(data), `"mode":"permissive"`) || !strings.Contains(string(data), `"allowed":true`) {
				t.Errorf("alert %s %s", mt, data)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Error("no alert on /vordr/alert for the unverified chain")
		}
		if code, out := e.runTask(ctr); code != 0 || out.stdout.String() != "sn-permissive\n" {
			t.Fatalf("exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
		}
		if log := f.perm.logText(); !strings.Contains(log, "allowed by permissive policy") {
			t.Errorf("no warning logged:\n%s", tail(log, 20))
		}
	})

	// Removing the image and collecting garbage removes its layers from
	// the proxy too: containerd's GC walks it like any snapshotter.
	t.Run("GarbageCollected", func(t *testing.T) {
		e := newEnv(t, f.d, runc)
		if err := e.c.ImageService().Delete(e.ctx, signedRef, images.SynchronousDelete()); err != nil {
			t.Fatal(err)
		}
		gc(t, e)
		if _, err := e.c.SnapshotService("vordr").Stat(e.ctx, signedChain.String()); !errdefs.IsNotFound(err) {
			t.Fatalf("verified chain after its image was deleted: %v", err)
		}
	})
}

// signedPolicyLabel is the policy digest the import recorded on the verified
// chain, so a forged record matches it exactly.
func signedPolicyLabel(t *testing.T, e *env, chain digest.Digest) string {
	t.Helper()
	info, err := e.c.SnapshotService("vordr").Stat(e.ctx, chain.String())
	if err != nil {
		t.Fatal(err)
	}
	if v := info.Labels[plugin.SnapshotLabelPolicy]; v != "" {
		return v
	}
	t.Fatal(errors.New("verified chain has no policy label"))
	return ""
}

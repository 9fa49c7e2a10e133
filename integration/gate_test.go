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
	"testing"
	"time"

	eventtypes "github.com/containerd/containerd/api/types"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/plugin"
)

func imagesSync() images.DeleteOpt { return images.SynchronousDelete() }

// gateConfig is a vordr runtime config with the test policies configured
// (strict, permissive, audit) and defaultPolicy as the default ("" for none).
func gateConfig(t *testing.T, d *daemon.Daemon, defaultPolicy string) string {
	t.Helper()
	k := testKeys(t)
	var b strings.Builder
	if defaultPolicy != "" {
		fmt.Fprintf(&b, "default_policy = %q\n", defaultPolicy)
	}
	fmt.Fprintf(&b, "[policies]\nstrict = %q\npermissive = %q\naudit = %q\n", k.policies[policy.Strict], k.policies[policy.Permissive], k.policies[policy.Audit])
	// The tests pick weaker policies by annotation, which an annotation may
	// do only where the operator says so.
	b.WriteString("[annotations]\nloosen = [\"permissive\", \"audit\"]\n")
	fmt.Fprintf(&b, "[runc]\nRoot = %q\n[events]\ndir = %q\n[gate]\ncache_dir = %q\n", d.RuncRoot, filepath.Join(d.Dir, "events"), filepath.Join(d.Dir, "gate-cache"))
	return b.String()
}

// gateRuntime runs containers under vordr with the test policies, the
// default one being defaultPolicy.
func gateRuntime(t *testing.T, d *daemon.Daemon, defaultPolicy string) runtimeCase {
	body := gateConfig(t, d, defaultPolicy)
	return runtimeCase{name: "vordr-gate", runtime: vordrRuntime, options: func(*daemon.Daemon) any {
		return &runtimeoptions.Options{ConfigBody: []byte(body)}
	}}
}

// newImageContainer creates a container of image ref under the env's runtime.
func (e *env) newImageContainer(id, ref string, annotations map[string]string, args ...string) containerd.Container {
	e.t.Helper()
	var opts []oci.SpecOpts
	if len(annotations) > 0 {
		opts = append(opts, oci.WithAnnotations(annotations))
	}
	return e.imageContainer(ref, id, args, opts...)
}

// startImage creates a task of image ref; the error is NewTask's.
func (e *env) startImage(ref string, annotations map[string]string, args ...string) (containerd.Task, *output, error) {
	e.t.Helper()
	ctr := e.newImageContainer(uniqueID(e.t), ref, annotations, args...)
	out := &output{}
	task, err := ctr.NewTask(e.ctx, e.ioCreator(out))
	return task, out, err
}

// runImage runs args in image ref to completion.
func (e *env) runImage(ref string, annotations map[string]string, args ...string) (uint32, *output) {
	e.t.Helper()
	task, out, err := e.startImage(ref, annotations, args...)
	if err != nil {
		e.t.Fatalf("create task of %s: %v", ref, err)
	}
	return e.complete(task), out
}

func runGo(args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	return cmd.CombinedOutput()
}

func runCmd(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return o.String(), e.String(), code
}

// importPlain loads an image the way `ctr image import` does: no vordr
// evidence at all.
func importPlain(t *testing.T, e *env, ref, marker string) {
	t.Helper()
	img, err := testimage.Busybox(testimage.Options{Name: ref, Files: []testimage.File{{Path: "/etc/marker", Content: []byte(marker + "\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "plain.tar")
	if err := img.WriteArchiveFile(archive); err != nil {
		t.Fatal(err)
	}
	if err := importArchive(e.d, e.d.Namespace, archive); err != nil {
		t.Fatal(err)
	}
	removeImage(e, ref)
}

// importSigned imports a signed bundle of a unique busybox image.
func importSigned(t *testing.T, e *env, ref, marker string) *plugin.ImportResult {
	t.Helper()
	path := makeBundle(t, bundleOpts{ref: ref, marker: marker, sign: true})
	res, err := plugin.Import(e.ctx, e.c, path, testKeys(t).policy(t, policy.Strict), plugin.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	removeImage(e, ref)
	return res
}

// TestGateUnverifiedImage: an image loaded with a plain import is refused
// under strict, and allowed with a warning and an alert under permissive.
func TestGateUnverifiedImage(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/gate-plain:1"
	importPlain(t, e, ref, "plain")

	_, _, err := e.startImage(ref, nil, "true")
	if err == nil {
		t.Fatal("strict policy: an unverified image was created")
	}
	for _, want := range []string{ref, "no vordr attestations", "strict"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// Permissive, chosen by annotation: runs, with an alert on the bus.
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	evs, errs := e.c.Subscribe(ctx, `topic=="/vordr/alert"`)
	code, out := e.runImage(ref, map[string]string{plugin.AnnotationPolicy: "permissive"}, "cat", "/etc/marker")
	if code != 0 || out.stdout.String() != "plain\n" {
		t.Fatalf("permissive: exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
	}
	select {
	case env := <-evs:
		v, err := typeurl.UnmarshalAny(env.Event)
		if err != nil {
			t.Fatal(err)
		}
		d, ok := v.(*eventtypes.Descriptor)
		if !ok || d.Annotations["vordr.io/rule"] != "unverified-image" || !strings.Contains(d.Annotations["vordr.io/image"], ref) {
			t.Errorf("alert %T %+v", v, v)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Error("no /vordr/alert event for a permissive run of an unverified image")
	}

	// Audit: runs.
	if code, _ := e.runImage(ref, map[string]string{plugin.AnnotationPolicy: "audit"}, "true"); code != 0 {
		t.Errorf("audit: exit %d", code)
	}
	// An annotation naming a policy that is not configured is refused.
	if _, _, err := e.startImage(ref, map[string]string{plugin.AnnotationPolicy: "nope"}, "true"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown policy: %v", err)
	}
	// Without any policy configured the gate only warns.
	e.rt = runtimeCase{name: "vordr-nopolicy", runtime: vordrRuntime, options: func(d *daemon.Daemon) any {
		return &runtimeoptions.Options{ConfigBody: []byte(gateConfig(t, d, ""))}
	}}
	if code, _ := e.runImage(ref, nil, "true"); code != 0 {
		t.Errorf("no policy: exit %d", code)
	}
}

// TestGateEvidenceChanged: an image whose evidence changes in containerd
// after import is refused at Create.
func TestGateEvidenceChanged(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	cs := e.c.ContentStore()
	other := importSigned(t, e, "docker.io/vordr/gate-other:1", "other")

	cases := []struct {
		name   string
		change func(t *testing.T, img images.Image) images.Image
		want   string
	}{
		{"label-to-other-attestations", func(t *testing.T, img images.Image) images.Image {
			// Valid, signed attestations, but about another image.
			img.Labels[plugin.LabelAttestations] = other.Attestations.Digest.String()
			return img
		}, "SUBJECT_MISMATCH"},
		{"attestations-rewritten", func(t *testing.T, img images.Image) images.Image {
			// Delete the blob and store different bytes under a new digest.
			old := digest.Digest(img.Labels[plugin.LabelAttestations])
			data, err := content.ReadBlob(e.ctx, cs, ocispec.Descriptor{Digest: old})
			if err != nil {
				t.Fatal(err)
			}
			if err := cs.Delete(e.ctx, old); err != nil {
				t.Fatal(err)
			}
			data = append(data, ' ') // no longer canonical JSON
			nd := ocispec.Descriptor{MediaType: "application/json", Digest: digest.FromBytes(data), Size: int64(len(data))}
			// Under a lease: the delete above schedules a GC that would
			// otherwise collect the new blob before the image references it.
			lctx, done, err := e.c.WithLease(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { done(context.Background()) })
			if err := content.WriteBlob(lctx, cs, "rewrite-"+nd.Digest.Encoded(), bytes.NewReader(data), nd); err != nil {
				t.Fatal(err)
			}
			img.Labels[plugin.LabelAttestations] = nd.Digest.String()
			img.Labels[plugin.GCLabelAttestations] = nd.Digest.String()
			return img
		}, "MALFORMED_BUNDLE"},
		{"attestations-deleted", func(t *testing.T, img images.Image) images.Image {
			if err := cs.Delete(e.ctx, digest.Digest(img.Labels[plugin.LabelAttestations])); err != nil {
				t.Fatal(err)
			}
			return img
		}, "missing from the content store"},
		{"target-changed", func(t *testing.T, img images.Image) images.Image {
			// The record now points at another (verified!) image's manifest.
			img.Target = other.Image.Target
			return img
		}, "SUBJECT_MISMATCH"},
		{"labels-stripped", func(t *testing.T, img images.Image) images.Image {
			for k := range img.Labels {
				if strings.HasPrefix(k, "vordr.io/") {
					delete(img.Labels, k)
				}
			}
			return img
		}, "no vordr attestations"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := "docker.io/vordr/gate-changed-" + tc.name + ":1"
			importSigned(t, e, ref, "changed "+tc.name)
			// Verified first: it runs.
			if code, _ := e.runImage(ref, nil, "true"); code != 0 {
				t.Fatalf("before the change: exit %d", code)
			}
			img, err := e.c.ImageService().Get(e.ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			img = tc.change(t, img)
			if _, err := e.c.ImageService().Update(e.ctx, img); err != nil {
				t.Fatal(err)
			}
			_, _, err = e.startImage(ref, nil, "true")
			if err == nil {
				t.Fatal("created after the evidence changed")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ref) {
				t.Errorf("error %q, want it to name the image and %q", err, tc.want)
			}
		})
	}
}

// TestGateSnapshotNotFromImage: a container whose rootfs snapshot was not
// prepared from the verified image's layers is refused, though the container
// record names the verified image.
func TestGateSnapshotNotFromImage(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/gate-snapshot:1"
	importSigned(t, e, ref, "snapshot")
	img, err := e.c.GetImage(e.ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := e.c.GetImage(e.ctx, testImage) // another, unverified chain
	if err != nil {
		t.Fatal(err)
	}
	id := uniqueID(t)
	ctr, err := e.c.NewContainer(e.ctx, id,
		containerd.WithNewSnapshot(id, plain),
		containerd.WithNewSpec(oci.WithImageConfig(plain), oci.WithProcessArgs("true")),
		containerd.WithImageName(img.Name()),
		containerd.WithRuntime(e.rt.runtime, e.rt.options(e.d)),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer ctr.Delete(e.d.Context(context.Background()), containerd.WithSnapshotCleanup)
	_, err = ctr.NewTask(e.ctx, e.ioCreator(&output{}))
	if err == nil || !strings.Contains(err.Error(), "not the verified image's content") {
		t.Fatalf("NewTask: %v", err)
	}
}

// TestGateConcurrent: 50 containers of one verified image start at once
// under a strict policy.
func TestGateConcurrent(t *testing.T) {
	const n = 50
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/gate-concurrent:1"
	importSigned(t, e, ref, "concurrent")
	ctrs := make([]containerd.Container, n)
	for i := range ctrs {
		ctrs[i] = e.newImageContainer(uniqueID(t), ref, nil, "cat", "/etc/marker")
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, ctr := range ctrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := &output{}
			task, err := ctr.NewTask(e.ctx, e.ioCreator(out))
			if err != nil {
				errs <- fmt.Errorf("%s: create: %w", ctr.ID(), err)
				return
			}
			defer task.Delete(e.ctx)
			ch, err := task.Wait(e.ctx)
			if err != nil {
				errs <- err
				return
			}
			if err := task.Start(e.ctx); err != nil {
				errs <- fmt.Errorf("%s: start: %w", ctr.ID(), err)
				return
			}
			st := <-ch
			if code, _, _ := st.Result(); code != 0 {
				errs <- fmt.Errorf("%s: exit %d", ctr.ID(), code)
				return
			}
			if io := task.IO(); io != nil {
				io.Wait()
			}
			if got := out.stdout.String(); got != "concurrent\n" {
				errs <- fmt.Errorf("%s: stdout %q", ctr.ID(), got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d verified containers created, started and exited in %v", n, time.Since(start))
	// Every Create went through the gate.
	verified := 0
	var took []string
	for _, line := range strings.Split(e.d.Log(), "\n") {
		if strings.Contains(line, "vordr gate: image verified") && strings.Contains(line, "gate-concurrent") {
			verified++
			if i := strings.Index(line, "cached="); i >= 0 && len(took) < 3 {
				took = append(took, line[i:])
			}
		}
	}
	if verified < n {
		t.Errorf("the gate logged %d verified creates, want %d", verified, n)
	}
	t.Logf("gate check times (first 3): %v", took)
}

// TestGateAliasRecord: the CRI (and `ctr image tag`) give an imported image
// more records of the same manifest without vordr's labels; a container of
// such a record runs under the strict gate, because the evidence of the
// manifest is found on its sibling and verified again.
func TestGateAliasRecord(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	ref := "docker.io/vordr/gate-alias:1"
	res := importSigned(t, e, ref, "alias")
	alias := "docker.io/vordr/gate-alias@" + res.Image.Target.Digest.String()
	if _, err := e.c.ImageService().Create(e.ctx, images.Image{Name: alias, Target: res.Image.Target}); err != nil {
		t.Fatal(err)
	}
	removeImage(e, alias)
	code, out := e.runImage(alias, nil, "cat", "/etc/marker")
	if code != 0 || out.stdout.String() != "alias\n" {
		t.Fatalf("alias record of a verified image: exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
	}
	// Without the verified sibling the alias is just an unverified image.
	if err := e.c.ImageService().Delete(e.ctx, ref, imagesSync()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.startImage(alias, nil, "true"); err == nil || !strings.Contains(err.Error(), "no vordr attestations") {
		t.Errorf("alias without a verified sibling: %v", err)
	}
}

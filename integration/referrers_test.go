//go:build linux

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	orascontent "oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/plugin"
	"github.com/vordr-project/vordr/referrers"
)

// pushCLI runs `vordr push --plain-http BUNDLE REF` and fails the test unless
// it exits 0.
func pushCLI(t *testing.T, bundle, ref string, extra ...string) string {
	t.Helper()
	args := append(append([]string{"push", "--plain-http"}, extra...), bundle, ref)
	out, errOut, code := runCmd(t, vordrBinary(t), args...)
	if code != 0 {
		t.Fatalf("vordr push %s %s: exit %d\n%s%s", bundle, ref, code, out, errOut)
	}
	return out
}

// pullCLI runs `vordr pull --plain-http` into the env's containerd under the
// strict test policy.
func pullCLI(t *testing.T, e *env, ref string, extra ...string) (stdout, stderr string, code int) {
	t.Helper()
	args := append([]string{"pull", "--plain-http", "--address", e.d.Address, "--namespace", e.d.Namespace,
		"--policy", testKeys(t).policies[policy.Strict]}, extra...)
	return runCmd(t, vordrBinary(t), append(args, ref)...)
}

// testRepo opens a repository of the test registry as a raw OCI client, to
// look at and tamper with what vordr push wrote.
func testRepo(t *testing.T, addr, name string) *remote.Repository {
	t.Helper()
	repo, err := remote.NewRepository(addr + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	return repo
}

// evidenceReferrers lists the image's evidence referrers the way any OCI
// 1.1 client does (the API, else the tag schema).
func evidenceReferrers(t *testing.T, ctx context.Context, repo *remote.Repository, subject digest.Digest) []ocispec.Descriptor {
	t.Helper()
	var out []ocispec.Descriptor
	desc, err := repo.Resolve(ctx, subject.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Referrers(ctx, desc, referrers.ArtifactTypeEvidence, func(d []ocispec.Descriptor) error {
		out = append(out, d...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// hasReferrersAPI asks a registry whether it serves the referrers API.
func hasReferrersAPI(t *testing.T, host, name string, subject digest.Digest) bool {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/v2/%s/referrers/%s", host, name, subject))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func fileSHA256(t *testing.T, path string) digest.Digest {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(data)))
}

// TestReferrersRoundTrip: a signed bundle pushed to the distribution
// registry (image + evidence referrer, found through the referrers API) is
// pulled back into containerd verified, byte for byte the bundle that was
// pushed, and runs under the vordr runtime's strict gate.
func TestReferrersRoundTrip(t *testing.T) {
	regAddr := startRegistry(t)
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	bundle := makeBundle(t, bundleOpts{ref: "docker.io/vordr/referrers-signed:1", marker: "referrers-signed", sign: true})
	ref := regAddr + "/vordr/referrers-signed:1"

	out := pushCLI(t, bundle, ref)
	t.Logf("vordr push:\n%s", out)
	b, err := ctp.OpenFile(bundle, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	md := b.ManifestDescriptor().Digest
	b.Close()
	if !strings.Contains(out, "image:    "+md.String()) {
		t.Errorf("push output does not name the image manifest %s", md)
	}
	repo := testRepo(t, regAddr, "vordr/referrers-signed")
	evs := evidenceReferrers(t, e.ctx, repo, md)
	if len(evs) != 1 {
		t.Fatalf("%d evidence referrers of %s, want 1", len(evs), md)
	}
	// distribution (v3.1) has no referrers API: the evidence is indexed
	// under the tag schema's sha256-<hex> tag. Should the registry gain the
	// API, the API indexes it and the tag must not be written.
	_, tagErr := repo.Resolve(e.ctx, "sha256-"+md.Encoded())
	if api := hasReferrersAPI(t, regAddr, "vordr/referrers-signed", md); api == (tagErr == nil) {
		t.Errorf("registry referrers API %v, tag-schema index present %v", api, tagErr == nil)
	} else {
		t.Logf("registry has the referrers API: %v", api)
	}
	// Pushing again uploads nothing new and writes the same referrer.
	if again := pushCLI(t, bundle, ref); !strings.Contains(again, "0 uploaded") || !strings.Contains(again, evs[0].Digest.String()) {
		t.Errorf("second push:\n%s", again)
	}

	stdout, stderr, code := pullCLI(t, e, ref)
	if code != 0 {
		t.Fatalf("vordr pull: exit %d\n%s%s", code, stdout, stderr)
	}
	removeImage(e, ref)
	t.Logf("vordr pull:\n%s", stdout)
	img, err := e.c.ImageService().Get(e.ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.Target.Digest != md {
		t.Errorf("pulled image targets %s, pushed %s", img.Target.Digest, md)
	}
	// The reassembled bundle is the pushed file, byte for byte.
	if got, want := img.Labels[plugin.LabelBundleDigest], fileSHA256(t, bundle).String(); got != want {
		t.Errorf("bundle digest label %s, the pushed file is %s", got, want)
	}
	if img.Labels[plugin.LabelDecision] != string(ctp.Accept) {
		t.Errorf("decision label %q", img.Labels[plugin.LabelDecision])
	}
	code2, o := e.runImage(ref, nil, "cat", "/etc/marker")
	if code2 != 0 || o.stdout.String() != "referrers-signed\n" {
		t.Fatalf("run under the strict gate: exit %d stdout %q stderr %q", code2, o.stdout.String(), o.stderr.String())
	}
}

// TestPullRefused: an image whose evidence referrer was tampered with, an
// image without any, and an unsigned bundle are refused, and nothing of
// them is left in containerd.
func TestPullRefused(t *testing.T) {
	regAddr := startRegistry(t)
	e := newEnv(t, shared, runtimes[0])

	t.Run("Tampered", func(t *testing.T) {
		bundle := makeBundle(t, bundleOpts{ref: "docker.io/vordr/referrers-tampered:1", marker: "referrers-tampered", sign: true})
		name := "vordr/referrers-tampered"
		ref := regAddr + "/" + name + ":1"
		pushCLI(t, bundle, ref)
		tamperEvidence(t, e.ctx, testRepo(t, regAddr, name), bundle)
		stdout, stderr, code := pullCLI(t, e, ref)
		if code != 1 {
			t.Fatalf("pull of tampered evidence: exit %d, want 1 (rejected)\n%s%s", code, stdout, stderr)
		}
		t.Logf("refused: %s", stderr)
		assertNothingOf(t, e, ref, blobsOf(t, bundle))
	})

	t.Run("NoEvidence", func(t *testing.T) {
		bundle := makeBundle(t, bundleOpts{ref: "docker.io/vordr/referrers-none:1", marker: "referrers-none", sign: true})
		name := "vordr/referrers-none"
		ref := regAddr + "/" + name + ":1"
		pushCLI(t, bundle, ref)
		repo := testRepo(t, regAddr, name)
		md := manifestDigest(t, bundle)
		for _, ev := range evidenceReferrers(t, e.ctx, repo, md) {
			if err := repo.Delete(e.ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		stdout, stderr, code := pullCLI(t, e, ref)
		if code != 1 || !strings.Contains(stderr, "no vordr evidence referrer") {
			t.Fatalf("pull without evidence: exit %d, want 1 saying there is no evidence referrer\n%s%s", code, stdout, stderr)
		}
		assertNothingOf(t, e, ref, blobsOf(t, bundle))
	})

	t.Run("Unsigned", func(t *testing.T) {
		bundle := makeBundle(t, bundleOpts{ref: "docker.io/vordr/referrers-unsigned:1", marker: "referrers-unsigned"})
		ref := regAddr + "/vordr/referrers-unsigned:1"
		pushCLI(t, bundle, ref)
		stdout, stderr, code := pullCLI(t, e, ref)
		if code != 1 || !strings.Contains(stderr, "THRESHOLD_NOT_MET") {
			t.Fatalf("pull of an unsigned bundle: exit %d, want 1 (THRESHOLD_NOT_MET)\n%s%s", code, stdout, stderr)
		}
		assertNothingOf(t, e, ref, blobsOf(t, bundle))
	})

	t.Run("BadReference", func(t *testing.T) {
		_, stderr, code := pullCLI(t, e, "not a reference")
		if code != 3 || !strings.Contains(stderr, "HOST[:PORT]/REPOSITORY") {
			t.Errorf("bad reference: exit %d, stderr %q", code, stderr)
		}
	})
}

func manifestDigest(t *testing.T, bundle string) digest.Digest {
	t.Helper()
	b, err := ctp.OpenFile(bundle, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return b.ManifestDescriptor().Digest
}

// tamperEvidence replaces the image's evidence referrer by one whose
// attestations carry a changed signature: what a registry (or anyone with
// push access) could do. The blobs are consistent with their digests, so
// only signature verification can notice.
func tamperEvidence(t *testing.T, ctx context.Context, repo *remote.Repository, bundle string) {
	t.Helper()
	b, err := ctp.OpenFile(bundle, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mdesc := b.ManifestDescriptor()
	att := b.AttestationsJSON()
	b.Close()
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: mdesc.Digest, Size: mdesc.Size}
	var evs []ocispec.Descriptor
	if err := repo.Referrers(ctx, subject, referrers.ArtifactTypeEvidence, func(d []ocispec.Descriptor) error {
		evs = append(evs, d...)
		return nil
	}); err != nil || len(evs) != 1 {
		t.Fatalf("evidence referrers %v: %v", evs, err)
	}
	rc, err := repo.Fetch(ctx, evs[0])
	if err != nil {
		t.Fatal(err)
	}
	raw, err := orascontent.ReadAll(rc, evs[0])
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	// Flip one base64 character of the first signature.
	i := bytes.Index(att, []byte(`"sig":"`))
	if i < 0 {
		t.Fatal("no signature in the attestations")
	}
	bad := append([]byte(nil), att...)
	p := i + len(`"sig":"`) + 3
	if bad[p] == 'A' {
		bad[p] = 'B'
	} else {
		bad[p] = 'A'
	}
	badDesc := ocispec.Descriptor{MediaType: ctp.BundleMediaType, Digest: digest.FromBytes(bad), Size: int64(len(bad))}
	if err := repo.Push(ctx, badDesc, bytes.NewReader(bad)); err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers {
		if l.MediaType == ctp.BundleMediaType {
			badDesc.Annotations = l.Annotations
			m.Layers[i] = badDesc
		}
	}
	m.Annotations[ocispec.AnnotationCreated] = time.Now().UTC().Format(time.RFC3339)
	raw, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	nd := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: m.ArtifactType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := repo.Push(ctx, nd, bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	if err := repo.Delete(ctx, evs[0]); err != nil {
		t.Fatal(err)
	}
}

// memRegistry serves go-containerregistry's in-memory registry, which has
// the referrers API that distribution lacks. Reads of sha256-<hex> tags are
// refused unless tagSchema, so a pull that succeeds used the API.
func memRegistry(t *testing.T, tagSchema bool) string {
	t.Helper()
	reg := ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tagSchema && r.Method != http.MethodPut && strings.Contains(r.URL.Path, "/manifests/sha256-") {
			http.NotFound(w, r)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushPullCheck pushes a signed bundle to host/name:1, pulls it into
// containerd and checks the image is the bundle, byte for byte.
func pushPullCheck(t *testing.T, e *env, host, name, marker string, flags ...string) (bundle string, md digest.Digest) {
	t.Helper()
	bundle = makeBundle(t, bundleOpts{ref: "docker.io/vordr/" + marker + ":1", marker: marker, sign: true})
	ref := host + "/" + name + ":1"
	pushCLI(t, bundle, ref, flags...)
	stdout, stderr, code := pullCLI(t, e, ref, flags...)
	if code != 0 {
		t.Fatalf("vordr pull %v: exit %d\n%s%s", flags, code, stdout, stderr)
	}
	removeImage(e, ref)
	img, err := e.c.ImageService().Get(e.ctx, ref)
	if err != nil || img.Labels[plugin.LabelBundleDigest] != fileSHA256(t, bundle).String() {
		t.Fatalf("pulled image %+v: %v", img, err)
	}
	return bundle, manifestDigest(t, bundle)
}

// TestReferrersAPI: through a registry with the OCI 1.1 referrers API (and
// no tag-schema reads), push and pull round-trip into containerd.
func TestReferrersAPI(t *testing.T) {
	e := newEnv(t, shared, runtimes[0])
	host := memRegistry(t, false)
	_, md := pushPullCheck(t, e, host, "vordr/referrers-api", "referrers-api")
	if !hasReferrersAPI(t, host, "vordr/referrers-api", md) {
		t.Fatal("the test registry does not serve the referrers API")
	}
}

// TestReferrersTagSchema: --referrers-tag-schema writes and reads the
// sha256-<hex> index even where the registry has the API (distribution, which
// has none, is covered by TestReferrersRoundTrip).
func TestReferrersTagSchema(t *testing.T) {
	e := newEnv(t, shared, runtimes[0])
	host := memRegistry(t, true)
	_, md := pushPullCheck(t, e, host, "vordr/referrers-forced", "referrers-forced", "--referrers-tag-schema")
	repo, err := remote.NewRepository(host + "/vordr/referrers-forced")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	idxDesc, rc, err := repo.FetchReference(e.ctx, "sha256-"+md.Encoded())
	if err != nil {
		t.Fatalf("no tag-schema index sha256-%s: %v", md.Encoded(), err)
	}
	raw, err := orascontent.ReadAll(rc, idxDesc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(referrers.ArtifactTypeEvidence)) {
		t.Fatalf("tag-schema index does not list the evidence referrer: %s", raw)
	}
}

// TestReferrersVerifierPull: containerd's transfer service pulls from the
// distribution registry with vordr-verifier judging by the image's evidence
// referrers alone (no bundle directory, no evidence in containerd): an image
// pushed with signed evidence is pulled, one with unsigned evidence or with
// none is blocked and not recorded.
func TestReferrersVerifierPull(t *testing.T) {
	k := testKeys(t)
	regAddr := startRegistry(t)
	evDir := filepath.Join(t.TempDir(), "evidence")
	d := startVerifyingDaemon(t, func(string) string {
		return fmt.Sprintf("policy = %q\nregistry_referrers = true\nplain_http_registries = [%q]\nevidence_dir = %q\n", k.policies[policy.Strict], regAddr, evDir)
	})
	e := newEnv(t, d, runtimes[2])

	signed := makeBundle(t, bundleOpts{ref: "docker.io/vordr/referrers-verifier:1", marker: "referrers-verifier", sign: true})
	remoteRef := regAddr + "/vordr/referrers-verifier:1"
	pushCLI(t, signed, remoteRef)
	if err := e.transferPull(remoteRef); err != nil {
		t.Fatalf("pull of an image with signed evidence referrers: %v\ncontainerd log:\n%s", err, tail(d.Log(), 20))
	}
	img, err := e.c.ImageService().Get(e.ctx, remoteRef)
	if err != nil || img.Target.Digest != manifestDigest(t, signed) {
		t.Fatalf("pulled image %+v: %v", img, err)
	}
	if !strings.Contains(d.Log(), "evidence referrer") {
		t.Errorf("containerd did not log the verifier's judgement naming the referrer")
	}

	// The image record ctr's pull made carries no vordr labels: the strict
	// gate finds the evidence the verifier stored by manifest digest, and
	// verifies it again.
	gated := newEnv(t, d, runtimeCase{name: "vordr-gate-store", runtime: vordrRuntime, options: func(d *daemon.Daemon) any {
		return &runtimeoptions.Options{ConfigBody: []byte(gateConfig(t, d, "strict") + fmt.Sprintf("evidence_dir = %q\n", evDir))}
	}})
	code, out := gated.runImage(remoteRef, nil, "cat", "/etc/marker")
	if code != 0 || out.stdout.String() != "referrers-verifier\n" {
		t.Fatalf("strict gate, evidence from the verifier's store: exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
	}
	// Without the stored evidence the same image is refused, and so it is
	// when what is stored does not verify (a planted file buys nothing).
	stored := filepath.Join(evDir, img.Target.Digest.Encoded(), "attestations.json")
	good, err := os.ReadFile(stored)
	if err != nil {
		t.Fatalf("the verifier stored no evidence: %v", err)
	}
	if err := os.WriteFile(stored, []byte(strings.Replace(string(good), `"sig":"`, `"sig":"AAAA`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := gated.startImage(remoteRef, nil, "true"); err == nil || !strings.Contains(err.Error(), "strict") {
		t.Errorf("strict gate, tampered stored evidence: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(evDir, img.Target.Digest.Encoded())); err != nil {
		t.Fatal(err)
	}
	if _, _, err := gated.startImage(remoteRef, nil, "true"); err == nil || !strings.Contains(err.Error(), "no vordr attestations") {
		t.Errorf("strict gate, no stored evidence: %v", err)
	}

	for _, tc := range []struct {
		name, marker string
		sign, drop   bool
		want         string
	}{
		{"unsigned", "referrers-verifier-unsigned", false, false, "THRESHOLD_NOT_MET"},
		{"no evidence", "referrers-verifier-none", true, true, "no vordr evidence referrer"},
	} {
		bundle := makeBundle(t, bundleOpts{ref: "docker.io/vordr/" + tc.marker + ":1", marker: tc.marker, sign: tc.sign})
		name := "vordr/" + tc.marker
		ref := regAddr + "/" + name + ":1"
		pushCLI(t, bundle, ref)
		if tc.drop {
			repo := testRepo(t, regAddr, name)
			for _, ev := range evidenceReferrers(t, e.ctx, repo, manifestDigest(t, bundle)) {
				if err := repo.Delete(e.ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		err := e.transferPull(ref)
		if err == nil || !strings.Contains(err.Error(), "blocked pull") || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: want a pull blocked by vordr-verifier saying %q, got %v", tc.name, tc.want, err)
		}
		t.Logf("%s: %v", tc.name, err)
		if _, err := e.c.ImageService().Get(e.ctx, ref); !errdefs.IsNotFound(err) {
			t.Fatalf("%s: blocked image recorded: %v", tc.name, err)
		}
	}
}

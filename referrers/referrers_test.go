package referrers

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/sigstore/sigstoretest"
)

// testBundle packs and signs a one-file image.
func testBundle(t *testing.T, marker string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "marker"), []byte(marker+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	priv, _, err := keys.Generate(keys.Ed25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.ParsePrivateKey(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "app.ctp")
	if _, err := ctp.Pack(context.Background(), root, out, ctp.PackOptions{
		Name: "app", Version: "1", ImageRef: "example.com/app:1", Created: time.Unix(1700000000, 0).UTC(),
		Signers: []*keys.Signer{s},
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// memRegistry serves go-containerregistry's in-memory registry, with or
// without the referrers API; noTagSchema answers 404 to every read of a
// sha256-<hex> tag, so a pull that succeeds used the API. It counts the
// referrers API requests.
func memRegistry(t *testing.T, api, noTagSchema bool) (string, *atomic.Int64) {
	t.Helper()
	var apiCalls atomic.Int64
	reg := registry.New(registry.WithReferrersSupport(api), registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/referrers/") {
			apiCalls.Add(1)
		}
		if noTagSchema && r.Method != http.MethodPut && strings.Contains(r.URL.Path, "/manifests/sha256-") {
			http.NotFound(w, r)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &apiCalls
}

func testOptions() Options {
	return Options{PlainHTTP: true, Credential: auth.StaticCredential("", auth.EmptyCredential)}
}

// pullBytes pulls ref and returns the reassembled bundle's bytes.
func pullBytes(t *testing.T, ref string, o Options) ([]byte, Candidate) {
	t.Helper()
	var got []byte
	var cand Candidate
	err := Pull(context.Background(), ref, PullOptions{Options: o, TempDir: t.TempDir()}, func(c Candidate) error {
		var err error
		got, err = os.ReadFile(c.Path)
		cand = c
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, cand
}

// TestPushPullReferrersAPI: against a registry with the referrers API (and
// no tag-schema reads possible), a pushed bundle comes back byte for byte.
func TestPushPullReferrersAPI(t *testing.T) {
	host, calls := memRegistry(t, true, true)
	bundle := testBundle(t, "api")
	ref := host + "/vordr/app:1"
	res, err := Push(context.Background(), bundle, ref, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded == 0 || len(res.Sigstore) != 0 {
		t.Errorf("push result %+v", res)
	}
	got, cand := pullBytes(t, ref, testOptions())
	want, _ := os.ReadFile(bundle)
	if !bytes.Equal(got, want) {
		t.Fatalf("pulled bundle differs from the pushed one (%d vs %d bytes)", len(got), len(want))
	}
	if cand.Evidence.Digest != res.Evidence.Digest || cand.Image.Digest != res.Image.Digest {
		t.Errorf("candidate %+v, pushed %+v", cand, res)
	}
	if calls.Load() == 0 {
		t.Errorf("the referrers API was never asked")
	}
	// By digest too.
	if got, _ := pullBytes(t, host+"/vordr/app@"+res.Image.Digest.String(), testOptions()); !bytes.Equal(got, want) {
		t.Errorf("pull by digest differs")
	}
	// Pushing again sends nothing new.
	again, err := Push(context.Background(), bundle, ref, testOptions())
	if err != nil || again.Uploaded != 0 || again.Evidence.Digest != res.Evidence.Digest {
		t.Errorf("second push %+v: %v", again, err)
	}
}

// TestPushPullTagSchema: without the API (and with the tag schema forced
// where the API exists) the evidence travels through the sha256-<hex> tag.
func TestPushPullTagSchema(t *testing.T) {
	for _, tc := range []struct {
		name   string
		api    bool
		forced bool
	}{{"RegistryWithoutAPI", false, false}, {"Forced", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			host, calls := memRegistry(t, tc.api, false)
			bundle := testBundle(t, tc.name)
			o := testOptions()
			o.TagSchema = tc.forced
			ref := host + "/vordr/app:1"
			res, err := Push(context.Background(), bundle, ref, o)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.Get(fmt.Sprintf("http://%s/v2/vordr/app/manifests/sha256-%s", host, res.Image.Digest.Encoded()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("tag-schema index: %s", resp.Status)
			}
			got, _ := pullBytes(t, ref, o)
			want, _ := os.ReadFile(bundle)
			if !bytes.Equal(got, want) {
				t.Fatal("pulled bundle differs")
			}
			if tc.forced && calls.Load() != 0 {
				t.Errorf("forced tag schema, yet the referrers API was asked %d times", calls.Load())
			}
		})
	}
}

// TestPullErrors: what cannot be pulled says why.
func TestPullErrors(t *testing.T) {
	host, _ := memRegistry(t, true, false)
	bundle := testBundle(t, "errors")
	ref := host + "/vordr/app:1"
	if _, err := Push(context.Background(), bundle, ref, testOptions()); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused by the test")
	err := Pull(context.Background(), ref, PullOptions{Options: testOptions()}, func(Candidate) error { return refused })
	if !errors.Is(err, refused) || IsNoEvidence(err) {
		t.Errorf("a refused candidate: %v", err)
	}
	for _, tc := range []struct{ ref, want string }{
		{host + "/vordr/app", "no tag or digest"},
		{host + "/vordr/nothing:1", "resolve"},
		{"UPPER CASE", "HOST[:PORT]/REPOSITORY"},
	} {
		err := Pull(context.Background(), tc.ref, PullOptions{Options: testOptions()}, func(Candidate) error { return nil })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pull %q: %v, want an error saying %q", tc.ref, err, tc.want)
		}
	}
	// Push to a digest that is not the bundle's image.
	bad := host + "/vordr/app@sha256:" + strings.Repeat("0", 64)
	if _, err := Push(context.Background(), bundle, bad, testOptions()); err == nil || !strings.Contains(err.Error(), "push to a tag") {
		t.Errorf("push to another digest: %v", err)
	}
	// An image with referrers but no evidence.
	host2, _ := memRegistry(t, true, false)
	other := testBundle(t, "no-evidence")
	b, err := ctp.OpenFile(other, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ref2 := host2 + "/vordr/plain:1"
	repo, _, err := testOptions().repository(ref2)
	if err != nil {
		t.Fatal(err)
	}
	res := &PushResult{}
	for _, d := range b.Blobs() {
		r, _ := b.OpenBlob(d.Digest)
		if d.Digest == b.ManifestDescriptor().Digest {
			d.MediaType = ocispec.MediaTypeImageManifest
			err = repo.PushReference(context.Background(), d, r, "1")
		} else {
			_, err = pushBlob(context.Background(), repo, d, func() (io.ReadCloser, error) { return r, nil })
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	mdesc := b.ManifestDescriptor()
	mdesc.MediaType = ocispec.MediaTypeImageManifest
	if _, err := pushReferrer(context.Background(), repo, res, mdesc, "application/example", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	err = Pull(context.Background(), ref2, PullOptions{Options: testOptions()}, func(Candidate) error { return nil })
	if !IsNoEvidence(err) || !strings.Contains(err.Error(), "vordr push") {
		t.Errorf("no evidence: %v", err)
	}
}

// TestPushSigstoreReferrers: each sigstore bundle of a .ctp is also pushed
// as cosign lays it out (artifactType and layer of the bundle's media type,
// the exact bytes, predicate type annotated), and the bundle still comes
// back byte for byte.
func TestPushSigstoreReferrers(t *testing.T) {
	host, _ := memRegistry(t, true, false)
	plain := testBundle(t, "sigstore")
	b, err := ctp.OpenFile(plain, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	md := b.ManifestDescriptor().Digest
	b.Close()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stmt := sigstoretest.Statement(t, "https://in-toto.io/Statement/v1", md.Encoded(), ctp.PredicateSLSAv02, map[string]any{"builder": map[string]any{"id": "test"}})
	sb := sigstoretest.Keyed(t, stmt, k)
	bundle := filepath.Join(t.TempDir(), "with-sigstore.ctp")
	if err := ctp.AttachSigstore(context.Background(), plain, bundle, [][]byte{sb}, ctp.Options{}); err != nil {
		t.Fatal(err)
	}
	ref := host + "/vordr/app:1"
	res, err := Push(context.Background(), bundle, ref, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sigstore) != 1 {
		t.Fatalf("%d sigstore referrers pushed, want 1", len(res.Sigstore))
	}
	repo, _, err := testOptions().repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := fetchAll(context.Background(), repo, res.Sigstore[0], maxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	const mt = "application/vnd.dev.sigstore.bundle.v0.3+json"
	if m.ArtifactType != mt || len(m.Layers) != 1 || m.Layers[0].MediaType != mt || m.Subject == nil || m.Subject.Digest != md ||
		m.Annotations[annotationBundlePredicate] != ctp.PredicateSLSAv02 || m.Annotations[annotationBundleContent] != "dsse-envelope" {
		t.Errorf("sigstore referrer manifest %s", raw)
	}
	// The layer is the bundle as the .ctp holds it.
	b, err = ctp.OpenFile(bundle, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stored := b.Attestations().SigstoreBundles[0]
	b.Close()
	layer, err := fetchAll(context.Background(), repo, m.Layers[0], maxAttestationsSize)
	if err != nil || string(layer) != stored {
		t.Errorf("sigstore layer differs from the bundle's (%v)", err)
	}
	got, _ := pullBytes(t, ref, testOptions())
	if want, _ := os.ReadFile(bundle); !bytes.Equal(got, want) {
		t.Error("pulled bundle differs")
	}
}

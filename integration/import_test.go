//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/testimage"
	"github.com/vordr-project/vordr/plugin"
)

// signing is a key pair and policies (one per mode) that trust it.
type signing struct {
	dir      string
	signer   *keys.Signer
	policies map[policy.Mode]string // mode -> policy file
}

var (
	keysOnce sync.Once
	keysVal  *signing
	keysErr  error
)

// testKeys makes one signing key for the whole run (in a directory removed
// with the test binary's work directory).
func testKeys(t *testing.T) *signing {
	t.Helper()
	keysOnce.Do(func() {
		// Under the run's work directory, which TestMain removes.
		dir := filepath.Join(filepath.Dir(shimDir), "keys")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			keysErr = err
			return
		}
		priv, pub, err := keys.Generate(keys.Ed25519, nil)
		if err != nil {
			keysErr = err
			return
		}
		s, err := keys.ParsePrivateKey(priv, nil)
		if err != nil {
			keysErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "release.pub"), pub, 0o644); err != nil {
			keysErr = err
			return
		}
		k := &signing{dir: dir, signer: s, policies: map[policy.Mode]string{}}
		for _, m := range []policy.Mode{policy.Strict, policy.Permissive, policy.Audit} {
			p := filepath.Join(dir, string(m)+".toml")
			body := fmt.Sprintf("version = 1\nmode = %q\nrequired_predicates = [%q]\n\n[[signers]]\nname = \"release\"\nkey = \"release.pub\"\n", m, ctp.PredicateSLSA)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				keysErr = err
				return
			}
			k.policies[m] = p
		}
		keysVal = k
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysVal
}

func (k *signing) policy(t *testing.T, m policy.Mode) *policy.Policy {
	t.Helper()
	p, err := policy.Load(k.policies[m])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// bundleOpts describe a test bundle.
type bundleOpts struct {
	ref    string
	marker string // content of /etc/marker: makes the layer unique
	sign   bool
	files  []testimage.File // more files in the image
}

// makeBundle packs a busybox image (with a unique marker file, so its layer
// is its own) into a .ctp, signed by the test key when asked.
func makeBundle(t *testing.T, o bundleOpts) string {
	t.Helper()
	k := testKeys(t)
	dir := t.TempDir()
	img, err := testimage.Busybox(testimage.Options{Name: o.ref, Files: append([]testimage.File{{Path: "/etc/marker", Content: []byte(o.marker + "\n")}}, o.files...)})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "image.tar")
	if err := img.WriteArchiveFile(archive); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "app.ctp")
	opts := ctp.PackOptions{Name: "busybox", Version: "1.0", ImageRef: o.ref, Created: time.Unix(1700000000, 0).UTC()}
	if o.sign {
		opts.Signers = []*keys.Signer{k.signer}
	}
	if _, err := ctp.Pack(context.Background(), archive, out, opts); err != nil {
		t.Fatal(err)
	}
	return out
}

// blobsOf lists the digests a bundle would put into the content store.
func blobsOf(t *testing.T, path string) []digest.Digest {
	t.Helper()
	b, err := ctp.OpenFile(path, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var out []digest.Digest
	for _, d := range b.Blobs() {
		out = append(out, d.Digest)
	}
	return append(out, digest.FromBytes(b.AttestationsJSON()), digest.FromBytes(b.ManifestTOML()))
}

// assertNothingOf checks that containerd holds nothing of a bundle: no image
// record, none of its blobs, no lease left by the importer.
func assertNothingOf(t *testing.T, e *env, ref string, blobs []digest.Digest) {
	t.Helper()
	if _, err := e.c.ImageService().Get(e.ctx, ref); !errdefs.IsNotFound(err) {
		t.Errorf("image %s exists after a failed import (err %v)", ref, err)
	}
	want := map[digest.Digest]bool{}
	for _, d := range blobs {
		want[d] = true
	}
	if err := e.c.ContentStore().Walk(e.ctx, func(info content.Info) error {
		if want[info.Digest] {
			t.Errorf("content %s of the failed import is still in the content store", info.Digest)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ls, err := e.c.LeasesService().List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Labels["vordr.io/import"] != "" {
			t.Errorf("lease %s of the importer left behind", l.ID)
		}
	}
}

// removeImage deletes an image synchronously (so GC runs) when a test ends.
func removeImage(e *env, ref string) {
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(e.d.Context(context.Background()), 30*time.Second)
		defer cancel()
		_ = e.c.ImageService().Delete(ctx, ref, imagesSync())
	})
}

func TestImportSignedBundle(t *testing.T) {
	k := testKeys(t)
	e := newEnv(t, shared, runtimes[0])
	ref := "docker.io/vordr/import-signed:1"
	path := makeBundle(t, bundleOpts{ref: ref, marker: "signed", sign: true})
	res, err := plugin.Import(e.ctx, e.c, path, k.policy(t, policy.Strict), plugin.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	removeImage(e, ref)
	if res.Verification.Decision != ctp.Accept || res.Image.Name != ref {
		t.Fatalf("result %+v", res)
	}
	img, err := e.c.ImageService().Get(e.ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	l := img.Labels
	for _, key := range []string{plugin.LabelBundleDigest, plugin.LabelAttestations, plugin.LabelManifestTOML, plugin.LabelSigners,
		plugin.LabelPredicates, plugin.LabelPolicyDigest, plugin.LabelVerifiedAt, plugin.GCLabelAttestations, plugin.GCLabelManifestTOML} {
		if l[key] == "" {
			t.Errorf("image label %s missing (labels %v)", key, l)
		}
	}
	if l[plugin.LabelSigners] != k.signer.ID || l[plugin.LabelDecision] != "accept" || l[plugin.LabelBundleDigest] != res.BundleDigest.String() {
		t.Errorf("labels %v", l)
	}
	if !strings.Contains(l[plugin.LabelPredicates], ctp.PredicateSLSA) {
		t.Errorf("predicates %q", l[plugin.LabelPredicates])
	}
	// The evidence is content, referenced from the image.
	cs := e.c.ContentStore()
	for _, d := range []string{l[plugin.LabelAttestations], l[plugin.LabelManifestTOML]} {
		if _, err := cs.Info(e.ctx, digest.Digest(d)); err != nil {
			t.Errorf("evidence %s: %v", d, err)
		}
	}
	// The snapshot chain is unpacked and labelled.
	info, err := e.c.SnapshotService(plugin.DefaultSnapshotter).Stat(e.ctx, res.ChainID.String())
	if err != nil {
		t.Fatalf("top snapshot %s: %v", res.ChainID, err)
	}
	if info.Labels[plugin.SnapshotLabelVerifiedImage] != img.Target.Digest.String() || info.Labels[plugin.SnapshotLabelPolicy] != res.PolicyDigest.String() {
		t.Errorf("snapshot labels %v", info.Labels)
	}
	// GC keeps the evidence (the import's lease is gone).
	gc(t, e)
	for _, d := range []string{l[plugin.LabelAttestations], l[plugin.LabelManifestTOML]} {
		if _, err := cs.Info(e.ctx, digest.Digest(d)); err != nil {
			t.Errorf("evidence %s after GC: %v", d, err)
		}
	}

	// It runs under vordr with a strict policy.
	e.rt = gateRuntime(t, e.d, "strict")
	code, out := e.runImage(ref, nil, "cat", "/etc/marker")
	if code != 0 || out.stdout.String() != "signed\n" {
		t.Fatalf("exit %d stdout %q stderr %q", code, out.stdout.String(), out.stderr.String())
	}

	// Importing again updates the record in place.
	res2, err := plugin.Import(e.ctx, e.c, path, k.policy(t, policy.Strict), plugin.ImportOptions{})
	if err != nil || !res2.Updated {
		t.Fatalf("re-import: %v %+v", err, res2)
	}
}

// gc runs containerd's garbage collector to completion: deleting a lease
// with SynchronousDelete waits for a collection.
func gc(t *testing.T, e *env) {
	t.Helper()
	l, err := e.c.LeasesService().Create(e.ctx, leases.WithRandomID())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.LeasesService().Delete(e.ctx, l, leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
}

func TestImportRefused(t *testing.T) {
	k := testKeys(t)
	e := newEnv(t, shared, runtimes[0])
	cases := []struct {
		name   string
		mangle func(t *testing.T, path string)
		sign   bool
		opts   plugin.ImportOptions
		code   ctp.Code // "" when the failure is not a verification verdict
	}{
		{name: "tampered-layer", sign: true, mangle: flipLayerByte, code: ctp.CodeMalformedBundle},
		{name: "unsigned", sign: false, code: ctp.CodeThresholdNotMet},
		// Verified, written, then the unpack fails: everything written is
		// taken back.
		{name: "unpack-fails", sign: true, opts: plugin.ImportOptions{Snapshotter: "no-such-snapshotter"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := "docker.io/vordr/import-" + tc.name + ":1"
			path := makeBundle(t, bundleOpts{ref: ref, marker: "refused " + tc.name + time.Now().String(), sign: tc.sign})
			blobs := blobsOf(t, path)
			if tc.mangle != nil {
				tc.mangle(t, path)
			}
			_, err := plugin.Import(e.ctx, e.c, path, k.policy(t, policy.Strict), tc.opts)
			if err == nil {
				removeImage(e, ref)
				t.Fatal("imported")
			}
			t.Logf("refused: %v", err)
			if got := ctp.CodeOf(err); got != tc.code {
				t.Errorf("code %q, want %q", got, tc.code)
			}
			if tc.code == "" && !errdefs.IsNotFound(err) && !strings.Contains(err.Error(), "no-such-snapshotter") {
				t.Errorf("error does not name the snapshotter: %v", err)
			}
			assertNothingOf(t, e, ref, blobs)
		})
	}
}

// flipLayerByte changes one byte in the middle of the bundle's first layer.
func flipLayerByte(t *testing.T, path string) {
	t.Helper()
	b, err := ctp.OpenFile(path, ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := b.ReaderAt(b.Layers()[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	_, off, n := ra.SectionReader.Outer()
	b.Close()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1)
	if _, err := f.ReadAt(buf, off+n/2); err != nil {
		t.Fatal(err)
	}
	buf[0] ^= 0xff
	if _, err := f.WriteAt(buf, off+n/2); err != nil {
		t.Fatal(err)
	}
}

// TestImportCLI drives `vordr import` and `vordr images` as a user does.
func TestImportCLI(t *testing.T) {
	k := testKeys(t)
	e := newEnv(t, shared, runtimes[0])
	bin := vordrBinary(t)
	ref := "docker.io/vordr/import-cli:1"
	path := makeBundle(t, bundleOpts{ref: ref, marker: "cli", sign: true})
	base := []string{"--address", e.d.Address, "--namespace", e.d.Namespace}
	out, errOut, code := runCmd(t, bin, append(append([]string{"import"}, base...), "--policy", k.policies[policy.Strict], path)...)
	if code != 0 {
		t.Fatalf("vordr import: exit %d\n%s%s", code, out, errOut)
	}
	removeImage(e, ref)
	if !strings.Contains(out, "imported "+ref) || !strings.Contains(out, "decision:     accept") {
		t.Errorf("output:\n%s", out)
	}
	// An alias record, as CRI adds for repo@digest: same manifest, no labels.
	img, err := e.c.ImageService().Get(e.ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	alias := "docker.io/vordr/import-cli@" + img.Target.Digest.String()
	if _, err := e.c.ImageService().Create(e.ctx, images.Image{Name: alias, Target: img.Target}); err != nil {
		t.Fatal(err)
	}
	removeImage(e, alias)
	out, errOut, code = runCmd(t, bin, append([]string{"images"}, base...)...)
	if code != 0 {
		t.Fatalf("vordr images: exit %d %s", code, errOut)
	}
	var sawVerified, sawUnverified, sawAlias bool
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		switch {
		case f[0] == ref && f[2] == "verified":
			sawVerified = true
		case f[0] == testImage && f[2] == "unverified":
			sawUnverified = true
		case f[0] == alias && strings.Contains(line, "alias of "+ref):
			sawAlias = true
		}
	}
	if !sawVerified || !sawUnverified || !sawAlias {
		t.Errorf("vordr images (want %s verified, %s an alias of it, %s unverified):\n%s", ref, alias, testImage, out)
	}

	// Exit codes: 1 rejected (unsigned), 2 malformed (tampered), 3 usage.
	unsigned := makeBundle(t, bundleOpts{ref: "docker.io/vordr/import-cli-unsigned:1", marker: "cli-unsigned"})
	if _, errOut, code := runCmd(t, bin, append(append([]string{"import"}, base...), "--policy", k.policies[policy.Strict], unsigned)...); code != 1 || !strings.Contains(errOut, "THRESHOLD_NOT_MET") {
		t.Errorf("unsigned: exit %d, stderr %q", code, errOut)
	}
	tampered := makeBundle(t, bundleOpts{ref: "docker.io/vordr/import-cli-tampered:1", marker: "cli-tampered", sign: true})
	flipLayerByte(t, tampered)
	if _, errOut, code := runCmd(t, bin, append(append([]string{"import"}, base...), "--policy", k.policies[policy.Strict], tampered)...); code != 2 || !strings.Contains(errOut, "MALFORMED_BUNDLE") {
		t.Errorf("tampered: exit %d, stderr %q", code, errOut)
	}
	if _, _, code := runCmd(t, bin, append(append([]string{"import"}, base...), path)...); code != 3 {
		t.Errorf("no policy: exit %d, want 3", code)
	}
}

var (
	vordrOnce sync.Once
	vordrBin  string
	vordrErr  error
)

// vordrBinary builds the vordr CLI of this tree next to the shim.
func vordrBinary(t *testing.T) string {
	t.Helper()
	vordrOnce.Do(func() {
		vordrBin = filepath.Join(shimDir, "vordr")
		out, err := runGo("build", "-o", vordrBin, "../cmd/vordr")
		if err != nil {
			vordrErr = fmt.Errorf("build vordr: %v\n%s", err, out)
		}
	})
	if vordrErr != nil {
		t.Fatal(vordrErr)
	}
	return vordrBin
}

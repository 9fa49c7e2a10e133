//go:build linux

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/vordr-project/vordr/api"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/plugin"
)

// TestServePull: POST /api/v1/images/pull goes through containerd's
// transfer service, so vordr-verifier (containerd's image verifier here)
// judges it: a verified image is pulled and runs through the API, an
// unsigned one is blocked and not recorded, a registry the operator did
// not list is refused before anything is fetched.
func TestServePull(t *testing.T) {
	k := testKeys(t)
	regAddr := startRegistry(t)
	d := startVerifyingDaemon(t, func(ddir string) string {
		return fmt.Sprintf("policy = %q\ncontainerd_address = %q\n", k.policies[policy.Strict], filepath.Join(ddir, "c.sock"))
	})
	e := newEnv(t, d, gateRuntime(t, d, "strict"))

	// A verified image and an unsigned one, pushed to the registry.
	res, err := plugin.Import(e.ctx, e.c, makeBundle(t, bundleOpts{ref: "docker.io/vordr/serve-pull-signed:1", marker: "serve-pull-signed", sign: true}),
		k.policy(t, policy.Strict), plugin.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	removeImage(e, res.Image.Name)
	signedRemote := regAddr + "/vordr/serve-signed:1"
	e.transferPush(res.Image.Name, signedRemote)
	importPlainInto(t, e, "docker.io/vordr/serve-pull-plain:1", "serve-pull-plain", "overlayfs")
	removeImage(e, "docker.io/vordr/serve-pull-plain:1")
	plainRemote := regAddr + "/vordr/serve-plain:1"
	e.transferPush("docker.io/vordr/serve-pull-plain:1", plainRemote)
	removeImage(e, signedRemote)
	removeImage(e, plainRemote)

	srv := startServe(t, d, fmt.Sprintf("[pull]\nregistries = [%q]\nplain_http = [%q]\n", regAddr, regAddr))
	_, runKey := srv.key("run", "")
	pull := func(ref string) apiResponse {
		b, _ := json.Marshal(api.PullRequest{Ref: ref})
		return srv.do("POST", "/api/v1/images/pull", runKey, bytes.NewReader(b))
	}

	r := pull(signedRemote)
	var img api.Image
	if err := json.Unmarshal(r.body, &img); r.status != 200 || err != nil || img.Name != signedRemote || img.Digest != res.Image.Target.Digest.String() {
		t.Fatalf("pull of a verified image: %d %s %v\ncontainerd log:\n%s", r.status, r.body, err, tail(d.Log(), 20))
	}
	if img.State != "verified (alias)" || img.AliasOf != res.Image.Name {
		t.Errorf("pulled image state %q alias of %q, want an alias of %s", img.State, img.AliasOf, res.Image.Name)
	}
	// It runs through the API: the pulled record has no evidence, so the
	// container names the verified record with the same manifest, whose
	// evidence the gate verifies.
	id := uniqueID(t)
	srv.deleteAfter(runKey, id)
	r = srv.run(runKey, api.RunRequest{Image: signedRemote, Name: id, Args: []string{"cat", "/etc/marker"}})
	var c api.Container
	if err := json.Unmarshal(r.body, &c); r.status != http.StatusCreated || err != nil {
		t.Fatalf("run of the pulled image: %d %s", r.status, r.body)
	}
	if c.Image != res.Image.Name {
		t.Errorf("the container names image %q, want the verified record %q", c.Image, res.Image.Name)
	}
	eventually(t, 30*time.Second, func() error {
		r := srv.do("GET", "/api/v1/containers/"+id+"/logs", runKey, nil)
		if string(r.body) != "serve-pull-signed\n" {
			return fmt.Errorf("logs %d %q", r.status, r.body)
		}
		return nil
	})

	r = pull(plainRemote)
	if code, msg := r.errCode(); r.status != http.StatusForbidden || code != api.CodeRefused || !strings.Contains(msg, "blocked pull") || !strings.Contains(msg, "vordr (strict)") {
		t.Errorf("pull of an unsigned image: %d %s %s", r.status, code, r.body)
	}
	if _, err := e.c.ImageService().Get(e.ctx, plainRemote); !errdefs.IsNotFound(err) {
		t.Errorf("a blocked pull was recorded: %v", err)
	}

	if r := pull("registry.example.com/vordr/x:1"); r.status != http.StatusForbidden {
		t.Errorf("pull from a registry not listed: %d %s", r.status, r.body)
	}

	// A name the operator imported with verified evidence is not the API
	// caller's to repoint: the pull is refused before anything is fetched,
	// and the record keeps its target and evidence.
	imported := regAddr + "/vordr/serve-imported:1"
	ir, err := plugin.Import(e.ctx, e.c, makeBundle(t, bundleOpts{ref: "docker.io/vordr/serve-imported:1", marker: "serve-imported", sign: true}),
		k.policy(t, policy.Strict), plugin.ImportOptions{Name: imported})
	if err != nil {
		t.Fatal(err)
	}
	removeImage(e, imported)
	if r := pull(imported); r.status != http.StatusConflict {
		t.Errorf("pull over an operator-imported record: %d %s", r.status, r.body)
	}
	after, err := e.c.ImageService().Get(e.ctx, imported)
	if err != nil || after.Target.Digest != ir.Image.Target.Digest || after.Labels[plugin.LabelAttestations] == "" {
		t.Errorf("the imported record changed: %+v %v", after, err)
	}
}

package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
)

// POST /api/v1/verify/bundle verifies an uploaded .ctp under a named
// operator policy and says why not; oversize and garbage uploads are
// refused with 413 and 400. No containerd is needed: nothing is imported.
func TestVerifyBundleRoute(t *testing.T) {
	dir := t.TempDir()
	priv, pub, err := keys.Generate(keys.Ed25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := keys.ParsePrivateKey(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "release.pub"), pub, 0o600)
	pol := filepath.Join(dir, "release.toml")
	os.WriteFile(pol, []byte("version = 1\n[[signers]]\nkey = \"release.pub\"\n"), 0o600)
	rc := filepath.Join(dir, "runtime.toml")
	os.WriteFile(rc, []byte("default_policy = \"release\"\n[policies]\nrelease = \""+pol+"\"\n"), 0o600)
	cfg, err := ParseConfig([]byte("state_dir = \""+filepath.Join(dir, "state")+"\"\nruntime_config = \""+rc+"\"\nkeys = \""+filepath.Join(dir, "keys.json")+"\"\n[limits]\nmax_bundle_bytes = 4194304\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, read, _ := s.Keys().Create(CreateOptions{Scopes: []string{ScopeRead}})
	h := s.Handler()

	rootfs := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "bin", "app"), []byte("#!/bin/sh\n"), 0o755)
	pack := func(name string, sign bool) []byte {
		out := filepath.Join(dir, name)
		o := ctp.PackOptions{Name: "app", ImageRef: "example.com/app:1", Created: time.Unix(1700000000, 0)}
		if sign {
			o.Signers = []*keys.Signer{signer}
		}
		if _, err := ctp.Pack(context.Background(), rootfs, out, o); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out)
		return b
	}
	post := func(body []byte, query, secret string) (*httptest.ResponseRecorder, BundleVerifyResult) {
		req := httptest.NewRequest("POST", "/api/v1/verify/bundle"+query, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/octet-stream")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var res BundleVerifyResult
		_ = json.Unmarshal(rec.Body.Bytes(), &res)
		return rec, res
	}

	rec, res := post(pack("signed.ctp", true), "", read)
	if rec.Code != http.StatusOK || !res.Verified || res.Decision != "accept" || res.Policy != "release" || len(res.Signers) != 1 {
		t.Fatalf("signed bundle: %d %s", rec.Code, rec.Body)
	}
	rec, res = post(pack("unsigned.ctp", false), "?policy=release", read)
	if rec.Code != http.StatusOK || res.Verified || res.ErrorCode == "" {
		t.Errorf("unsigned bundle: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := post(pack("signed.ctp", true), "?policy=nope", read); rec.Code != http.StatusBadRequest {
		t.Errorf("unknown policy: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := post([]byte("not a bundle"), "", read); rec.Code != http.StatusBadRequest {
		t.Errorf("garbage: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := post(make([]byte, 5<<20), "", read); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := post(pack("signed.ctp", true), "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("no key: %d", rec.Code)
	}
	// Uploads beyond the node-wide bound wait their turn (429), and none
	// leaves a file behind.
	for i := 0; i < cap(s.uploads); i++ {
		s.uploads <- struct{}{}
	}
	if rec, _ := post(pack("signed.ctp", true), "", read); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("uploads beyond the bound: %d %s", rec.Code, rec.Body)
	}
	for i := 0; i < cap(s.uploads); i++ {
		<-s.uploads
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "state", uploadPattern)); len(left) > 0 {
		t.Errorf("uploads left behind: %v", left)
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vordr-project/vordr/ctp"
)

// TestCLIHybridSigner: keygen ed25519 and ml-dsa-87 (encrypted), pack, sign
// with both keys in one `ctp sign`, verify under a hybrid policy; a bundle
// signed by the Ed25519 half alone is refused with THRESHOLD_NOT_MET.
func TestCLIHybridSigner(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	os.MkdirAll(p("rootfs/bin"), 0o755)
	os.WriteFile(p("rootfs/bin/hello"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	t.Setenv("COSIGN_PASSWORD", "s3cret")

	if out, code := run(t, "ctp", "keygen", p("ed")); code != 0 {
		t.Fatalf("keygen ed25519: %d %s", code, out)
	}
	out, code := run(t, "ctp", "keygen", "--type", "ml-dsa-87", p("pq"))
	if code != 0 || !strings.Contains(out, "key id:      sha256:") {
		t.Fatalf("keygen ml-dsa-87: %d %s", code, out)
	}
	if b, _ := os.ReadFile(p("pq.key")); !strings.Contains(string(b), "ENCRYPTED SIGSTORE PRIVATE KEY") {
		t.Errorf("ml-dsa-87 private key is not encrypted:\n%s", b)
	}
	if _, code := run(t, "ctp", "keygen", "--type", "ml-dsa-44", p("nope")); code == 0 {
		t.Error("keygen accepted ml-dsa-44")
	}
	pack := func(name string) {
		if out, code := run(t, "ctp", "pack", "-o", p(name), "--name", "app", "--ref", "example.com/app:1", "--created", "2025-01-01T00:00:00Z", "--progress", "never", p("rootfs")); code != 0 {
			t.Fatalf("pack: %d %s", code, out)
		}
	}
	pack("app.ctp")
	pack("half.ctp")
	if out, code := run(t, "ctp", "sign", "--key", p("ed.key"), "--key", p("pq.key"), p("app.ctp")); code != 0 {
		t.Fatalf("sign: %d %s", code, out)
	}
	if out, code := run(t, "ctp", "sign", "--key", p("ed.key"), p("half.ctp")); code != 0 {
		t.Fatalf("sign: %d %s", code, out)
	}
	os.WriteFile(p("hybrid.toml"), []byte("version = 1\n[[signers]]\nname = \"release\"\nkey = \"ed.pub\"\npq_key = \"pq.pub\"\n"), 0o644)
	if out, code := run(t, "ctp", "policy", "check", p("hybrid.toml")); code != 0 {
		t.Fatalf("policy check: %d %s", code, out)
	}
	out, code = run(t, "ctp", "verify", "--json", "--policy", p("hybrid.toml"), p("app.ctp"))
	var res ctp.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || res.Decision != ctp.Accept {
		t.Fatalf("verify hybrid: %d %v %s", code, err, out)
	}
	if n := len(res.Signers); n != 2 {
		t.Errorf("want two valid keys reported, got %+v", res.Signers)
	}
	out, code = run(t, "ctp", "verify", "--json", "--policy", p("hybrid.toml"), p("half.ctp"))
	json.Unmarshal([]byte(out), &res)
	if code != exitRejected || res.ErrorCode != ctp.CodeThresholdNotMet || !strings.Contains(res.Message, "no valid ML-DSA signature") {
		t.Errorf("Ed25519 half only: %d %s", code, out)
	}
	// The ML-DSA key alone, as a plain signer (--key without a policy).
	if out, code := run(t, "ctp", "verify", "--key", p("pq.pub"), p("app.ctp")); code != 0 {
		t.Errorf("verify --key pq.pub: %d %s", code, out)
	}
}

package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	"golang.org/x/mod/sumdb/note"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/tlog"
)

// run executes `vordr ARGS…` in process and returns stdout and the exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := 0
	app := &cli.App{
		Name:     "vordr",
		Commands: []*cli.Command{ctpCommand},
		Writer:   &out,
		ExitErrHandler: func(_ *cli.Context, err error) {
			if err == nil {
				return
			}
			if ec, ok := err.(cli.ExitCoder); ok {
				code = ec.ExitCode()
				return
			}
			code = exitUsage
		},
	}
	if err := app.Run(interspersed(app, append([]string{"vordr"}, args...))); err != nil && code == 0 {
		code = exitUsage
	}
	return out.String(), code
}

func TestCLIRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	os.MkdirAll(p("rootfs/bin"), 0o755)
	os.WriteFile(p("rootfs/bin/hello"), []byte("#!/bin/sh\necho hi\n"), 0o755)

	// Keys are encrypted by default: without a passphrase (no terminal
	// here) keygen says what to set.
	t.Setenv("VORDR_PASSPHRASE", "")
	os.Unsetenv("VORDR_PASSPHRASE")
	t.Setenv("COSIGN_PASSWORD", "")
	os.Unsetenv("COSIGN_PASSWORD")
	if _, code := run(t, "ctp", "keygen", p("nopass")); code != exitUsage {
		t.Errorf("keygen without a passphrase: exit %d, want %d", code, exitUsage)
	}
	t.Setenv("COSIGN_PASSWORD", "s3cret") // as a cosign user's scripts do
	out, code := run(t, "ctp", "keygen", p("release"))
	if code != 0 || !strings.Contains(out, "key id:      sha256:") {
		t.Fatalf("keygen: %d %s", code, out)
	}
	if b, _ := os.ReadFile(p("release.key")); !strings.Contains(string(b), "ENCRYPTED SIGSTORE PRIVATE KEY") {
		t.Errorf("keygen wrote a plaintext key by default:\n%s", b)
	}
	if _, code := run(t, "ctp", "keygen", "--type", "ecdsa-p256", p("other")); code != 0 {
		t.Fatal("keygen ecdsa")
	}
	if _, code := run(t, "ctp", "keygen", p("release")); code != exitUsage {
		t.Errorf("keygen over existing files: exit %d, want %d", code, exitUsage)
	}
	if out, code := run(t, "ctp", "pack", "-o", p("app.ctp"), "--name", "app", "--ref", "example.com/app:1", "--created", "2025-01-01T00:00:00Z", "--progress", "never", p("rootfs")); code != 0 {
		t.Fatalf("pack: %d %s", code, out)
	}
	// Unsigned: rejected.
	if _, code := run(t, "ctp", "verify", "--key", p("release.pub"), p("app.ctp")); code != exitRejected {
		t.Errorf("unsigned verify: exit %d", code)
	}
	// Signing with the encrypted key and no passphrase: a clear error,
	// not an ASN.1 one.
	os.Unsetenv("COSIGN_PASSWORD")
	if out, code := run(t, "ctp", "sign", "--key", p("release.key"), p("app.ctp")); code == 0 {
		t.Errorf("sign without the passphrase succeeded: %s", out)
	}
	os.Setenv("COSIGN_PASSWORD", "s3cret")
	if out, code := run(t, "ctp", "sign", "--key", p("release.key"), p("app.ctp")); code != 0 {
		t.Fatalf("sign: %d %s", code, out)
	}
	out, code = run(t, "ctp", "verify", "--json", "--key", p("release.pub"), p("app.ctp"))
	var res ctp.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || res.Decision != ctp.Accept || len(res.Predicates) != 2 {
		t.Fatalf("verify: %d %v %s", code, err, out)
	}
	// Flags after the bundle, as cosign users type them.
	if out, code := run(t, "ctp", "verify", p("app.ctp"), "--key", p("release.pub"), "--json"); code != 0 || !strings.Contains(out, `"decision": "accept"`) {
		t.Errorf("verify with flags after the bundle: %d %s", code, out)
	}
	// Wrong key: exit 1 with the error code in JSON.
	out, code = run(t, "ctp", "verify", "--json", "--key", p("other.pub"), p("app.ctp"))
	json.Unmarshal([]byte(out), &res)
	if code != exitRejected || res.ErrorCode != ctp.CodeUnknownKey {
		t.Errorf("wrong key: exit %d %s", code, out)
	}
	// Malformed: exit 2.
	data, _ := os.ReadFile(p("app.ctp"))
	os.WriteFile(p("trunc.ctp"), data[:len(data)/2], 0o644)
	out, code = run(t, "ctp", "verify", "--json", "--key", p("release.pub"), p("trunc.ctp"))
	json.Unmarshal([]byte(out), &res)
	if code != exitMalformed || res.ErrorCode != ctp.CodeMalformedBundle {
		t.Errorf("truncated: exit %d %s", code, out)
	}
	// I/O and usage: exit 3.
	if _, code := run(t, "ctp", "verify", "--key", p("release.pub"), p("missing.ctp")); code != exitUsage {
		t.Errorf("missing file: exit %d", code)
	}
	if _, code := run(t, "ctp", "verify", p("app.ctp")); code != exitUsage {
		t.Errorf("no policy: exit %d", code)
	}
	// Policy file with an error: line number, exit 2.
	os.WriteFile(p("bad.toml"), []byte("version = 1\nmode = \"lenient\"\n[[signers]]\nkey = \"release.pub\"\n"), 0o644)
	if _, code := run(t, "ctp", "policy", "check", p("bad.toml")); code != exitMalformed {
		t.Errorf("policy check: exit %d", code)
	}
	os.WriteFile(p("policy.toml"), []byte("version = 1\nrequired_predicates = [\"https://spdx.dev/Document\"]\n[[signers]]\nkey = \"release.pub\"\n"), 0o644)
	if out, code := run(t, "ctp", "policy", "check", p("policy.toml")); code != 0 {
		t.Errorf("policy check good: %d %s", code, out)
	}
	if out, code := run(t, "ctp", "verify", "--policy", p("policy.toml"), p("app.ctp")); code != 0 || !strings.Contains(out, "decision: accept") {
		t.Errorf("verify with policy: %d %s", code, out)
	}
	out, code = run(t, "ctp", "inspect", "--json", p("app.ctp"))
	var in inspection
	if err := json.Unmarshal([]byte(out), &in); err != nil || code != 0 || in.Manifest.Name != "app" || len(in.Attestations) != 2 || len(in.Layers) != 1 {
		t.Errorf("inspect: %d %v %s", code, err, out)
	}
	if out, code := run(t, "ctp", "inspect", p("app.ctp")); code != 0 || !strings.Contains(out, "image ref:    example.com/app:1") {
		t.Errorf("inspect: %d %s", code, out)
	}

	// A one-leaf-per-signature log built by hand: each leaf is its own tree of
	// size 1 (root = leaf hash, empty proof).
	out, code = run(t, "ctp", "log-leaves", "--time", "1735689600", p("app.ctp"))
	if code != 0 {
		t.Fatalf("log-leaves: %d", code)
	}
	// --raw prints the leaves themselves, as ctp-format §4 describes them:
	// the canonical JSON a log hashes, equal to the wrappers' "leaf".
	rawOut, code := run(t, "ctp", "log-leaves", "--raw", "--time", "1735689600", p("app.ctp"))
	if code != 0 {
		t.Fatalf("log-leaves --raw: %d", code)
	}
	rawLines := strings.Split(strings.TrimSpace(rawOut), "\n")
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var pl ctp.PendingLeaf
		json.Unmarshal([]byte(line), &pl)
		if i >= len(rawLines) || rawLines[i] != string(pl.Leaf) || !strings.Contains(rawLines[i], `"kind":"vordr.ctp/dsse-signature/v1"`) || !strings.Contains(rawLines[i], `"integratedTime":1735689600`) {
			t.Errorf("log-leaves --raw line %d is not the leaf:\n%s\nwant\n%s", i, rawLines, pl.Leaf)
		}
	}
	skey, vkey, _ := note.GenerateKey(rand.Reader, "log.test")
	lk, _ := tlog.ParseLogKey(vkey)
	var entries []ctp.LogEntry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var pl ctp.PendingLeaf
		if err := json.Unmarshal([]byte(line), &pl); err != nil {
			t.Fatal(err)
		}
		root := tlog.LeafHash(pl.Leaf)
		cp, _ := tlog.SignCheckpoint(tlog.Checkpoint{Origin: "log.test", Size: 1, Hash: root}, skey)
		entries = append(entries, ctp.LogEntry{LogID: lk.ID, LogIndex: 0, IntegratedTime: pl.IntegratedTime, Signature: pl.Signature,
			InclusionProof: ctp.InclusionProof{TreeSize: 1, RootHash: hex.EncodeToString(root), Hashes: []string{}}, Checkpoint: string(cp)})
	}
	ej, _ := json.Marshal(entries)
	os.WriteFile(p("entries.json"), ej, 0o644)
	if out, code := run(t, "ctp", "attach-log", "--entries", p("entries.json"), p("app.ctp")); code != 0 {
		t.Fatalf("attach-log: %d %s", code, out)
	}
	os.WriteFile(p("logged.toml"), []byte("version = 1\nlog_quorum = 1\n[[signers]]\nkey = \"release.pub\"\n[[logs]]\npublic_key = \""+vkey+"\"\n"), 0o644)
	if out, code := run(t, "ctp", "verify", "--policy", p("logged.toml"), p("app.ctp")); code != 0 || !strings.Contains(out, "log:      verified") {
		t.Errorf("verify with log quorum: %d %s", code, out)
	}
}

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/sigstore"
	"github.com/vordr-project/vordr/ctp/sigstore/sigstoretest"
)

// A cosign user's verify-blob-attestation command lines work unchanged,
// offline, with exit 0 for accepted and 1 for refused.
func TestVerifyAttestationCLI(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	write := func(n string, data []byte) {
		if err := os.WriteFile(p(n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	img := sigstoretest.DigestOf("manifest")
	stmt := sigstoretest.Statement(t, "https://in-toto.io/Statement/v0.1", img, "https://slsa.dev/provenance/v0.2", map[string]any{"buildType": "x"})
	bj, trj := sigstoretest.Keyless(t, stmt, sigstoretest.Identity, sigstoretest.Issuer, true)
	write("keyless.sigstore.json", bj)
	write("trusted_root.json", trj)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := cryptoutils.MarshalPublicKeyToPEM(k.Public())
	write("cosign.pub", pub)
	write("keyed.sigstore.json", sigstoretest.Keyed(t, stmt, k))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	opub, _ := cryptoutils.MarshalPublicKeyToPEM(other.Public())
	write("other.pub", opub)

	keyless := []string{"ctp", "verify-attestation", "--bundle", p("keyless.sigstore.json"), "--digest", img, "--trusted-root", p("trusted_root.json")}
	id := []string{"--certificate-identity", sigstoretest.Identity, "--certificate-oidc-issuer", sigstoretest.Issuer}
	keyed := []string{"ctp", "verify-attestation", "--bundle", p("keyed.sigstore.json"), "--digest", img}
	cat := func(a ...[]string) []string {
		var out []string
		for _, x := range a {
			out = append(out, x...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"keyless", cat(keyless, id), exitAccepted, "Verified OK"},
		{"keyless regexp", cat(keyless, []string{"--certificate-identity-regexp", `@example\.com$`, "--certificate-oidc-issuer-regexp", `^https://token\.`}), exitAccepted, sigstoretest.Identity},
		{"keyless predicate type", cat(keyless, id, []string{"--type", "slsaprovenance"}), exitAccepted, "provenance/v0.2"},
		{"keyless wrong predicate type", cat(keyless, id, []string{"--type", "spdxjson"}), exitRejected, ""},
		{"keyless wrong identity", cat(keyless, []string{"--certificate-identity", "mallory@example.com", "--certificate-oidc-issuer", sigstoretest.Issuer}), exitRejected, ""},
		{"keyless wrong digest", cat([]string{"ctp", "verify-attestation", "--bundle", p("keyless.sigstore.json"), "--digest", sigstoretest.DigestOf("x"), "--trusted-root", p("trusted_root.json")}, id), exitRejected, ""},
		{"keyless without identity", keyless, exitUsage, ""},
		{"keyless issuer only", cat(keyless, []string{"--certificate-oidc-issuer", sigstoretest.Issuer}), exitUsage, ""},
		{"keyed", cat(keyed, []string{"--key", p("cosign.pub"), "--insecure-ignore-tlog"}), exitAccepted, "signed by key sha256:"},
		{"keyed bare hex digest", []string{"ctp", "verify-attestation", "--bundle", p("keyed.sigstore.json"), "--digest", strings.TrimPrefix(img, "sha256:"), "--digestAlg", "sha256", "--key", p("cosign.pub"), "--insecure-ignore-tlog"}, exitAccepted, ""},
		{"keyed flags after", cat([]string{"ctp", "verify-attestation", "--key", p("cosign.pub")}, keyed[2:], []string{"--insecure-ignore-tlog"}), exitAccepted, ""},
		{"keyed without tlog flag", cat(keyed, []string{"--key", p("cosign.pub")}), exitRejected, ""},
		{"keyed other key", cat(keyed, []string{"--key", p("other.pub"), "--insecure-ignore-tlog"}), exitRejected, ""},
		{"keyed bundle, keyless flags", cat(keyed, []string{"--trusted-root", p("trusted_root.json"), "--insecure-ignore-tlog"}, id), exitRejected, ""},
		{"no bundle file", cat([]string{"ctp", "verify-attestation", "--bundle", p("missing.json"), "--digest", img, "--key", p("cosign.pub")}), exitUsage, ""},
	} {
		out, code := run(t, tc.args...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d; output:\n%s", tc.name, code, tc.code, out)
		}
		if !strings.Contains(out, tc.out) {
			t.Errorf("%s: output lacks %q:\n%s", tc.name, tc.out, out)
		}
	}

	out, code := run(t, cat(keyless, id, []string{"--json"})...)
	var res struct {
		Verified bool `json:"verified"`
		Result   struct {
			Signer        string `json:"signer"`
			Issuer        string `json:"issuer"`
			StatementType string `json:"statement_type"`
			TlogEntries   int    `json:"tlog_entries"`
		} `json:"result"`
	}
	if code != exitAccepted || json.Unmarshal([]byte(out), &res) != nil || !res.Verified || res.Result.Signer != sigstoretest.Identity ||
		res.Result.Issuer != sigstoretest.Issuer || res.Result.TlogEntries != 1 || res.Result.StatementType != "https://in-toto.io/Statement/v0.1" {
		t.Errorf("--json: exit %d, %+v:\n%s", code, res, out)
	}
	out, code = run(t, cat(keyed, []string{"--key", p("other.pub"), "--insecure-ignore-tlog", "--json"})...)
	if code != exitRejected || !strings.Contains(out, `"verified": false`) || !strings.Contains(out, `"error"`) {
		t.Errorf("--json refused: exit %d:\n%s", code, out)
	}
}

// vordr ctp export --sigstore writes bundles that sigstore-go's verifier
// accepts with the signer's public key, and that name the image.
func TestExportSigstore(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	os.MkdirAll(p("rootfs/bin"), 0o755)
	os.WriteFile(p("rootfs/bin/hello"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	for _, args := range [][]string{
		{"ctp", "keygen", "--no-encrypt", p("release")},
		{"ctp", "keygen", "--no-encrypt", "--type", "ecdsa-p256", p("second")},
		{"ctp", "pack", "-o", p("app.ctp"), "--name", "app", "--ref", "example.com/app:1", "--created", "2025-01-01T00:00:00Z", "--progress", "never", p("rootfs")},
	} {
		if out, code := run(t, args...); code != 0 {
			t.Fatalf("%v: %d %s", args, code, out)
		}
	}
	if out, code := run(t, "ctp", "export", "--sigstore", "-o", p("out"), p("app.ctp")); code != exitRejected {
		t.Errorf("export of an unsigned bundle: exit %d, want %d: %s", code, exitRejected, out)
	}
	for _, k := range []string{"release", "second"} {
		if out, code := run(t, "ctp", "sign", "--key", p(k+".key"), p("app.ctp")); code != 0 {
			t.Fatalf("sign: %d %s", code, out)
		}
	}
	out, code := run(t, "ctp", "export", "--sigstore", "-o", p("out"), p("app.ctp"))
	if code != 0 {
		t.Fatalf("export: %d %s", code, out)
	}
	files, _ := filepath.Glob(p("out/*.sigstore.json"))
	// Two attestations (provenance, SBOM), each signed by two keys.
	if len(files) != 4 {
		t.Fatalf("export wrote %d bundles, want 4:\n%s", len(files), out)
	}
	b, err := ctp.OpenFile(p("app.ctp"), ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := b.ManifestDescriptor().Digest.String()
	b.Close()
	pubs := map[string]string{}
	for _, k := range []string{"release", "second"} {
		pk, err := keys.LoadPublicKey(p(k + ".pub"))
		if err != nil {
			t.Fatal(err)
		}
		pubs[strings.TrimPrefix(pk.ID, "sha256:")[:12]] = p(k + ".pub")
	}
	for _, f := range files {
		var key string
		for short, path := range pubs {
			if strings.Contains(f, short) {
				key = path
			}
		}
		if key == "" {
			t.Fatalf("%s: names no signer key", f)
		}
		other := pubs[func() string {
			for s, path := range pubs {
				if path != key {
					return s
				}
			}
			return ""
		}()]
		data, _ := os.ReadFile(f)
		pk, _ := keys.LoadPublicKey(key)
		if _, err := sigstore.Verify(data, sigstore.Options{Digest: img, PublicKey: pk.Key, IgnoreTlog: true}); err != nil {
			t.Errorf("%s: sigstore-go refused the exported bundle: %v", f, err)
		}
		if out, code := run(t, "ctp", "verify-attestation", "--bundle", f, "--key", key, "--insecure-ignore-tlog", "--digest", img); code != exitAccepted {
			t.Errorf("%s: verify-attestation: exit %d %s", f, code, out)
		}
		if _, code := run(t, "ctp", "verify-attestation", "--bundle", f, "--key", other, "--insecure-ignore-tlog", "--digest", img); code != exitRejected {
			t.Errorf("%s: verified with the other signer's key: exit %d", f, code)
		}
	}
}

// A cosign user's migration: pack the image, attach the bundle cosign
// wrote, verify under a policy naming the signer's identity.
func TestAttachSigstoreCLI(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	os.MkdirAll(p("rootfs/bin"), 0o755)
	os.WriteFile(p("rootfs/bin/hello"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	if out, code := run(t, "ctp", "pack", "-o", p("app.ctp"), "--name", "app", "--created", "2025-01-01T00:00:00Z", "--progress", "never", p("rootfs")); code != 0 {
		t.Fatalf("pack: %d %s", code, out)
	}
	b, err := ctp.OpenFile(p("app.ctp"), ctp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	img := b.ManifestDescriptor().Digest.String()
	b.Close()
	stmt := sigstoretest.Statement(t, "https://in-toto.io/Statement/v0.1", img, "https://slsa.dev/provenance/v0.2", map[string]any{"builder": map[string]any{"id": "https://ci.example/b"}})
	bj, trj := sigstoretest.Keyless(t, stmt, sigstoretest.Identity, sigstoretest.Issuer, true)
	os.WriteFile(p("att.sigstore.json"), bj, 0o644)
	os.WriteFile(p("trusted_root.json"), trj, 0o644)
	os.WriteFile(p("not-a-bundle.json"), []byte(`{"payloadType":"x"}`), 0o644)
	pol := func(name, subject string) string {
		os.WriteFile(p(name), []byte(fmt.Sprintf("version = 1\nrequired_predicates = [\"https://slsa.dev/provenance/v0.2\"]\ntrusted_root = \"trusted_root.json\"\n[[identities]]\nissuer = %q\nsubject = %q\n", sigstoretest.Issuer, subject)), 0o644)
		return p(name)
	}
	good, bad := pol("release.toml", sigstoretest.Identity), pol("other.toml", "mallory@example.com")

	if _, code := run(t, "ctp", "attach-sigstore", p("app.ctp"), p("not-a-bundle.json")); code != exitUsage {
		t.Errorf("attaching a non-bundle: exit %d, want %d", code, exitUsage)
	}
	if out, code := run(t, "ctp", "verify", p("app.ctp"), "--policy", good); code != exitRejected {
		t.Errorf("before attaching: exit %d: %s", code, out)
	}
	if out, code := run(t, "ctp", "attach-sigstore", p("app.ctp"), p("att.sigstore.json")); code != 0 {
		t.Fatalf("attach-sigstore: %d %s", code, out)
	}
	out, code := run(t, "ctp", "verify", "--json", p("app.ctp"), "--policy", good)
	if code != exitAccepted || !strings.Contains(out, `"identity:`+sigstoretest.Identity+`"`) {
		t.Errorf("verify after attaching: exit %d: %s", code, out)
	}
	if out, code := run(t, "ctp", "verify", p("app.ctp"), "--policy", bad); code != exitRejected {
		t.Errorf("another identity: exit %d: %s", code, out)
	}
	// inspect shows it.
	if out, code := run(t, "ctp", "inspect", "--json", p("app.ctp")); code != 0 || !strings.Contains(out, "sigstore") {
		t.Errorf("inspect: exit %d: %s", code, out)
	}
}

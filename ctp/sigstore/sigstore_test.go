package sigstore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"github.com/vordr-project/vordr/ctp/sigstore/sigstoretest"
)

func mustRoot(t testing.TB, data []byte) *root.TrustedRoot {
	t.Helper()
	tr, err := LoadTrustedRoot(data)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestKeylessBundle(t *testing.T) {
	img := sigstoretest.DigestOf("manifest")
	slsa := map[string]any{"builder": map[string]any{"id": "https://ci.example/builder"}, "buildType": "https://example/build"}
	stmt := sigstoretest.Statement(t, StatementV01, img, "https://slsa.dev/provenance/v0.2", slsa)
	bj, trj := sigstoretest.Keyless(t, stmt, sigstoretest.Identity, sigstoretest.Issuer, true)
	tr := mustRoot(t, trj)
	exact := Identity{Issuer: sigstoretest.Issuer, Subject: sigstoretest.Identity}

	res, err := Verify(bj, Options{Digest: img, TrustedRoot: tr, Identities: []Identity{exact}})
	if err != nil {
		t.Fatalf("a bundle from the trusted CA and log, by the expected identity, was refused: %v", err)
	}
	if res.Signer != sigstoretest.Identity || res.Issuer != sigstoretest.Issuer || !res.CertificateMode || res.TlogEntries != 1 || len(res.SignedAt) == 0 {
		t.Errorf("result: %+v", res)
	}
	if res.StatementType != StatementV01 || res.PredicateType != "https://slsa.dev/provenance/v0.2" || !strings.Contains(string(res.Predicate), "ci.example/builder") {
		t.Errorf("statement: %+v", res)
	}
	// Regular expressions, as cosign's -regexp flags.
	re := Identity{IssuerRegexp: `^https://token\.actions\.example\.com$`, SubjectRegexp: `@example\.com$`}
	if _, err := Verify(bj, Options{Digest: img, TrustedRoot: tr, Identities: []Identity{re}}); err != nil {
		t.Errorf("regexp identity refused: %v", err)
	}

	refused := map[string]Options{
		"another subject":                      {Digest: img, TrustedRoot: tr, Identities: []Identity{{Issuer: sigstoretest.Issuer, Subject: "mallory@example.com"}}},
		"another issuer":                       {Digest: img, TrustedRoot: tr, Identities: []Identity{{Issuer: "https://accounts.example.org", Subject: sigstoretest.Identity}}},
		"regexp not anchored where it matters": {Digest: img, TrustedRoot: tr, Identities: []Identity{{Issuer: sigstoretest.Issuer, SubjectRegexp: `^release@example\.org$`}}},
		"another artifact":                     {Digest: sigstoretest.DigestOf("other manifest"), TrustedRoot: tr, Identities: []Identity{exact}},
		"another predicate":                    {Digest: img, TrustedRoot: tr, Identities: []Identity{exact}, PredicateType: "https://spdx.dev/Document"},
		"a public key":                         {Digest: img, PublicKey: mustKey(t).Public()},
	}
	for name, o := range refused {
		if _, err := Verify(bj, o); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: want refused, got %v", name, err)
		}
	}

	// A trusted root from another CA and log: nothing vouches for the
	// certificate or the entry.
	_, otherRoot := sigstoretest.Keyless(t, stmt, sigstoretest.Identity, sigstoretest.Issuer, true)
	if _, err := Verify(bj, Options{Digest: img, TrustedRoot: mustRoot(t, otherRoot), Identities: []Identity{exact}}); !errors.Is(err, ErrRefused) {
		t.Errorf("a foreign trusted root: want refused, got %v", err)
	}
}

func TestKeylessTamperedBundle(t *testing.T) {
	img := sigstoretest.DigestOf("manifest")
	stmt := sigstoretest.Statement(t, StatementV1, img, "https://spdx.dev/Document", map[string]any{"spdxVersion": "SPDX-2.3"})
	bj, trj := sigstoretest.Keyless(t, stmt, sigstoretest.Identity, sigstoretest.Issuer, true)
	tr := mustRoot(t, trj)
	o := Options{Digest: img, TrustedRoot: tr, Identities: []Identity{{Issuer: sigstoretest.Issuer, Subject: sigstoretest.Identity}}}
	if _, err := Verify(bj, o); err != nil {
		t.Fatalf("untampered bundle refused: %v", err)
	}
	var b map[string]any
	mutate := map[string]func(){
		"payload": func() {
			env := b["dsseEnvelope"].(map[string]any)
			p, _ := base64.StdEncoding.DecodeString(env["payload"].(string))
			p = []byte(strings.Replace(string(p), "SPDX-2.3", "SPDX-2.2", 1))
			env["payload"] = base64.StdEncoding.EncodeToString(p)
		},
		"inclusion proof root": func() {
			e := b["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)
			ip := e["inclusionProof"].(map[string]any)
			r, _ := base64.StdEncoding.DecodeString(ip["rootHash"].(string))
			r[0] ^= 1
			ip["rootHash"] = base64.StdEncoding.EncodeToString(r)
		},
		"log entry body": func() {
			e := b["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)
			body, _ := base64.StdEncoding.DecodeString(e["canonicalizedBody"].(string))
			body[len(body)/2] ^= 1
			e["canonicalizedBody"] = base64.StdEncoding.EncodeToString(body)
		},
		"integrated time outside the certificate's validity": func() {
			e := b["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)
			e["integratedTime"] = fmt.Sprint(time.Now().Add(-24 * time.Hour).Unix())
		},
	}
	for name, f := range mutate {
		if err := json.Unmarshal(bj, &b); err != nil {
			t.Fatal(err)
		}
		f()
		data, _ := json.Marshal(b)
		if _, err := Verify(data, o); err == nil {
			t.Errorf("tampered %s: accepted", name)
		}
	}
}

func TestKeylessWithoutTlog(t *testing.T) {
	img := sigstoretest.DigestOf("manifest")
	stmt := sigstoretest.Statement(t, StatementV1, img, "https://slsa.dev/provenance/v1", map[string]any{})
	bj, trj := sigstoretest.Keyless(t, stmt, sigstoretest.Identity, sigstoretest.Issuer, false)
	o := Options{Digest: img, TrustedRoot: mustRoot(t, trj), Identities: []Identity{{Issuer: sigstoretest.Issuer, Subject: sigstoretest.Identity}}}
	_, err := Verify(bj, o)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "--insecure-ignore-tlog") {
		t.Fatalf("a bundle without a log entry: want refused naming --insecure-ignore-tlog, got %v", err)
	}
	// With the flag and no signed timestamp the certificate must be valid
	// now, as cosign does: this one is (the test CA issues it for ten
	// minutes); a real Fulcio certificate expires ten minutes after signing.
	o.IgnoreTlog = true
	res, err := Verify(bj, o)
	if err != nil {
		t.Fatalf("--insecure-ignore-tlog with a valid certificate: %v", err)
	}
	if res.TlogEntries != 0 {
		t.Errorf("result: %+v", res)
	}
	// The sigstoretest.Identity is still checked.
	o.Identities = []Identity{{Issuer: sigstoretest.Issuer, Subject: "mallory@example.com"}}
	if _, err := Verify(bj, o); !errors.Is(err, ErrRefused) {
		t.Errorf("another identity without a log: want refused, got %v", err)
	}
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyedBundle(t *testing.T) {
	img := sigstoretest.DigestOf("manifest")
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	for name, priv := range map[string]crypto.Signer{"ecdsa-p256": mustKey(t), "ed25519": edPriv} {
		t.Run(name, func(t *testing.T) {
			for _, typ := range []string{StatementV01, StatementV1} {
				stmt := sigstoretest.Statement(t, typ, img, "https://cyclonedx.org/bom", map[string]any{"bomFormat": "CycloneDX"})
				bj := sigstoretest.Keyed(t, stmt, priv)
				res, err := Verify(bj, Options{Digest: img, PublicKey: priv.Public(), IgnoreTlog: true})
				if err != nil {
					t.Fatalf("%s: keyed bundle refused: %v", typ, err)
				}
				if !strings.HasPrefix(res.Signer, "key sha256:") || res.CertificateMode || res.StatementType != typ {
					t.Errorf("result: %+v", res)
				}
				// Without --insecure-ignore-tlog a bundle nobody logged is refused.
				if _, err := Verify(bj, Options{Digest: img, PublicKey: priv.Public()}); !errors.Is(err, ErrRefused) {
					t.Errorf("no log entry, no --insecure-ignore-tlog: want refused, got %v", err)
				}
				if _, err := Verify(bj, Options{Digest: img, PublicKey: mustKey(t).Public(), IgnoreTlog: true}); !errors.Is(err, ErrRefused) {
					t.Errorf("another key: want refused, got %v", err)
				}
				if _, err := Verify(bj, Options{Digest: sigstoretest.DigestOf("x"), PublicKey: priv.Public(), IgnoreTlog: true}); !errors.Is(err, ErrRefused) {
					t.Errorf("another artifact: want refused, got %v", err)
				}
			}
		})
	}
}

func TestOptionErrors(t *testing.T) {
	k := mustKey(t).Public()
	for name, o := range map[string]Options{
		"no digest":               {PublicKey: k},
		"no trust":                {Digest: sigstoretest.DigestOf("x")},
		"both":                    {Digest: sigstoretest.DigestOf("x"), PublicKey: k, Identities: []Identity{{Issuer: sigstoretest.Issuer, Subject: sigstoretest.Identity}}},
		"no root":                 {Digest: sigstoretest.DigestOf("x"), Identities: []Identity{{Issuer: sigstoretest.Issuer, Subject: sigstoretest.Identity}}},
		"identity without issuer": {Digest: sigstoretest.DigestOf("x"), TrustedRoot: &root.TrustedRoot{}, Identities: []Identity{{Subject: sigstoretest.Identity}}},
		"bad digest":              {Digest: "sha256:abc", PublicKey: k},
		"bad regexp":              {Digest: sigstoretest.DigestOf("x"), TrustedRoot: &root.TrustedRoot{}, Identities: []Identity{{Issuer: sigstoretest.Issuer, SubjectRegexp: "("}}},
	} {
		if _, err := Verify([]byte("{}"), o); err == nil || errors.Is(err, ErrRefused) {
			t.Errorf("%s: want a usage error, got %v", name, err)
		}
	}
	if _, err := Verify([]byte(`{"mediaType":"x"}`), Options{Digest: sigstoretest.DigestOf("x"), PublicKey: k, IgnoreTlog: true}); !errors.Is(err, ErrRefused) {
		t.Errorf("garbage bundle: want refused, got %v", err)
	}
	if IsBundle([]byte(`{"payloadType":"x"}`)) || !IsBundle([]byte(`{"mediaType":"`+MediaTypeBundleV03+`"}`)) {
		t.Error("IsBundle")
	}
}

// A bundle that carries the certificate chain (v0.2) verifies like one with
// the leaf alone; the chain in the bundle adds no trust: the root must still
// be in the trusted root.
func TestKeylessCertificateChain(t *testing.T) {
	img := sigstoretest.DigestOf("manifest")
	stmt := sigstoretest.Statement(t, StatementV01, img, "https://slsa.dev/provenance/v0.2", map[string]any{})
	bj, trj := sigstoretest.KeylessChain(t, stmt, sigstoretest.Identity, sigstoretest.Issuer)
	if !strings.Contains(string(bj), "x509CertificateChain") {
		t.Fatal("the fixture carries no chain")
	}
	id := []Identity{{Issuer: sigstoretest.Issuer, Subject: sigstoretest.Identity}}
	if _, err := Verify(bj, Options{Digest: img, TrustedRoot: mustRoot(t, trj), Identities: id}); err != nil {
		t.Fatalf("bundle with a certificate chain: %v", err)
	}
	_, other := sigstoretest.Keyless(t, stmt, sigstoretest.Identity, sigstoretest.Issuer, true)
	if _, err := Verify(bj, Options{Digest: img, TrustedRoot: mustRoot(t, other), Identities: id}); !errors.Is(err, ErrRefused) {
		t.Errorf("chain to a root that is not trusted: want refused, got %v", err)
	}
}

// Package sigstoretest makes sigstore bundles and trusted roots for tests,
// offline: a local test CA stands in for Fulcio and a local log (a two-leaf
// RFC 6962 tree with an inclusion proof, a signed checkpoint and a signed
// entry timestamp) for Rekor — sigstore-go's own test authority. Only tests
// import it.
package sigstoretest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore-go/pkg/tlog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// MediaTypeBundleV03 is the bundle media type written.
const MediaTypeBundleV03 = "application/vnd.dev.sigstore.bundle.v0.3+json"

// Identity and Issuer are the signer the keyless fixtures certify.
const (
	Identity = "release@example.com"
	Issuer   = "https://token.actions.example.com"
)

// Statement returns an in-toto statement about digest, in the shape cosign
// writes (v0.1) or in-toto v1.
func Statement(t testing.TB, typ, digest, predicateType string, predicate any) []byte {
	t.Helper()
	algo, h, _ := strings.Cut(digest, ":")
	data, err := json.Marshal(map[string]any{
		"_type":         typ,
		"predicateType": predicateType,
		"subject":       []map[string]any{{"name": "registry.example/app", "digest": map[string]string{algo: h}}},
		"predicate":     predicate,
	})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// DigestOf is the sha256 digest of s, as "sha256:HEX".
func DigestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Keyless signs stmt with a certificate from a local test CA standing in
// for Fulcio and logs it in a local log standing in for Rekor (a two-leaf
// RFC 6962 tree, with an inclusion proof and a signed checkpoint), and
// returns the bundle's JSON and the trusted root that vouches for both.
func Keyless(t testing.TB, stmt []byte, id, iss string, withTlog bool) (bundleJSON, trustedRoot []byte) {
	t.Helper()
	return keyless(t, stmt, id, iss, withTlog, false)
}

// KeylessChain is Keyless written as a v0.2 bundle that carries the
// certificate chain (leaf and intermediate), as older cosign versions and
// private PKIs do.
func KeylessChain(t testing.TB, stmt []byte, id, iss string) (bundleJSON, trustedRoot []byte) {
	t.Helper()
	return keyless(t, stmt, id, iss, true, true)
}

func keyless(t testing.TB, stmt []byte, id, iss string, withTlog, chain bool) (bundleJSON, trustedRoot []byte) {
	t.Helper()
	vs, err := ca.NewVirtualSigstoreWithExistingRekorEntry()
	if err != nil {
		t.Fatal(err)
	}
	ent, err := vs.AttestAtTime(id, iss, stmt, time.Now().Add(time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := ent.VerificationContent()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ent.SignatureContent()
	if err != nil {
		t.Fatal(err)
	}
	env := sc.EnvelopeContent().RawEnvelope()
	vm := &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
	}
	mediaType := MediaTypeBundleV03
	if chain {
		mediaType = "application/vnd.dev.sigstore.bundle+json;version=0.2"
		certs := []*protocommon.X509Certificate{{RawBytes: vc.Certificate().Raw}}
		for _, ca := range vs.FulcioCertificateAuthorities() {
			if f, ok := ca.(*root.FulcioCertificateAuthority); ok {
				for _, c := range f.Intermediates {
					certs = append(certs, &protocommon.X509Certificate{RawBytes: c.Raw})
				}
			}
		}
		vm.Content = &protobundle.VerificationMaterial_X509CertificateChain{X509CertificateChain: &protocommon.X509CertificateChain{Certificates: certs}}
	}
	if withTlog {
		entries, err := ent.TlogEntries()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			vm.TlogEntries = append(vm.TlogEntries, tlogEntry(t, vs, e))
		}
	}
	b := &protobundle.Bundle{MediaType: mediaType, VerificationMaterial: vm, Content: dsseContent(t, env.PayloadType, env.Payload, env.Signatures[0].Sig)}
	bundleJSON, err = protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	// The test log names itself by the hex of its key id where a
	// trusted_root.json carries the raw bytes: write what a real one holds.
	logs := map[string]*root.TransparencyLog{}
	for id, l := range vs.RekorLogs() {
		raw, err := hex.DecodeString(string(l.ID))
		if err != nil {
			t.Fatal(err)
		}
		c := *l
		c.ID = raw
		logs[id] = &c
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), nil, vs.TimestampingAuthorities(), logs)
	if err != nil {
		t.Fatal(err)
	}
	trustedRoot, err = tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return bundleJSON, trustedRoot
}

// tlogEntry is the bundle's form of the log's entry: the inclusion proof
// with its checkpoint, and the signed entry timestamp (the log's promise,
// which is what makes the integration time a trusted observation).
func tlogEntry(t testing.TB, vs *ca.VirtualSigstore, e *tlog.Entry) *protorekor.TransparencyLogEntry {
	t.Helper()
	tle := proto.Clone(e.TransparencyLogEntry()).(*protorekor.TransparencyLogEntry)
	tle.KindVersion = &protorekor.KindVersion{Kind: "dsse", Version: "0.0.1"}
	if tle.InclusionProof == nil {
		t.Fatal("the test log gave no inclusion proof")
	}
	set, err := vs.RekorSignPayload(tlog.RekorPayload{
		Body:           base64.StdEncoding.EncodeToString(tle.CanonicalizedBody),
		IntegratedTime: tle.IntegratedTime,
		LogIndex:       tle.LogIndex,
		LogID:          hex.EncodeToString(tle.LogId.KeyId),
	})
	if err != nil {
		t.Fatal(err)
	}
	tle.InclusionPromise = &protorekor.InclusionPromise{SignedEntryTimestamp: set}
	return tle
}

func dsseContent(t testing.TB, payloadType, payloadB64, sigB64 string) *protobundle.Bundle_DsseEnvelope {
	payload, err := base64.StdEncoding.DecodeString(payloadB64)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		t.Fatal(err)
	}
	// An empty keyid, as cosign writes.
	return &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
		Payload: payload, PayloadType: payloadType, Signatures: []*protodsse.Signature{{Sig: sig}},
	}}
}

// pae is DSSE's pre-authentication encoding, written here from the DSSE
// spec rather than taken from the library under test.
func pae(payloadType string, payload []byte) []byte {
	return []byte(fmt.Sprintf("DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload))
}

// Keyed signs stmt with priv, as `cosign attest-blob --key --bundle
// --tlog-upload=false` does: a DSSE envelope with an empty keyid and a
// public-key hint, no log entry.
func Keyed(t testing.TB, stmt []byte, priv crypto.Signer) []byte {
	t.Helper()
	const pt = "application/vnd.in-toto+json"
	msg := pae(pt, stmt)
	var sig []byte
	var err error
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, msg)
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(msg)
		sig, err = ecdsa.SignASN1(rand.Reader, k, h[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	b := &protobundle.Bundle{
		MediaType: MediaTypeBundleV03,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: ""}},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: stmt, PayloadType: pt, Signatures: []*protodsse.Signature{{Sig: sig}},
		}},
	}
	data, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

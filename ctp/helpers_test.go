package ctp

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vordr-project/vordr/ctp/canonical"
	"github.com/vordr-project/vordr/ctp/dsse"
	"github.com/vordr-project/vordr/ctp/internal/testlog"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
)

var testTime = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// writeTree creates files under dir; a value starting with "->" is a symlink.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if len(content) > 2 && content[:2] == "->" {
			if err := os.Symlink(content[2:], p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const dpkgStatus = `Package: busybox
Status: install ok installed
Version: 1:1.36.1-9
Architecture: amd64
Description: tiny utilities
 continued line

Package: removed
Status: deinstall ok config-files
Version: 1.0

Package: libc6
Status: install ok installed
Version: 2.36-9
Architecture: amd64
`

// smallRootfs is a tiny but realistic root filesystem.
func smallRootfs(t testing.TB) string {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"bin/hello":           "#!/bin/sh\necho hello\n",
		"bin/sh":              "->hello",
		"etc/os-release":      "ID=test\n",
		"var/lib/dpkg/status": dpkgStatus,
	})
	return dir
}

type fixture struct {
	dir      string
	signer   *keys.Signer
	signer2  *keys.Signer
	pubPEM   []byte
	pub2PEM  []byte
	log      *testlog.Log
	bundle   string
	policy   *policy.Policy
	polTOML  string
	manifest string
}

func newSigner(t testing.TB, alg keys.Algorithm) (*keys.Signer, []byte) {
	t.Helper()
	priv, pub, err := keys.Generate(alg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.ParsePrivateKey(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, pub
}

// newFixture packs and signs a small bundle, logs its signatures in a test
// log, and writes a strict policy requiring both predicates and log quorum 1.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	f.signer, f.pubPEM = newSigner(t, keys.Ed25519)
	f.signer2, f.pub2PEM = newSigner(t, keys.ECDSAP256)
	if err := os.WriteFile(filepath.Join(f.dir, "release.pub"), f.pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "second.pub"), f.pub2PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	f.bundle = filepath.Join(f.dir, "app.ctp")
	_, err := Pack(context.Background(), smallRootfs(t), f.bundle, PackOptions{
		Name: "app", Version: "1.0.0", ImageRef: "example.com/app:1.0.0", Created: testTime,
		Cmd: []string{"/bin/hello"}, Signers: []*keys.Signer{f.signer},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.log = testlog.New(t, "log.example.com/test")
	f.logAll(t, f.bundle, f.log)
	f.polTOML = `version = 1
mode = "strict"
required_predicates = ["https://slsa.dev/provenance/v1", "https://spdx.dev/Document"]
log_quorum = 1
threshold = 1

[[signers]]
name = "release"
key = "release.pub"
valid_until = 2099-12-31T00:00:00Z

[[logs]]
public_key = "` + f.log.VKey + `"
`
	f.policy = f.loadPolicy(t, f.polTOML)
	return f
}

func (f *fixture) loadPolicy(t testing.TB, text string) *policy.Policy {
	t.Helper()
	p := filepath.Join(f.dir, "policy.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// logAll appends a leaf for every signature of the bundle to l and attaches
// the resulting entries.
func (f *fixture) logAll(t testing.TB, bundle string, l *testlog.Log) {
	t.Helper()
	b, err := OpenFile(bundle, Options{})
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := b.Leaves(testTime.Unix())
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	var idx []uint64
	for _, lf := range leaves {
		idx = append(idx, l.Append(lf.Leaf))
	}
	var entries []LogEntry
	for i, lf := range leaves {
		hashes, root, cp := l.Proof(idx[i])
		entries = append(entries, LogEntry{
			LogID: l.Key.ID, LogIndex: idx[i], IntegratedTime: lf.IntegratedTime, Signature: lf.Signature,
			InclusionProof: InclusionProof{TreeSize: l.Size(), RootHash: root, Hashes: hashes}, Checkpoint: cp,
		})
	}
	if err := AttachLogEntries(context.Background(), bundle, bundle, entries, Options{}); err != nil {
		t.Fatal(err)
	}
}

func verifyBytes(data []byte, p *policy.Policy) (*Result, error) {
	b, err := Open(bytes.NewReader(data), int64(len(data)), Options{})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return Verify(context.Background(), b, p, VerifyOptions{Now: testTime})
}

func verifyFile(path string, p *policy.Policy) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return verifyBytes(data, p)
}

// rawEntry is one tar entry for crafting hostile archives.
type rawEntry struct {
	hdr  tar.Header
	data []byte
}

func readRaw(t testing.TB, data []byte) []rawEntry {
	t.Helper()
	var out []rawEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rawEntry{hdr: *h, data: d})
	}
}

func writeRaw(t testing.TB, entries []rawEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func regEntry(name string, data []byte) rawEntry {
	return rawEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: fixedTime, Format: tar.FormatUSTAR}, data: data}
}

type dsseSignature = dsse.Signature

func newEnvelopeLike(t testing.TB, env *dsse.Envelope, payload []byte) *dsse.Envelope {
	return dsse.New(env.PayloadType, payload)
}

func mustCanonical(t testing.TB, v any) []byte {
	t.Helper()
	b, err := canonical.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func policyFor(k *keys.PublicKey) *policy.Policy {
	return &policy.Policy{Version: 1, Mode: policy.Strict, Threshold: 1,
		RequiredPredicates: []string{PredicateSLSA, PredicateSPDX},
		Signers:            []policy.Signer{{KeyID: k.ID, Resolved: k}}}
}

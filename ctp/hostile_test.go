package ctp

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pelletier/go-toml/v2"

	"github.com/vordr-project/vordr/ctp/keys"
)

func findEntry(t testing.TB, es []rawEntry, pred func(string) bool) int {
	t.Helper()
	for i, e := range es {
		if pred(e.hdr.Name) {
			return i
		}
	}
	t.Fatal("entry not found")
	return -1
}

func named(n string) func(string) bool { return func(s string) bool { return s == n } }

// layerIndex finds the (only) layer blob of the small fixture.
func layerIndex(t testing.TB, data []byte, es []rawEntry) int {
	b := mustOpenTB(t, data)
	return findEntry(t, es, named(blobPath(b.Layers()[0].Digest)))
}

func mustOpenTB(t testing.TB, data []byte) *Bundle {
	t.Helper()
	b, err := Open(bytes.NewReader(data), int64(len(data)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// rebuildManifest rewrites the image manifest through mutate and fixes up
// manifest.toml and index.json so the only defect is the one mutate adds.
func rebuildManifest(t testing.TB, data []byte, mutate func(*ocispec.Manifest)) []byte {
	t.Helper()
	b := mustOpenTB(t, data)
	m := b.ImageManifest()
	mutate(&m)
	mj := mustCanonical(t, m)
	md := digest.FromBytes(mj)
	mt := b.Manifest()
	mt.ImageDigest = md.String()
	tomlData, err := toml.Marshal(mt)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := indexJSON(ocispec.Descriptor{Digest: md, Size: int64(len(mj))}, mt.ImageRef)
	if err != nil {
		t.Fatal(err)
	}
	es := readRaw(t, data)
	old := blobPath(b.ManifestDescriptor().Digest)
	for i := range es {
		switch es[i].hdr.Name {
		case old:
			es[i] = regEntry(blobPath(md), mj)
		case ManifestPath:
			es[i].data = tomlData
		case IndexPath:
			es[i].data = idx
		}
	}
	return writeRaw(t, es)
}

func gz(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

func TestHostileBundles(t *testing.T) {
	f := newFixture(t)
	good, err := os.ReadFile(f.bundle)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifyBytes(good, f.policy); err != nil {
		t.Fatalf("fixture does not verify: %v", err)
	}
	edit := func(fn func(es []rawEntry) []rawEntry) []byte {
		return writeRaw(t, fn(readRaw(t, good)))
	}
	appendEntry := func(e rawEntry) []byte {
		return edit(func(es []rawEntry) []rawEntry { return append(es, e) })
	}
	hdr := func(typ byte, name, link string) rawEntry {
		return rawEntry{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: 0o644, ModTime: fixedTime, Format: tar.FormatUSTAR}}
	}
	blobName := BlobsDir + strings.Repeat("ab", 32)
	li := layerIndex(t, good, readRaw(t, good))
	zeros := make([]byte, 16<<20)

	cases := []struct {
		name   string
		data   []byte
		limits Limits
		code   Code
		reason Reason
	}{
		{"path traversal", appendEntry(regEntry("../evil", []byte("x"))), Limits{}, CodeMalformedBundle, ReasonPathTraversal},
		{"nested traversal", appendEntry(regEntry("oci-layout/../../evil", []byte("x"))), Limits{}, CodeMalformedBundle, ReasonPathTraversal},
		{"absolute path", appendEntry(regEntry("/etc/cron.d/evil", []byte("x"))), Limits{}, CodeMalformedBundle, ReasonAbsolutePath},
		{"symlink escape", appendEntry(hdr(tar.TypeSymlink, blobName, "../../../../etc/shadow")), Limits{}, CodeMalformedBundle, ReasonLink},
		{"hardlink escape", appendEntry(hdr(tar.TypeLink, blobName, "/etc/shadow")), Limits{}, CodeMalformedBundle, ReasonLink},
		{"char device", appendEntry(hdr(tar.TypeChar, "oci-layout/null", "")), Limits{}, CodeMalformedBundle, ReasonSpecialFile},
		{"block device", appendEntry(hdr(tar.TypeBlock, "sda", "")), Limits{}, CodeMalformedBundle, ReasonSpecialFile},
		{"fifo", appendEntry(hdr(tar.TypeFifo, "attestations/fifo", "")), Limits{}, CodeMalformedBundle, ReasonSpecialFile},
		{"duplicate entry", edit(func(es []rawEntry) []rawEntry {
			return append(es, regEntry(ManifestPath, es[findEntry(t, es, named(ManifestPath))].data))
		}), Limits{}, CodeMalformedBundle, ReasonDuplicateEntry},
		{"unexpected top-level entry", appendEntry(regEntry("README", []byte("hi"))), Limits{}, CodeMalformedBundle, ReasonUnexpectedEntry},
		{"unexpected directory", appendEntry(hdr(tar.TypeDir, "extra/", "")), Limits{}, CodeMalformedBundle, ReasonUnexpectedEntry},
		{"non-hex blob name", appendEntry(regEntry(BlobsDir+"XYZ", []byte("x"))), Limits{}, CodeMalformedBundle, ReasonUnexpectedEntry},
		{"unreferenced blob", appendEntry(regEntry(BlobsDir+digest.FromString("x").Encoded(), []byte("x"))), Limits{}, CodeMalformedBundle, ReasonUnexpectedEntry},
		{"missing bundle.json", edit(func(es []rawEntry) []rawEntry { return es[:len(es)-1] }), Limits{}, CodeMalformedBundle, ReasonMissingEntry},
		{"layer content differs from name", edit(func(es []rawEntry) []rawEntry {
			d := append([]byte(nil), es[li].data...)
			d[600] ^= 1
			es[li].data = d
			return es
		}), Limits{}, CodeMalformedBundle, ReasonDigestMismatch},
		{"manifest blob differs from name", edit(func(es []rawEntry) []rawEntry {
			i := findEntry(t, es, named(blobPath(mustOpenTB(t, good).ManifestDescriptor().Digest)))
			es[i].data = bytes.Replace(es[i].data, []byte(`"schemaVersion":2`), []byte(`"schemaVersion":3`), 1)
			return es
		}), Limits{}, CodeMalformedBundle, ReasonDigestMismatch},
		{"wrong layer media type", rebuildManifest(t, good, func(m *ocispec.Manifest) {
			m.Layers[0].MediaType = "application/vnd.oci.image.layer.nondistributable.v1.tar"
		}), Limits{}, CodeMalformedBundle, ReasonMediaType},
		{"wrong config media type", rebuildManifest(t, good, func(m *ocispec.Manifest) { m.Config.MediaType = "application/json" }), Limits{}, CodeMalformedBundle, ReasonMediaType},
		{"wrong manifest media type", rebuildManifest(t, good, func(m *ocispec.Manifest) { m.MediaType = ocispec.MediaTypeImageIndex }), Limits{}, CodeMalformedBundle, ReasonMediaType},
		{"layer size lies", rebuildManifest(t, good, func(m *ocispec.Manifest) { m.Layers[0].Size-- }), Limits{}, CodeMalformedBundle, ReasonInvalidField},
		{"truncated in a blob", good[:len(good)/2], Limits{}, CodeMalformedBundle, ReasonTruncated},
		{"truncated in data", good[:512+100], Limits{}, CodeMalformedBundle, ReasonTruncated},
		{"truncated in a header", good[:1024+100], Limits{}, CodeMalformedBundle, ReasonTruncated},
		{"PAX header", edit(func(es []rawEntry) []rawEntry {
			es[0].hdr.Format = tar.FormatPAX
			es[0].hdr.PAXRecords = map[string]string{"comment": "hidden"}
			return es
		}), Limits{}, CodeMalformedBundle, ReasonTarFormat},
		{"trailing garbage", append(append([]byte(nil), good...), []byte("garbage")...), Limits{}, CodeMalformedBundle, ReasonTarFormat},
		{"non-zero padding", edit(func(es []rawEntry) []rawEntry { return es }), Limits{}, "", ""}, // replaced below
		{"decompression bomb (size)", gz(t, append(append([]byte(nil), good...), zeros...)), Limits{MaxDecompressed: 4 << 20, MaxEntries: 10, MaxCompressionRatio: 1 << 40}, CodeMalformedBundle, ReasonTooLarge},
		{"gzip trailing data", append(gz(t, good), 'x'), Limits{}, CodeMalformedBundle, ReasonCompression},
		{"corrupt gzip", func() []byte { z := gz(t, good); z[len(z)/2] ^= 0xff; return z }(), Limits{}, CodeMalformedBundle, ""},
		{"huge JSON", good, Limits{MaxEntries: 100, MaxManifestTOML: 1 << 20, MaxIndexJSON: 1 << 20, MaxImageJSON: 1 << 20, MaxAttestationJSON: 1024, MaxLayers: 10}, CodeMalformedBundle, ReasonTooLarge},
		{"too many entries", good, Limits{MaxEntries: 3}, CodeMalformedBundle, ReasonTooLarge},
		{"duplicate JSON key", edit(func(es []rawEntry) []rawEntry {
			d := es[len(es)-1].data
			es[len(es)-1].data = append([]byte(`{"attestations":[],`), d[1:]...)
			return es
		}), Limits{}, CodeMalformedBundle, ReasonDuplicateKey},
		{"non-canonical JSON", edit(func(es []rawEntry) []rawEntry {
			es[len(es)-1].data = append([]byte("{ "), es[len(es)-1].data[1:]...)
			return es
		}), Limits{}, CodeMalformedBundle, ReasonNonCanonical},
		{"index lists another manifest", edit(func(es []rawEntry) []rawEntry {
			i := findEntry(t, es, named(IndexPath))
			es[i].data = bytes.Replace(es[i].data, []byte(`"example.com/app:1.0.0"`), []byte(`"example.com/app:6.6.6"`), 1)
			return es
		}), Limits{}, CodeMalformedBundle, ReasonInvalidField},
		{"oci-layout version", edit(func(es []rawEntry) []rawEntry {
			es[findEntry(t, es, named(LayoutFilePath))].data = []byte(`{"imageLayoutVersion":"2.0.0"}`)
			return es
		}), Limits{}, CodeMalformedBundle, ReasonInvalidField},
		{"manifest.toml unknown field", edit(func(es []rawEntry) []rawEntry {
			i := findEntry(t, es, named(ManifestPath))
			es[i].data = append([]byte("evil = true\n"), es[i].data...)
			return es
		}), Limits{}, CodeMalformedBundle, ReasonSyntax},
	}
	// Non-zero bytes in the padding after an entry's data: tar itself skips
	// them, so this needs its own check.
	padCase := -1
	for i, c := range cases {
		if c.name == "non-zero padding" {
			padCase = i
		}
	}
	pad := append([]byte(nil), good...)
	{
		b := mustOpenTB(t, good)
		e := b.entries[ManifestPath]
		pad[e.off+e.size] = 'X'
	}
	cases[padCase].data, cases[padCase].code, cases[padCase].reason = pad, CodeMalformedBundle, ReasonTarFormat

	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Open(bytes.NewReader(tc.data), int64(len(tc.data)), Options{Limits: tc.limits, TempDir: dir})
			if err == nil {
				_, err = Verify(context.Background(), b, f.policy, VerifyOptions{Now: testTime})
				b.Close()
			}
			if CodeOf(err) != tc.code || (tc.reason != "" && ReasonOf(err) != tc.reason) {
				t.Fatalf("got %v, want %s/%s", err, tc.code, tc.reason)
			}
			// Nothing is written when a hostile bundle is signed or has log
			// entries attached, neither a new file nor over the input.
			in := filepath.Join(dir, "in.ctp")
			out := filepath.Join(dir, "out.ctp")
			if err := os.WriteFile(in, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.limits == (Limits{}) {
				if err := Sign(context.Background(), in, out, []*keys.Signer{f.signer2}, Options{}); err == nil {
					t.Fatal("Sign accepted a hostile bundle")
				}
				if err := Sign(context.Background(), in, in, []*keys.Signer{f.signer2}, Options{}); err == nil {
					t.Fatal("Sign accepted a hostile bundle")
				}
				if err := AttachLogEntries(context.Background(), in, out, nil, Options{}); err == nil {
					t.Fatal("AttachLogEntries accepted a hostile bundle")
				}
				if _, err := os.Stat(out); !os.IsNotExist(err) {
					t.Fatal("output written for a hostile bundle")
				}
				if got, _ := os.ReadFile(in); !bytes.Equal(got, tc.data) {
					t.Fatal("input modified")
				}
			}
			os.Remove(in)
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("temporary files left behind: %v", left)
			}
		})
	}
}

func TestZstdBombRatio(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 80 MiB")
	}
	var buf bytes.Buffer
	w, _ := zstd.NewWriter(&buf)
	w.Write(make([]byte, 80<<20))
	w.Close()
	data := buf.Bytes()
	_, err := Open(bytes.NewReader(data), int64(len(data)), Options{TempDir: t.TempDir()})
	if CodeOf(err) != CodeMalformedBundle || ReasonOf(err) != ReasonTooLarge {
		t.Fatalf("got %v, want MALFORMED_BUNDLE/TOO_LARGE", err)
	}
}

func TestTruncatedEverywhere(t *testing.T) {
	f := newFixture(t)
	good, _ := os.ReadFile(f.bundle)
	accepted := 0
	for n := 0; n < len(good)-1024; n += 509 {
		if _, err := verifyBytes(good[:n], f.policy); err == nil {
			accepted++
			t.Errorf("truncated at %d accepted", n)
		} else if CodeOf(err) != CodeMalformedBundle {
			t.Errorf("truncated at %d: %v", n, err)
		}
	}
	if accepted > 0 {
		t.Fatalf("%d truncations accepted", accepted)
	}
}

func TestLogProofFailures(t *testing.T) {
	f := newFixture(t)
	good, _ := os.ReadFile(f.bundle)
	b := mustOpenTB(t, good)
	base := cloneAttestations(b.Attestations())
	with := func(mut func(e *LogEntry)) []byte {
		att := cloneAttestations(base)
		e := att.LogEntries[0]
		e.InclusionProof.Hashes = append([]string{}, e.InclusionProof.Hashes...)
		mut(&e)
		att.LogEntries[0] = e
		es := readRaw(t, good)
		es[len(es)-1].data = mustCanonical(t, att)
		return writeRaw(t, es)
	}
	other := newFixture(t).log
	for _, tc := range []struct {
		name   string
		mut    func(e *LogEntry)
		reason Reason
	}{
		{"bad proof hash", func(e *LogEntry) {
			h, _ := hex.DecodeString(e.InclusionProof.Hashes[0])
			h[0] ^= 1
			e.InclusionProof.Hashes[0] = hex.EncodeToString(h)
		}, ReasonInclusionProof},
		{"wrong index", func(e *LogEntry) { e.LogIndex = (e.LogIndex + 1) % e.InclusionProof.TreeSize }, ReasonInclusionProof},
		{"changed integrated time", func(e *LogEntry) { e.IntegratedTime++ }, ReasonInclusionProof},
		{"root differs from checkpoint", func(e *LogEntry) { e.InclusionProof.RootHash = strings.Repeat("00", 32) }, ReasonInclusionProof},
		{"checkpoint signed by an untrusted log", func(e *LogEntry) { e.Checkpoint = f.log.SignCheckpointWith(other) }, ReasonUntrustedLog},
		{"checkpoint garbage", func(e *LogEntry) { e.Checkpoint = "not a note" }, ReasonCheckpointFormat},
		{"unknown signature", func(e *LogEntry) { e.Signature = "sha256:" + strings.Repeat("11", 32) }, ReasonInvalidField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifyBytes(with(tc.mut), f.policy)
			if CodeOf(err) != CodeLogProofInvalid || ReasonOf(err) != tc.reason {
				t.Fatalf("got %v, want LOG_PROOF_INVALID/%s", err, tc.reason)
			}
		})
	}
}

// TestByteFlips flips every byte of a small signed, logged bundle, one at a
// time, and requires each result to be rejected.
func TestByteFlips(t *testing.T) {
	f := newFixture(t)
	good, _ := os.ReadFile(f.bundle)
	if _, err := verifyBytes(good, f.policy); err != nil {
		t.Fatal(err)
	}
	step := 1
	if testing.Short() {
		step = 7
	}
	codes := map[Code]int{}
	accepted := 0
	buf := make([]byte, len(good))
	for i := 0; i < len(good); i += step {
		for _, mask := range []byte{0xff, 0x01} {
			copy(buf, good)
			buf[i] ^= mask
			_, err := verifyBytes(buf, f.policy)
			if err == nil {
				accepted++
				if accepted < 10 {
					lo, hi := max(0, i-60), min(len(good), i+60)
					t.Errorf("flip of byte %d (mask %#x) accepted: %q -> %q", i, mask, good[lo:hi], buf[lo:hi])
				}
				continue
			}
			codes[CodeOf(err)]++
		}
	}
	t.Logf("%d bytes, rejections by code: %v", len(good), codes)
	if accepted > 0 {
		t.Fatalf("%d flips accepted", accepted)
	}
}

package ctp

import (
	"bytes"
	"context"
	"os"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the bundle reader and verifier. Its seed
// corpus (a signed, logged bundle and compressed and damaged variants) runs in
// every `go test`; `make fuzz` runs it for longer. Nothing may panic, and no
// input other than the fixture's own image can be accepted, since the fuzzer
// cannot sign.
func FuzzOpen(f *testing.F) {
	fx := newFixture(f)
	good, err := os.ReadFile(fx.bundle)
	if err != nil {
		f.Fatal(err)
	}
	want := mustOpenTB(f, good).Manifest().ImageDigest
	f.Add(good)
	f.Add(gz(f, good))
	f.Add(good[:len(good)/3])
	f.Add(append(append([]byte(nil), good...), 'x'))
	f.Add([]byte{})
	f.Add(make([]byte, 1024))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Open(bytes.NewReader(data), int64(len(data)), Options{TempDir: dir, Limits: Limits{
			MaxEntries: 64, MaxManifestTOML: 1 << 16, MaxIndexJSON: 1 << 16, MaxImageJSON: 1 << 16,
			MaxAttestationJSON: 1 << 20, MaxLayers: 16, MaxDecompressed: 8 << 20, MaxCompressionRatio: 1024,
		}})
		if err != nil {
			if CodeOf(err) != CodeMalformedBundle {
				t.Fatalf("Open error without MALFORMED_BUNDLE code: %v", err)
			}
			return
		}
		defer b.Close()
		// Exercise the accessors the importer uses.
		for _, d := range b.Blobs() {
			if r, err := b.OpenBlob(d.Digest); err == nil {
				var sink bytes.Buffer
				sink.ReadFrom(r)
			}
		}
		res, err := Verify(context.Background(), b, fx.policy, VerifyOptions{Now: testTime})
		if err == nil && res.ImageDigest != want {
			t.Fatalf("accepted a bundle the fuzzer made up: %s", res.ImageDigest)
		}
	})
}

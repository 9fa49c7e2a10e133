package ctp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
)

// benchMiB is the payload size of the large benchmarks: 256 MiB unless
// CTP_BENCH_MIB says otherwise (bench/ctp-verify.sh passes it through).
func benchMiB() int64 {
	if s := os.Getenv("CTP_BENCH_MIB"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 256
}

// bigRootfs writes size bytes of random data in 8 files (incompressible,
// like binaries and compressed assets).
func bigRootfs(b *testing.B, size int64) string {
	dir := b.TempDir()
	per := size / 8
	buf := make([]byte, 1<<20)
	for i := 0; i < 8; i++ {
		f, err := os.Create(filepath.Join(dir, "file"+strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		for n := int64(0); n < per; n += int64(len(buf)) {
			rand.Read(buf)
			f.Write(buf[:min(int64(len(buf)), per-n)])
		}
		f.Close()
	}
	return dir
}

type bigBundle struct {
	path   string
	size   int64
	policy *policy.Policy
}

func makeBigBundle(b *testing.B) bigBundle {
	b.Helper()
	root := bigRootfs(b, benchMiB()<<20)
	s, pub := newSigner(b, keys.Ed25519)
	k, _ := keys.ParsePublicKey(pub)
	path := filepath.Join(b.TempDir(), "big.ctp")
	if _, err := Pack(context.Background(), root, path, PackOptions{Name: "big", Created: testTime, Signers: []*keys.Signer{s}}); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(path)
	return bigBundle{path: path, size: fi.Size(), policy: policyFor(k)}
}

// BenchmarkVerifyLarge verifies a large bundle and, in the same run, hashes
// the same file with plain SHA-256 as the baseline; compare the MB/s.
func BenchmarkVerifyLarge(b *testing.B) {
	bb := makeBigBundle(b)
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(bb.size)
		for i := 0; i < b.N; i++ {
			bd, err := OpenFile(bb.path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Verify(context.Background(), bd, bb.policy, VerifyOptions{Now: testTime}); err != nil {
				b.Fatal(err)
			}
			bd.Close()
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(bb.size)
		buf := make([]byte, hashBufSize)
		for i := 0; i < b.N; i++ {
			f, _ := os.Open(bb.path)
			h := sha256.New()
			io.CopyBuffer(h, f, buf)
			f.Close()
		}
	})
}

func BenchmarkPack(b *testing.B) {
	size := benchMiB() << 20
	root := bigRootfs(b, size)
	out := filepath.Join(b.TempDir(), "p.ctp")
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Pack(context.Background(), root, out, PackOptions{Name: "big", Created: testTime}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifySmall is the latency of verifying a small signed, logged
// bundle from memory: open, all digests, signatures, proofs, policy.
func BenchmarkVerifySmall(b *testing.B) {
	f := newFixture(b)
	data, _ := os.ReadFile(f.bundle)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bd, err := Open(bytes.NewReader(data), int64(len(data)), Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(context.Background(), bd, f.policy, VerifyOptions{Now: testTime}); err != nil {
			b.Fatal(err)
		}
	}
}

// bigLayout writes an OCI layout of two equal uncompressed layers of random
// data, benchMiB()/2 each, and returns it with the payload size.
func bigLayout(b *testing.B) (string, int64) {
	half := benchMiB() << 20 / 2
	var layers [][]byte
	for range 2 {
		root := bigRootfs(b, half)
		layers = append(layers, dirToTar(b, root))
		os.RemoveAll(root)
	}
	return layoutWithLayers(b, layers), 2 * half
}

// BenchmarkPackVsTar packs a rootfs and, in the same run, measures
// `tar c DIR | sha256sum` over the same tree with the real tools (the
// hash-bound baseline of issue 13: pack should reach 0.8x of its MB/s).
func BenchmarkPackVsTar(b *testing.B) {
	size := benchMiB() << 20
	root := bigRootfs(b, size)
	out := filepath.Join(b.TempDir(), "p.ctp")
	b.Run("pack", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			if _, err := Pack(context.Background(), root, out, PackOptions{Name: "big", Created: testTime}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tar-sha256sum", func(b *testing.B) {
		if _, err := exec.LookPath("sha256sum"); err != nil {
			b.Skip("no sha256sum")
		}
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			cmd := exec.Command("sh", "-c", `tar c -C "$1" . | sha256sum`, "sh", root)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
}

// BenchmarkPackLayout packs an OCI layout of two equal layers.
func BenchmarkPackLayout(b *testing.B) {
	layout, size := bigLayout(b)
	out := filepath.Join(b.TempDir(), "p.ctp")
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Pack(context.Background(), layout, out, PackOptions{Name: "big", Created: testTime}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyBlobsTwoLayers hashes a bundle of two equal layers one
// after the other and in parallel (issue 13: >= 1.6x on 2 cores).
func BenchmarkVerifyBlobsTwoLayers(b *testing.B) {
	layout, size := bigLayout(b)
	path := filepath.Join(b.TempDir(), "two.ctp")
	if _, err := Pack(context.Background(), layout, path, PackOptions{Name: "big", Created: testTime}); err != nil {
		b.Fatal(err)
	}
	os.RemoveAll(layout)
	bd, err := OpenFile(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer bd.Close()
	for _, c := range []struct {
		name    string
		workers int
	}{{"sequential", 1}, {"parallel", runtime.GOMAXPROCS(0)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				if err := bd.verifyBlobs(context.Background(), c.workers); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

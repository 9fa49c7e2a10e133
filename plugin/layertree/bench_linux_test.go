//go:build linux

package layertree

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
)

type benchFile struct {
	path string
	data []byte
}

// benchTree is ~50 MiB: 40 files of 1 MiB, 2000 files of 5 KiB in 50
// directories, and 200 symlinks — big binaries plus many small files, like
// a distro layer.
var benchTree = sync.OnceValue(func() []benchFile {
	var files []benchFile
	for i := range 40 {
		files = append(files, benchFile{fmt.Sprintf("big/f%02d", i), randomBytes(uint64(1000+i), 1<<20)})
	}
	for i := range 2000 {
		files = append(files, benchFile{fmt.Sprintf("small/d%02d/f%04d", i%50, i), randomBytes(uint64(i), 5<<10)})
	}
	return files
})

func benchBytes(files []benchFile) int64 {
	var n int64
	for _, f := range files {
		n += int64(len(f.data))
	}
	return n
}

// BenchmarkCompare verifies a containerd-applied ~50 MiB layer directory
// (page cache warm after the first iteration). Compare with
// BenchmarkSha256Only, which hashes the same bytes from memory, for the
// overhead of walking, stat-ing, reading and xattr checks.
func BenchmarkCompare(b *testing.B) {
	requireRoot(b)
	files := benchTree()
	var ents []ent
	for _, f := range files {
		ents = append(ents, blob(f.path, 0o755, f.data))
	}
	for i := range 200 {
		ents = append(ents, symlink(fmt.Sprintf("links/l%03d", i), files[i].path))
	}
	layer := buildTar(b, ents...)
	dir, err := containerdApply(b, layer, overlayMode)
	if err != nil {
		b.Fatal(err)
	}
	m, err := FromTar(bytes.NewReader(layer))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchBytes(files))
	for b.Loop() {
		if err := Compare(dir, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSha256Only is the floor for BenchmarkCompare: sha256 of the same
// file contents, already in memory.
func BenchmarkSha256Only(b *testing.B) {
	files := benchTree()
	b.SetBytes(benchBytes(files))
	for b.Loop() {
		for _, f := range files {
			_ = sha256.Sum256(f.data)
		}
	}
}

// BenchmarkFromTar is for reference: parsing and hashing the layer tar.
func BenchmarkFromTar(b *testing.B) {
	files := benchTree()
	var ents []ent
	for _, f := range files {
		ents = append(ents, blob(f.path, 0o755, f.data))
	}
	layer := buildTar(b, ents...)
	b.SetBytes(benchBytes(files))
	for b.Loop() {
		if _, err := FromTar(bytes.NewReader(layer)); err != nil {
			b.Fatal(err)
		}
	}
}

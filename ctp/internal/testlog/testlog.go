// Package testlog is a transparency log for tests: transparency-dev's
// in-memory Merkle tree plus a note signer for checkpoints. It is internal
// because a real deployment uses an external log.
package testlog

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/vordr-project/vordr/ctp/tlog"
)

// Log is an append-only log with a signing key.
type Log struct {
	t    testing.TB
	tree *testonly.Tree
	skey string
	VKey string
	Key  *tlog.LogKey
}

// New creates an empty log named origin.
func New(t testing.TB, origin string) *Log {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	k, err := tlog.ParseLogKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &Log{t: t, tree: testonly.New(rfc6962.DefaultHasher), skey: skey, VKey: vkey, Key: k}
}

// Append adds leaf data and returns its index.
func (l *Log) Append(leaf []byte) uint64 {
	l.tree.AppendData(leaf)
	return l.tree.Size() - 1
}

// Size is the number of leaves.
func (l *Log) Size() uint64 { return l.tree.Size() }

// Proof returns the inclusion proof of index in the current tree, hex
// encoded, with the root hash and a signed checkpoint for that tree.
func (l *Log) Proof(index uint64) (hashes []string, root string, checkpoint string) {
	l.t.Helper()
	size := l.tree.Size()
	p, err := l.tree.InclusionProof(index, size)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, h := range p {
		hashes = append(hashes, hex.EncodeToString(h))
	}
	if hashes == nil {
		hashes = []string{}
	}
	rootHash := l.tree.Hash()
	cp, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: l.Key.Origin, Size: size, Hash: rootHash}, l.skey)
	if err != nil {
		l.t.Fatal(err)
	}
	return hashes, hex.EncodeToString(rootHash), string(cp)
}

// SignCheckpointWith signs a checkpoint of this log's current tree with the
// key of another log, to test untrusted checkpoints.
func (l *Log) SignCheckpointWith(other *Log) string {
	cp, err := tlog.SignCheckpoint(tlog.Checkpoint{Origin: l.Key.Origin, Size: l.tree.Size(), Hash: l.tree.Hash()}, other.skey)
	if err != nil {
		l.t.Fatal(err)
	}
	return string(cp)
}

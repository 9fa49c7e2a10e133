package ctp

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// The asyncWriter delivers exactly the bytes written, in order, whatever the
// sizes of the writes.
func TestAsyncWriterOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var want, got bytes.Buffer
	a := newAsyncWriter(&got)
	for range 200 {
		p := make([]byte, rng.IntN(3*copyChunk/2))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		want.Write(p)
		if n, err := a.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("delivered %d bytes differ from the %d written", got.Len(), want.Len())
	}
}

type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// An error of the underlying writer stops further writes and is returned by
// Close (and again by a second Close).
func TestAsyncWriterError(t *testing.T) {
	boom := errors.New("disk full")
	a := newAsyncWriter(&failAfter{n: 2 * copyChunk, err: boom})
	var werr error
	for range 64 {
		if _, werr = a.Write(make([]byte, copyChunk)); werr != nil {
			break
		}
	}
	if !errors.Is(werr, boom) {
		t.Errorf("Write after the failure: got %v, want %v", werr, boom)
	}
	if err := a.Close(); !errors.Is(err, boom) {
		t.Errorf("Close: got %v", err)
	}
	if err := a.Close(); !errors.Is(err, boom) {
		t.Errorf("second Close: got %v", err)
	}
	var _ io.Writer = a
}

package ctp

import (
	"io"
	"sync"
	"sync/atomic"
)

// Packing is bound by SHA-256 and SHA-1 (each on one core at a time) and by
// write syscalls. An asyncWriter moves one of these consumers onto its own
// goroutine so that it runs on another core while the caller reads, tars and
// feeds the others. Bytes reach the underlying writer in the order written,
// so the output (and every digest) is exactly what a plain io.Writer chain
// would produce.

const (
	// copyChunk is the unit of reads, writes and hand-offs: large enough that
	// per-call overhead (syscalls, channel operations) vanishes next to the
	// hashing, small enough that a few of them in flight cost little memory.
	copyChunk = 1 << 20
	// asyncDepth bounds the chunks in flight per asyncWriter, hence its memory
	// (asyncDepth × copyChunk), while letting the two sides drift a little.
	asyncDepth = 4
	// asyncMin is the size below which a file is hashed inline: a goroutine
	// hand-off costs more than hashing a small file.
	asyncMin = 256 << 10
)

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, copyChunk); return &b }}

func getChunk() *[]byte { return chunkPool.Get().(*[]byte) }

func putChunk(b *[]byte) { *b = (*b)[:0]; chunkPool.Put(b) }

// copyBuffered is io.Copy with a pooled chunk-sized buffer. It hides r's
// WriteTo and w's ReadFrom, which for *os.File fall back to 32 KiB copies.
func copyBuffered(w io.Writer, r io.Reader) (int64, error) {
	b := getChunk()
	defer putChunk(b)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, (*b)[:cap(*b)])
}

type asyncWriter struct {
	w     io.Writer
	cur   *[]byte // being filled by the caller
	alloc int     // chunks taken from the pool
	full  chan *[]byte
	free  chan *[]byte
	done  chan struct{}
	err   atomic.Pointer[error] // w's first error
	shut  bool
}

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{
		w:    w,
		full: make(chan *[]byte, asyncDepth),
		free: make(chan *[]byte, asyncDepth),
		done: make(chan struct{}),
	}
	go a.run()
	return a
}

func (a *asyncWriter) run() {
	defer close(a.done)
	for b := range a.full {
		if a.err.Load() == nil {
			if _, err := a.w.Write(*b); err != nil {
				a.err.Store(&err)
			}
		}
		a.free <- b
	}
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if e := a.err.Load(); e != nil {
			return n, *e
		}
		if a.cur == nil {
			if a.alloc < asyncDepth {
				a.alloc++
				a.cur = getChunk()
			} else {
				a.cur = <-a.free
				*a.cur = (*a.cur)[:0]
			}
		}
		b := *a.cur
		k := copy(b[len(b):cap(b)], p)
		*a.cur = b[:len(b)+k]
		p, n = p[k:], n+k
		if len(*a.cur) == cap(*a.cur) {
			a.full <- a.cur
			a.cur = nil
		}
	}
	return n, nil
}

// Close hands over what is buffered, waits until the underlying writer has
// consumed everything and returns its first error. It must be called (also
// on error paths) to stop the goroutine; later calls only return the error.
func (a *asyncWriter) Close() error {
	if !a.shut {
		a.shut = true
		if a.cur != nil && len(*a.cur) > 0 {
			a.full <- a.cur
		} else if a.cur != nil {
			putChunk(a.cur)
		}
		a.cur = nil
		close(a.full)
		<-a.done
		for len(a.free) > 0 {
			putChunk(<-a.free)
		}
	}
	if e := a.err.Load(); e != nil {
		return *e
	}
	return nil
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestProgressBar(t *testing.T) {
	if newProgress("never").Func() != nil {
		t.Fatal("--progress never draws")
	}
	if newProgress("always").Func() == nil {
		t.Fatal("--progress always does not draw")
	}
	var buf bytes.Buffer
	pr := &progress{w: &buf, throttle: time.Hour} // only the first and the final frames
	p := pr.Func()
	const total = 64 << 20
	// "layer" reports every byte; "write" stops short of its total and
	// overshoots it (tar framing), as pack's write stage does.
	for done := int64(0); done <= total; done += 4 << 20 {
		p("layer", done, total)
	}
	p("write", 0, total)
	p("write", total-100, total)
	p("empty", 0, 0) // nothing to show
	p("write", total+1536, total)
	pr.Done(nil)
	out := buf.String()
	for _, want := range []string{"layer", "write", "100%", "64 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress output lacks %q: %q", want, out)
		}
	}
	if strings.Contains(out, "empty") {
		t.Errorf("a stage of size 0 was drawn: %q", out)
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("%d lines for 2 finished stages: %q", n, out)
	}
}

func TestProgressFailedStage(t *testing.T) {
	var buf bytes.Buffer
	pr := &progress{w: &buf, throttle: 0}
	pr.Func()("layer", 1<<20, 4<<20)
	pr.Done(errors.New("hostile input"))
	out := buf.String()
	if strings.Contains(out, "100%") || !strings.Contains(out, "25%") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("a failed stage must stay where it stopped, on its own line: %q", out)
	}
	pr.Done(nil) // idempotent
	if buf.String() != out {
		t.Fatalf("Done after Done drew again: %q", buf.String())
	}
}

// handProgress is the hand-written bar vordr drew before it used
// schollz/progressbar: the baseline of BenchmarkProgress_*.
func handProgress(w io.Writer) func(stage string, done, total int64) {
	return func(stage string, done, total int64) {
		if total <= 0 {
			return
		}
		const width = 30
		n := int(done * width / total)
		fmt.Fprintf(w, "\r%-6s [%s%s] %3d%% %s", stage, strings.Repeat("=", n), strings.Repeat(" ", width-n), done*100/total, humanSize(done))
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

// The progress benchmarks feed one 4 GiB stage in the 4 MiB steps the ctp
// package reports, to a discarding writer: the cost a pack or import pays
// for drawing.
func benchProgress(b *testing.B, newBar func() func(string, int64, int64)) {
	const total = 4 << 30
	b.ReportAllocs()
	for b.Loop() {
		p := newBar()
		for done := int64(0); done <= total; done += 4 << 20 {
			p("layer", done, total)
		}
	}
}

func BenchmarkProgress_Handwritten(b *testing.B) {
	benchProgress(b, func() func(string, int64, int64) { return handProgress(io.Discard) })
}

func BenchmarkProgress_Library(b *testing.B) {
	benchProgress(b, func() func(string, int64, int64) {
		return (&progress{w: io.Discard, throttle: 100 * time.Millisecond}).Func()
	})
}

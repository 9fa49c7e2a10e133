package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress draws pack and import progress, one bar per stage, with
// schollz/progressbar (throttled rendering, rate and time left).
type progress struct {
	w        io.Writer
	throttle time.Duration
	bar      *progressbar.ProgressBar
	stage    string
}

// newProgress returns the progress display for mode "never", "always", or
// "auto" (only when stderr is a terminal, so logs and pipes stay clean); nil
// means none.
func newProgress(mode string) *progress {
	if mode == "never" || mode != "always" && !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return &progress{w: os.Stderr, throttle: 100 * time.Millisecond}
}

// Func is the callback for ctp.PackOptions.Progress and
// plugin.ImportOptions.Progress: nil when p is nil, so nothing is drawn.
func (p *progress) Func() func(stage string, done, total int64) {
	if p == nil {
		return nil
	}
	return p.update
}

func (p *progress) update(stage string, done, total int64) {
	if total <= 0 {
		return
	}
	if p.bar == nil || stage != p.stage {
		// A stage starts only after the previous one succeeded, whose last
		// bytes may not have been reported.
		p.finish()
		p.stage = stage
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(stage),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetTheme(progressbar.ThemeASCII), // any terminal, any locale
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionThrottle(p.throttle),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionOnCompletion(func() { _, _ = io.WriteString(p.w, "\n") }),
		)
	}
	// Writing a bundle also counts tar framing beyond the layers' total.
	// Errors are failed writes to the terminal, which progress output
	// can ignore.
	_ = p.bar.Set64(min(done, total))
}

func (p *progress) finish() {
	if p.bar != nil && !p.bar.IsFinished() {
		_ = p.bar.Finish()
	}
}

// Done ends the display: the open bar is completed if the operation
// succeeded, and left where it stopped (on its own line) if it failed.
func (p *progress) Done(err error) {
	if p == nil || p.bar == nil || p.bar.IsFinished() {
		return
	}
	if err == nil {
		p.finish()
		return
	}
	_ = p.bar.Exit()
}

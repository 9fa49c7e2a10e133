//go:build linux

package guard

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/sys/reaper"

	"github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/task"
	"github.com/vordr-project/vordr/internal/helper"
	"github.com/vordr-project/vordr/monitor"
)

// webhook posts alerts as JSON to a URL, from a bounded queue so a slow or
// dead receiver never holds up the guard; what does not fit is counted. The
// posting is done by the helper (task.HelperPath), started at the first
// alert: an HTTP and TLS client would add over a MiB to every shim's memory
// for something most containers never use.
type webhook struct {
	url     string
	helper  string
	queue   chan []byte
	dropped int
	mu      sync.Mutex
	done    chan struct{}
}

func newWebhook(url string) *webhook {
	w := &webhook{url: url, helper: task.HelperPath(), queue: make(chan []byte, 256), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *webhook) send(a *monitor.Alert) {
	data, err := json.Marshal(a)
	if err != nil {
		return
	}
	select {
	case w.queue <- data:
	default:
		w.drop()
	}
}

func (w *webhook) drop() {
	w.mu.Lock()
	w.dropped++
	w.mu.Unlock()
}

// helperProc is a running helper: its stdin, and how to wait for it.
type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	exit  chan error
}

func (w *webhook) start() *helperProc {
	if w.helper == "" {
		return nil
	}
	cmd := exec.Command(w.helper, helper.WebhookArg)
	cmd.Env = append(os.Environ(), helper.WebhookURLEnv+"="+w.url) // not argv (internal/helper)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil
	}
	ec, err := reaper.Default.Start(cmd)
	if err != nil {
		stdin.Close()
		return nil
	}
	p := &helperProc{cmd: cmd, stdin: stdin, exit: make(chan error, 1)}
	go func() {
		_, err := reaper.Default.Wait(cmd, ec)
		p.exit <- err
	}()
	return p
}

func (w *webhook) run() {
	defer close(w.done)
	var p *helperProc
	for data := range w.queue {
		if p == nil {
			if p = w.start(); p == nil {
				w.drop() // no helper: the alert is in the event log and on the bus
				continue
			}
		}
		if _, err := p.stdin.Write(append(data, '\n')); err != nil {
			// The helper died: count the alert, start a new one next time.
			w.drop()
			p.stdin.Close()
			p = nil
		}
	}
	if p != nil {
		// EOF lets the helper deliver what it holds and exit.
		p.stdin.Close()
		select {
		case <-p.exit:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
}

// close delivers what is queued (bounded by the helper's timeouts) and stops.
func (w *webhook) close() {
	close(w.queue)
	select {
	case <-w.done:
	case <-time.After(15 * time.Second):
	}
}

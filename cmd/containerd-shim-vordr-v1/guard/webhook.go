//go:build linux

package guard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/vordr-project/vordr/monitor"
)

// webhook posts alerts as JSON to a URL, from a bounded queue so a slow or
// dead receiver never holds up the guard; what does not fit is counted.
type webhook struct {
	url     string
	queue   chan []byte
	dropped int
	mu      sync.Mutex
	done    chan struct{}
}

func newWebhook(url string) *webhook {
	w := &webhook{url: url, queue: make(chan []byte, 256), done: make(chan struct{})}
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
		w.mu.Lock()
		w.dropped++
		w.mu.Unlock()
	}
}

func (w *webhook) run() {
	defer close(w.done)
	client := &http.Client{Timeout: 5 * time.Second}
	for data := range w.queue {
		resp, err := client.Post(w.url, "application/json", bytes.NewReader(data))
		if err == nil {
			resp.Body.Close()
		}
	}
}

// close delivers what is queued (bounded by the client timeout) and stops.
func (w *webhook) close() {
	close(w.queue)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
	}
}

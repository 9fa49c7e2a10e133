//go:build linux

package guard

import (
	"context"
	"sync"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
)

// outbox publishes the guard's events to containerd in order, off the request
// path: a publish is a synchronous call into containerd (about a millisecond),
// which Create and Delete would otherwise wait for. The shim drains it at
// shutdown, so a container's "detached" event is not lost when the shim
// exits right after Delete.
type outbox struct {
	pub  shim.Publisher
	ch   chan outItem
	done chan struct{}

	mu     sync.Mutex
	closed bool
}

type outItem struct {
	ctx   context.Context
	topic string
	ev    events.Event
}

func newOutbox(pub shim.Publisher) *outbox {
	o := &outbox{pub: pub, ch: make(chan outItem, 1024), done: make(chan struct{})}
	go o.run()
	return o
}

func (o *outbox) run() {
	defer close(o.done)
	for it := range o.ch {
		o.publish(it)
	}
}

func (o *outbox) publish(it outItem) {
	if err := o.pub.Publish(it.ctx, it.topic, it.ev); err != nil {
		log.G(it.ctx).WithError(err).WithField("topic", it.topic).Warn("vordr: publish event")
	}
}

// send queues an event; after close it publishes at once. The request's
// context ends with the request: the event keeps its values, not its end.
func (o *outbox) send(ctx context.Context, topic string, ev events.Event) {
	it := outItem{ctx: context.WithoutCancel(ctx), topic: topic, ev: ev}
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		o.publish(it)
		return
	}
	// Holding mu while the queue is full makes senders wait their turn
	// (back-pressure), and keeps close from closing ch under a sender.
	o.ch <- it
	o.mu.Unlock()
}

// close publishes what is queued, until ctx ends.
func (o *outbox) close(ctx context.Context) error {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.ch)
	}
	o.mu.Unlock()
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

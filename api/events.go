package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/eventlog"
	"github.com/vordr-project/vordr/monitor"
)

// maxEvents bounds a non-streaming events answer; the newest are kept.
const maxEvents = 5000

// eventsDir is where the shim writes event logs under the runtime config.
func eventsDir(rc *config.Config) string {
	if rc != nil && rc.Events.Dir != "" {
		return rc.Events.Dir
	}
	return eventlog.DefaultDir
}

// gateRecord reads the gate's decision from the container's event log.
func (s *Server) gateRecord(rc *config.Config, id string) *Verification {
	var v *Verification
	errStop := errors.New("stop")
	_ = eventlog.Read(eventsDir(rc), s.cfg.Namespace, id, func(line []byte) error {
		var rec struct {
			Kind string        `json:"kind"`
			Gate *Verification `json:"gate"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Kind == "gate" && rec.Gate != nil {
			v = rec.Gate
			return errStop
		}
		return nil
	})
	return v
}

// eventFilter selects event log lines.
type eventFilter struct {
	alertsOnly  bool
	minSeverity monitor.Severity
	kind        string
}

func (f eventFilter) match(line []byte) bool {
	var e struct {
		Kind  string `json:"kind"`
		Alert *struct {
			Severity monitor.Severity `json:"severity"`
		} `json:"alert"`
	}
	if json.Unmarshal(line, &e) != nil {
		return false
	}
	if f.kind != "" && e.Kind != f.kind {
		return false
	}
	if f.alertsOnly || f.minSeverity > 0 {
		if e.Alert == nil {
			return false
		}
		return e.Alert.Severity >= f.minSeverity
	}
	return true
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, id Identity) error {
	return s.serveEvents(w, r, id, false)
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request, id Identity) error {
	return s.serveEvents(w, r, id, true)
}

// serveEvents answers /events and /alerts: the event logs of the API's
// containers, filtered by ?container=, ?severity= (alerts at or above it),
// ?kind=; with ?follow=1 as server-sent events until the client goes.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request, id Identity, alertsOnly bool) error {
	q := r.URL.Query()
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	if follow {
		// A stream holds goroutines and a connection for as long as the
		// client wants: bounded per key, as requests are by the limiter.
		release, ok := s.openStream(id.KeyID)
		if !ok {
			w.Header().Set("Retry-After", "10")
			return apiError(http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf("key %s already holds %d event streams (limits.max_streams); close one", id.KeyID, s.cfg.Limits.MaxStreams))
		}
		defer release()
	}
	f := eventFilter{alertsOnly: alertsOnly, kind: q.Get("kind")}
	if sev := q.Get("severity"); sev != "" {
		if err := f.minSeverity.UnmarshalText([]byte(sev)); err != nil {
			return apiError(http.StatusBadRequest, CodeInvalidArgument, "severity: "+err.Error())
		}
	}
	ctx := s.ns(r.Context())
	rc, err := s.cfg.runtimeConfig()
	if err != nil {
		return fmt.Errorf("the operator's runtime config: %w", err)
	}
	dir := eventsDir(rc)
	one := q.Get("container")
	ids := func() ([]string, error) {
		if one != "" {
			return []string{one}, nil
		}
		return s.ownedIDs(ctx)
	}
	if one != "" {
		if _, err := s.load(ctx, one); err != nil {
			return err
		}
	}
	if !follow {
		out, err := s.readEvents(ctx, dir, f, ids)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"events": out})
		return nil
	}
	// A stream outlives the request's check: revoking the key or the
	// token's expiry must end it too, at the next keepalive.
	recheck := func() error { _, err := s.authenticate(r, ScopeRead); return err }
	return s.streamEvents(ctx, w, dir, f, one, ids, recheck)
}

// readEvents returns the matching lines of the event logs of ids(), at
// most maxEvents, the newest.
func (s *Server) readEvents(ctx context.Context, dir string, f eventFilter, ids func() ([]string, error)) ([]json.RawMessage, error) {
	list, err := ids()
	if err != nil {
		return nil, err
	}
	out := []json.RawMessage{}
	for _, cid := range list {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := eventlog.Read(dir, s.cfg.Namespace, cid, func(line []byte) error {
			if f.match(line) {
				out = append(out, json.RawMessage(slices.Clone(line)))
				if len(out) > maxEvents {
					out = out[1:]
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// openStream counts an event stream of key; release ends it.
func (s *Server) openStream(key string) (release func(), ok bool) {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streams[key] >= s.cfg.Limits.MaxStreams {
		return nil, false
	}
	s.streams[key]++
	return func() {
		s.streamsMu.Lock()
		defer s.streamsMu.Unlock()
		if s.streams[key]--; s.streams[key] == 0 {
			delete(s.streams, key)
		}
	}, true
}

// ownedIDs lists the ids of the containers the API made.
func (s *Server) ownedIDs(ctx context.Context) ([]string, error) {
	recs, err := s.client.ContainerService().List(ctx, ownerFilter())
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(recs))
	for _, c := range recs {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// streamEvents sends matching log lines as server-sent events. Without a
// container it follows every API container, and picks up new ones as they
// appear.
func (s *Server) streamEvents(ctx context.Context, w http.ResponseWriter, dir string, f eventFilter, one string, ids func() ([]string, error), recheck func() error) error {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// A comment opens the stream at once, so a client knows it is live.
	var mu sync.Mutex
	send := func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send([]byte(": vordr events\n\n")); err != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	following := map[string]bool{}
	var seq uint64
	rescan := func() {
		list, err := ids()
		if err != nil {
			return
		}
		for _, cid := range list {
			if following[cid] {
				continue
			}
			following[cid] = true
			wg.Add(1)
			go func(cid string) {
				defer wg.Done()
				_ = eventlog.Follow(ctx, dir, s.cfg.Namespace, cid, 100*time.Millisecond, func(line []byte) error {
					if !f.match(line) {
						return nil
					}
					mu.Lock()
					seq++
					n := seq
					mu.Unlock()
					if err := send(fmt.Appendf(nil, "id: %d\nevent: vordr\ndata: %s\n\n", n, line)); err != nil {
						cancel()
						return err
					}
					return nil
				})
			}(cid)
		}
	}
	rescan()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if one == "" {
				rescan()
			}
		case <-keepalive.C:
			if err := recheck(); err != nil {
				_ = send([]byte("event: error\ndata: {\"error\":{\"code\":\"unauthenticated\",\"message\":\"credentials revoked or expired; the stream ends\"}}\n\n"))
				return nil
			}
			if err := send([]byte(": keepalive\n\n")); err != nil {
				return nil
			}
		}
	}
}

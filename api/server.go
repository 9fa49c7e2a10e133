// Package api is `vordr serve`: an authenticated HTTP API over containerd
// that runs containers only under io.containerd.vordr.v1, so every run goes
// through the verification gate and the operator's profile. containerd owns
// every container's state; the API keeps none of its own beyond the
// containers' output files.
package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves the API for one containerd namespace.
type Server struct {
	// bodyLimit overrides limits.max_body_bytes per route pattern (a
	// bundle upload is larger than any JSON request).
	bodyLimit map[string]int64
	cfg       *Config
	client    *containerd.Client
	keys      *KeyStore
	tokens    *tokenVerifier // nil without [oidc]
	limiter   *Limiter
	log       *slog.Logger
	handler   http.Handler

	mcpServer *mcp.Server

	routes []routeInfo

	// uploads bounds the bundle uploads verified at once, node-wide: each
	// may be max_bundle_bytes on disk and is hashed in full.
	uploads   chan struct{}
	execs     chan struct{} // execs running at once (maxExecs)
	streamsMu sync.Mutex
	streams   map[string]int // open event streams per key

	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	limited  prometheus.Counter
	authFail *prometheus.CounterVec
}

// New returns a server over client (which it does not close).
func New(cfg *Config, client *containerd.Client, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{
		cfg:     cfg,
		client:  client,
		keys:    OpenKeyStore(cfg.Keys),
		limiter: NewLimiter(cfg.Limits.Rate, cfg.Limits.Burst),
		log:     logger,
		reg:     prometheus.NewRegistry(),
		streams: map[string]int{},
	}
	// Bundle uploads a crash left behind.
	if old, _ := filepath.Glob(filepath.Join(cfg.StateDir, uploadPattern)); len(old) > 0 {
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	// The key file is checked now, so a bad one fails at start and not at
	// the first request.
	if _, err := s.keys.List(); err != nil {
		return nil, err
	}
	if cfg.OIDC.enabled() {
		v, err := newTokenVerifier(cfg.OIDC)
		if err != nil {
			return nil, fmt.Errorf("serve config %s: %w", cfg.Source, err)
		}
		s.tokens = v
	}
	if _, err := cfg.runtimeConfig(); err != nil {
		return nil, fmt.Errorf("the vordr runtime config containers would run under: %w", err)
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vordr_api_requests_total", Help: "API requests by route and HTTP status.",
	}, []string{"route", "status"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vordr_api_request_duration_seconds", Help: "API request durations by route.",
		Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	s.limited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vordr_api_rate_limited_total", Help: "Requests answered 429 by the per-identity rate limit.",
	})
	s.authFail = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vordr_api_auth_failures_total", Help: "Requests refused 401, by reason.",
	}, []string{"reason"})
	s.reg.MustRegister(s.requests, s.duration, s.limited, s.authFail,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	s.public(mux, "GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	s.public(mux, "GET /readyz", http.HandlerFunc(s.readyz))
	s.public(mux, "GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	s.public(mux, "GET /openapi.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	}))

	s.route(mux, "GET /api/v1/containers", ScopeRead, s.listContainers)
	s.route(mux, "GET /api/v1/containers/{id}", ScopeRead, s.getContainer)
	s.route(mux, "POST /api/v1/containers", ScopeRun, s.runContainer)
	s.route(mux, "POST /api/v1/containers/{id}/start", ScopeRun, s.startContainer)
	s.route(mux, "POST /api/v1/containers/{id}/stop", ScopeRun, s.stopContainer)
	s.route(mux, "DELETE /api/v1/containers/{id}", ScopeRun, s.deleteContainer)
	s.route(mux, "POST /api/v1/containers/{id}/exec", ScopeRun, s.execContainer)
	s.route(mux, "GET /api/v1/containers/{id}/logs", ScopeRead, s.containerLogs)
	s.route(mux, "GET /api/v1/containers/{id}/explain", ScopeRead, s.explainContainer)
	s.route(mux, "GET /api/v1/images", ScopeRead, s.listImages)
	s.route(mux, "POST /api/v1/images/pull", ScopeRun, s.pullImage)
	s.route(mux, "GET /api/v1/policies", ScopeRead, s.listChoices)
	s.routeAudit(mux, "POST /api/v1/verify", ScopeRead, false, s.verifyImage)
	s.bodyLimit = map[string]int64{"POST /api/v1/verify/bundle": s.cfg.Limits.MaxBundleBytes}
	s.uploads = make(chan struct{}, maxUploads)
	s.execs = make(chan struct{}, maxExecs)
	s.routeAudit(mux, "POST /api/v1/verify/bundle", ScopeRead, false, s.verifyBundle)
	s.route(mux, "GET /api/v1/events", ScopeRead, s.events)
	s.route(mux, "GET /api/v1/alerts", ScopeRead, s.alerts)
	// MCP over streamable HTTP, behind the same keys, limits and body
	// bound; each tool call checks its own scope. Stateless: no session
	// state is kept between requests, so a key revoked mid-session stops
	// at the next request.
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcpServer },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: logger})
	s.mcpServer = s.NewMCP("")
	s.routeAudit(mux, "POST /mcp", ScopeRead, false, func(w http.ResponseWriter, r *http.Request, _ Identity) error {
		mcpHandler.ServeHTTP(w, r)
		return nil
	})
	s.handler = s.instrument(jsonMuxErrors(mux))
	return s, nil
}

// ns puts the server's containerd namespace on ctx.
func (s *Server) ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, s.cfg.Namespace)
}

// Handler is the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Keys is the server's key store.
func (s *Server) Keys() *KeyStore { return s.keys }

// Registry holds the server's metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// bodyReadTimeout bounds reading a write request's body.
const bodyReadTimeout = 30 * time.Second

type handlerFunc func(w http.ResponseWriter, r *http.Request, id Identity) error

// routeInfo is a registered route and the scope it needs ("": none),
// checked against the OpenAPI document by the tests.
type routeInfo struct{ pattern, scope string }

// openAPI is the API's OpenAPI document, served at /openapi.json.
//
//go:embed openapi.json
var openAPI []byte

// public registers an unauthenticated route.
func (s *Server) public(mux *http.ServeMux, pattern string, h http.Handler) {
	s.routes = append(s.routes, routeInfo{pattern, ""})
	mux.Handle(pattern, h)
}

// route registers an authenticated route needing scope; every route but
// GET ones writes, and is audited.
func (s *Server) route(mux *http.ServeMux, pattern, scope string, h handlerFunc) {
	s.routeAudit(mux, pattern, scope, !strings.HasPrefix(pattern, "GET "), h)
}

// routeAudit is route with the audit line chosen by write (MCP requests
// are audited per tool call instead).
func (s *Server) routeAudit(mux *http.ServeMux, pattern, scope string, write bool, h handlerFunc) {
	s.routes = append(s.routes, routeInfo{pattern, scope})
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		id, err := s.authenticate(r, scope)
		if err == nil {
			if ok, wait := s.limiter.Allow(id.KeyID); !ok {
				s.limited.Inc()
				w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
				err = apiError(http.StatusTooManyRequests, CodeRateLimited,
					fmt.Sprintf("rate limit of key %s exceeded (%g requests/s, burst %d); retry after the Retry-After header's seconds", id.KeyID, s.cfg.Limits.Rate, s.cfg.Limits.Burst))
			}
		}
		if err == nil {
			if r.Method != http.MethodGet {
				// A body must arrive in reasonable time (a slow sender
				// would hold a connection); event streams, GETs, are not
				// bounded.
				_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
			}
			limit := s.cfg.Limits.MaxBodyBytes
			if l, ok := s.bodyLimit[pattern]; ok {
				limit = l
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			if r.ContentLength > limit {
				err = tooLarge(limit)
			} else {
				r = r.WithContext(s.ns(r.Context()))
				err = h(w, r, id)
			}
		}
		if err != nil {
			ae := fromErr(err)
			if ae.Status >= 500 {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "identity", id.KeyID, "error", err)
			}
			writeError(w, ae)
		}
		if write {
			// One audit line per write, whatever its outcome, naming the
			// identity (empty when authentication failed).
			status := http.StatusOK
			if rec, ok := w.(*recorder); ok {
				status = rec.status
			}
			attrs := []any{"identity", id.KeyID, "method", r.Method, "path", r.URL.Path, "status", status, "remote", r.RemoteAddr}
			if id.Name != "" {
				attrs = append(attrs, "key_name", id.Name)
			}
			if err != nil {
				attrs = append(attrs, "error", fromErr(err).Message)
			}
			s.log.Info("audit", attrs...)
		}
	})
}

func tooLarge(max int64) *Error {
	return apiError(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("request body larger than %d bytes (limits.max_body_bytes)", max))
}

// identify returns who a bearer credential is: an API key, or with [oidc]
// a JWT of the issuer.
func (s *Server) identify(ctx context.Context, bearer string) (Identity, error) {
	if s.tokens != nil && looksLikeJWT(bearer) {
		return s.tokens.verify(ctx, bearer)
	}
	return s.keys.Authenticate(bearer)
}

// authenticate checks the bearer credential and its scope.
func (s *Server) authenticate(r *http.Request, scope string) (Identity, error) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	if h != "" && !ok {
		secret = "malformed"
	}
	id, err := s.identify(r.Context(), strings.TrimSpace(secret))
	if err != nil {
		var reason string
		switch {
		case errors.Is(err, ErrNoCredentials):
			reason = "none"
		case errors.Is(err, ErrKeyRevoked):
			reason = "revoked"
		case errors.Is(err, ErrKeyExpired):
			reason = "expired"
		case errors.Is(err, ErrBadKey):
			reason = "unknown"
		case errors.Is(err, ErrBadToken):
			reason = "token"
		default:
			// The key file or the issuer's key set is unreadable: the
			// operator's problem.
			s.log.Error("credentials cannot be checked", "error", err)
			return Identity{}, apiError(http.StatusServiceUnavailable, CodeUnavailable, "the server cannot check credentials now (API key file or OIDC key set); ask the operator")
		}
		s.authFail.WithLabelValues(reason).Inc()
		return Identity{}, apiError(http.StatusUnauthorized, CodeUnauthenticated, err.Error())
	}
	k := Key{Scopes: id.Scopes}
	if !k.Allows(scope) {
		return id, apiError(http.StatusForbidden, CodeForbidden, fmt.Sprintf("%s has scopes %s; this request needs %q", id.KeyID, strings.Join(id.Scopes, ","), scope))
	}
	return id, nil
}

// decodeJSON reads exactly one JSON object into v, refusing unknown fields:
// a request naming a field the API does not offer (mounts, privileged, a
// raw spec) is refused, not silently ignored.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return apiError(http.StatusBadRequest, CodeMalformed, "request body is not a valid JSON object of this route: "+err.Error())
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	serving, err := s.client.IsServing(ctx)
	if err != nil || !serving {
		msg := "containerd is not serving"
		if err != nil {
			msg = fmt.Sprintf("containerd at %s is not reachable: %v", s.cfg.Containerd, err)
		}
		writeError(w, apiError(http.StatusServiceUnavailable, CodeUnavailable, msg))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// jsonMuxErrors answers what the mux itself refuses (no route, a method
// the route does not have) with the API's JSON errors, not plain text.
func jsonMuxErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Let the mux decide (404 or 405 with Allow), keep its headers,
		// replace its body.
		probe := &probeWriter{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		status := probe.status
		if status == 0 || status < 400 {
			// A redirect (a path to clean): follow the mux.
			mux.ServeHTTP(w, r)
			return
		}
		code, msg := CodeNotFound, fmt.Sprintf("no route %s %s; see docs/api.md or /openapi.json", r.Method, r.URL.Path)
		if status == http.StatusMethodNotAllowed {
			code, msg = CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, probe.header.Get("Allow"))
		}
		writeError(w, apiError(status, code, msg))
	})
}

// probeWriter records what a handler answers, and discards the body.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *probeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// recorder keeps the status for metrics and the audit log.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush (server-sent events).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		s.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// testServer is a server without containerd: enough for everything that
// is decided before containerd is asked (auth, scopes, limits, decoding).
func testServer(t *testing.T, limits Limits) (*Server, *KeyStore) {
	t.Helper()
	dir := t.TempDir()
	rc := filepath.Join(dir, "runtime.toml")
	if err := os.WriteFile(rc, []byte("profile = \"balanced\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]byte(`state_dir = "`+filepath.Join(dir, "state")+`"
runtime_config = "`+rc+`"
keys = "`+filepath.Join(dir, "keys.json")+`"
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	if limits.Rate != 0 {
		cfg.Limits.Rate, cfg.Limits.Burst = limits.Rate, limits.Burst
	}
	if limits.MaxBodyBytes != 0 {
		cfg.Limits.MaxBodyBytes = limits.MaxBodyBytes
	}
	s, err := New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s, s.Keys()
}

func do(t *testing.T, h http.Handler, method, path, secret, body string) (*httptest.ResponseRecorder, errorBody) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var eb errorBody
	if rec.Code >= 400 {
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
			t.Fatalf("%s %s: status %d with a body that is not a JSON error: %q", method, path, rec.Code, rec.Body.String())
		}
	}
	return rec, eb
}

func TestAuth(t *testing.T) {
	s, ks := testServer(t, Limits{})
	h := s.Handler()
	_, read, _ := ks.Create(CreateOptions{Scopes: []string{ScopeRead}})
	_, run, _ := ks.Create(CreateOptions{Scopes: []string{ScopeRun}})
	revokedKey, revoked, _ := ks.Create(CreateOptions{Scopes: []string{ScopeAdmin}})
	if err := ks.Revoke(revokedKey.ID); err != nil {
		t.Fatal(err)
	}
	_, expired, _ := ks.Create(CreateOptions{Scopes: []string{ScopeAdmin}, TTL: time.Nanosecond})

	for _, c := range []struct {
		name, method, path, secret, body string
		status                           int
		code                             string
	}{
		{"no credentials", "GET", "/api/v1/containers", "", "", 401, CodeUnauthenticated},
		{"garbage", "GET", "/api/v1/containers", "nope", "", 401, CodeUnauthenticated},
		{"revoked", "GET", "/api/v1/containers", revoked, "", 401, CodeUnauthenticated},
		{"expired", "GET", "/api/v1/containers", expired, "", 401, CodeUnauthenticated},
		{"read cannot run", "POST", "/api/v1/containers", read, `{"image":"x"}`, 403, CodeForbidden},
		{"read cannot stop", "POST", "/api/v1/containers/a/stop", read, ``, 403, CodeForbidden},
		{"read cannot delete", "DELETE", "/api/v1/containers/a", read, ``, 403, CodeForbidden},
		{"malformed", "POST", "/api/v1/containers", run, `{"image":`, 400, CodeMalformed},
		{"two objects", "POST", "/api/v1/containers", run, `{"image":"a"}{"image":"b"}`, 400, CodeMalformed},
		{"raw spec field", "POST", "/api/v1/containers", run, `{"image":"a","privileged":true}`, 400, CodeMalformed},
		{"mounts", "POST", "/api/v1/containers", run, `{"image":"a","mounts":[{"source":"/"}]}`, 400, CodeMalformed},
		{"no image", "POST", "/api/v1/containers", run, `{}`, 400, CodeInvalidArgument},
		{"bad name", "POST", "/api/v1/containers", run, `{"image":"a","name":"../x"}`, 400, CodeInvalidArgument},
		{"bad env", "POST", "/api/v1/containers", run, `{"image":"a","env":["=x"]}`, 400, CodeInvalidArgument},
		{"profile path", "POST", "/api/v1/containers", run, `{"image":"a","profile":"/etc/passwd"}`, 400, CodeInvalidArgument},
		{"profile not offered", "POST", "/api/v1/containers", run, `{"image":"a","profile":"dev"}`, 403, CodeRefused},
		{"oversize", "POST", "/api/v1/containers", run, `{"image":"` + strings.Repeat("a", 70<<10) + `"}`, 413, CodeBodyTooLarge},
		{"pull from a registry not allowed", "POST", "/api/v1/images/pull", run, `{"ref":"evil.example/x:1"}`, 403, CodeForbidden},
		{"pull of a bad reference", "POST", "/api/v1/images/pull", run, `{"ref":"UPPER/Case:!!"}`, 400, CodeInvalidArgument},
		{"read key cannot pull", "POST", "/api/v1/images/pull", read, `{"ref":"x"}`, 403, CodeForbidden},
		{"unknown route", "GET", "/api/v1/nope", run, "", 404, CodeNotFound},
		{"unknown route outside the API", "GET", "/nope", "", "", 404, CodeNotFound},
		{"method the route lacks", "PUT", "/api/v1/containers", run, "", 405, CodeMethodNotAllowed},
		{"GET on MCP", "GET", "/mcp", run, "", 405, CodeMethodNotAllowed},
		{"bad severity", "GET", "/api/v1/events?severity=huge", read, "", 400, CodeInvalidArgument},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec, eb := do(t, h, c.method, c.path, c.secret, c.body)
			if rec.Code != c.status || eb.Error.Code != c.code {
				t.Errorf("%s %s: %d %q (%s), want %d %q", c.method, c.path, rec.Code, eb.Error.Code, eb.Error.Message, c.status, c.code)
			}
			if (rec.Code == 401) != (rec.Header().Get("WWW-Authenticate") != "") {
				t.Errorf("%d with WWW-Authenticate %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	// Unauthenticated routes.
	if rec, _ := do(t, h, "GET", "/healthz", "", ""); rec.Code != 200 {
		t.Errorf("/healthz: %d", rec.Code)
	}
	rec, _ := do(t, h, "GET", "/metrics", "", "")
	for _, want := range []string{
		`vordr_api_auth_failures_total{reason="revoked"} 1`,
		`vordr_api_requests_total{route="GET /healthz",status="200"} 1`,
		`vordr_api_requests_total{route="POST /api/v1/containers",status="413"} 1`,
		`vordr_api_requests_total{route="unmatched",status="405"} 2`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `vordr_api_auth_failures_total{reason="revoked"} 1`) {
		t.Errorf("/metrics: %d\n%s", rec.Code, rec.Body.String())
	}
}

func TestRateLimit(t *testing.T) {
	s, ks := testServer(t, Limits{Rate: 0.01, Burst: 2})
	h := s.Handler()
	_, a, _ := ks.Create(CreateOptions{Scopes: []string{ScopeRun}})
	_, b, _ := ks.Create(CreateOptions{Scopes: []string{ScopeRun}})
	for range 2 {
		if rec, _ := do(t, h, "POST", "/api/v1/containers", a, `{`); rec.Code != 400 {
			t.Fatalf("within the burst: %d", rec.Code)
		}
	}
	rec, eb := do(t, h, "POST", "/api/v1/containers", a, `{`)
	if rec.Code != 429 || eb.Error.Code != CodeRateLimited {
		t.Fatalf("over the limit: %d %+v", rec.Code, eb)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "100" {
		t.Errorf("Retry-After %q, want 100 (one token at 0.01/s)", ra)
	}
	if rec, _ := do(t, h, "POST", "/api/v1/containers", b, `{`); rec.Code != 400 {
		t.Errorf("another key was limited: %d", rec.Code)
	}
	// Failed authentication does not spend a key's tokens.
	if rec, _ := do(t, h, "GET", "/api/v1/containers", "", ""); rec.Code != 401 {
		t.Errorf("no credentials: %d", rec.Code)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(nil, "empty")
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket != DefaultSocket || c.Namespace != DefaultNamespace || c.Limits.MaxBodyBytes != DefaultMaxBodyBytes || c.Limits.Rate != DefaultRate {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []string{
		`sockett = "/x"`,
		"[tcp]\naddress = \":8443\"\n",
		"[limits]\nstop_timeout = \"soon\"\n",
	} {
		if _, err := ParseConfig([]byte(bad), "bad"); err == nil {
			t.Errorf("ParseConfig(%q) accepted", bad)
		}
	}
}

func TestReadTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte("a\nb\nc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]string{-1: "a\nb\nc\n", 0: "", 1: "c\n", 2: "b\nc\n", 5: "a\nb\nc\n"} {
		got, end, err := readTail(p, n, 1<<20)
		if err != nil || string(got) != want || end != 6 {
			t.Errorf("tail %d = %q, %d, %v; want %q, 6", n, got, end, err, want)
		}
	}
}

func TestStreamBound(t *testing.T) {
	s, _ := testServer(t, Limits{})
	s.cfg.Limits.MaxStreams = 2
	r1, ok1 := s.openStream("a")
	_, ok2 := s.openStream("a")
	if _, ok3 := s.openStream("a"); !ok1 || !ok2 || ok3 {
		t.Fatalf("streams of one key: %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := s.openStream("b"); !ok {
		t.Error("another key was bounded by a's streams")
	}
	r1()
	if _, ok := s.openStream("a"); !ok {
		t.Error("a released stream was not given back")
	}
}

func TestFromErr(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("x: %w", errdefs.ErrNotFound), 404, CodeNotFound},
		{fmt.Errorf("x: %w", errdefs.ErrAlreadyExists), 409, CodeAlreadyExists},
		{fmt.Errorf("x: %w", errdefs.ErrInvalidArgument), 400, CodeInvalidArgument},
		{fmt.Errorf("x: %w", errdefs.ErrFailedPrecondition), 403, CodeRefused},
		// The gate's refusal wraps a NotFound cause under PermissionDenied.
		{fmt.Errorf("refused: %w: %w", fmt.Errorf("no evidence: %w", errdefs.ErrNotFound), errdefs.ErrPermissionDenied), 403, CodeRefused},
		{fmt.Errorf("x: %w", errdefs.ErrUnavailable), 503, CodeUnavailable},
		{context.DeadlineExceeded, 504, CodeTimeout},
		{errors.New("boom"), 500, CodeInternal},
		{apiError(418, "teapot", "short and stout"), 418, "teapot"},
	} {
		e := fromErr(c.err)
		if e.Status != c.status || e.Code != c.code {
			t.Errorf("fromErr(%v) = %d %s, want %d %s", c.err, e.Status, e.Code, c.status, c.code)
		}
	}
	if m := cleanMessage("gate refused: image x\npermission denied\npermission denied"); m != "gate refused: image x" {
		t.Errorf("cleanMessage: %q", m)
	}
	if m := cleanMessage("line one\n" + strings.Repeat("a long second line that is kept ", 3)); !strings.Contains(m, "second") {
		t.Errorf("cleanMessage dropped a real line: %q", m)
	}
}

// TestReadyz: /readyz says 503 when containerd cannot be reached, and
// /healthz still 200.
func TestReadyz(t *testing.T) {
	s, _ := testServer(t, Limits{})
	sock := filepath.Join(t.TempDir(), "none.sock")
	c, err := containerd.New(sock, containerd.WithTimeout(200*time.Millisecond))
	if err != nil {
		t.Skipf("containerd client refuses a missing socket at once (%v); /readyz is covered by the integration tests", err)
	}
	defer c.Close()
	s.client = c
	s.cfg.Containerd = sock
	rec, eb := do(t, s.Handler(), "GET", "/readyz", "", "")
	if rec.Code != 503 || eb.Error.Code != CodeUnavailable || !strings.Contains(eb.Error.Message, sock) {
		t.Errorf("/readyz without containerd: %d %+v", rec.Code, eb)
	}
	if rec, _ := do(t, s.Handler(), "GET", "/healthz", "", ""); rec.Code != 200 {
		t.Errorf("/healthz: %d", rec.Code)
	}
}

func TestChoices(t *testing.T) {
	s, ks := testServer(t, Limits{})
	_, read, _ := ks.Create(CreateOptions{Scopes: []string{ScopeRead}})
	rec, _ := do(t, s.Handler(), "GET", "/api/v1/policies", read, "")
	var c Choices
	if err := json.Unmarshal(rec.Body.Bytes(), &c); rec.Code != 200 || err != nil {
		t.Fatalf("%d %s %v", rec.Code, rec.Body, err)
	}
	// balanced by the runtime config: a caller may tighten, not loosen.
	if c.DefaultProfile != "balanced" || strings.Join(c.Profiles, ",") != "balanced,hardened,strict" || len(c.Policies) != 0 {
		t.Errorf("choices %+v", c)
	}
}

// TestSampleConfig: the serve.toml that make install puts in /etc/vordr
// parses.
func TestSampleConfig(t *testing.T) {
	data, err := os.ReadFile("../packaging/etc/vordr/serve.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(data, "packaging/etc/vordr/serve.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket != DefaultSocket || c.Keys != DefaultKeysPath || c.OIDC.enabled() || len(c.Pull.Registries) != 0 || c.TCP.Address != "" {
		t.Errorf("sample config %+v", c)
	}
}

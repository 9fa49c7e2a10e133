//go:build linux

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/vordr-project/vordr/api"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/monitor"
)

// serveEnv is a `vordr serve` process (the binary of this tree) over a
// private containerd.
type serveEnv struct {
	t      *testing.T
	d      *daemon.Daemon
	bin    string
	config string
	socket string
	client *http.Client
	stderr *syncBuffer
}

// startServe writes a serve config (runtime config: the gate tests' one,
// strict by default) and starts `vordr serve` with it. The process is
// stopped by SIGTERM when the test ends, and must remove its socket.
func startServe(t *testing.T, d *daemon.Daemon, limits string) *serveEnv {
	t.Helper()
	bin := vordrBinary(t)
	// Socket paths are limited to 108 bytes: not under t.TempDir().
	dir, err := os.MkdirTemp("", "vsrv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	runtimeConfig := filepath.Join(dir, "runtime.toml")
	if err := os.WriteFile(runtimeConfig, []byte(gateConfig(t, d, "strict")), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &serveEnv{t: t, d: d, bin: bin, config: filepath.Join(dir, "serve.toml"), socket: filepath.Join(dir, "api.sock"), stderr: &syncBuffer{}}
	cfg := fmt.Sprintf(`socket = %q
containerd = %q
namespace = %q
runtime_config = %q
keys = %q
state_dir = %q
%s
`, s.socket, d.Address, d.Namespace, runtimeConfig, filepath.Join(dir, "keys.json"), filepath.Join(dir, "state"), limits)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", s.config)
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		stopStart := time.Now()
		defer func() { t.Logf("vordr serve stopped in %v", time.Since(stopStart)) }()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("vordr serve exited with %v after SIGTERM\n%s", err, s.stderr.String())
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("vordr serve did not stop within 15s of SIGTERM\n%s", s.stderr.String())
		}
		if _, err := os.Lstat(s.socket); err == nil {
			t.Errorf("vordr serve left its socket %s", s.socket)
		}
	})
	s.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", s.socket)
		},
	}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("vordr serve exited: %v\n%s", err, s.stderr.String())
		default:
		}
		if resp, err := s.client.Get("http://vordr/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("vordr serve did not answer /healthz within 30s\n%s", s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	fi, err := os.Stat(s.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("API socket mode %v, want 0600", fi.Mode().Perm())
	}
	return s
}

// key creates an API key with the CLI and returns its id and secret.
func (s *serveEnv) key(scopes, ttl string) (id, secret string) {
	s.t.Helper()
	args := []string{"serve", "keys", "create", "--config", s.config, "--scope", scopes, "--json", "--name", s.t.Name()}
	if ttl != "" {
		args = append(args, "--ttl", ttl)
	}
	out, errOut, code := runCmd(s.t, s.bin, args...)
	if code != 0 {
		s.t.Fatalf("vordr serve keys create: exit %d: %s", code, errOut)
	}
	var r struct {
		Key    api.Key `json:"key"`
		Secret string  `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		s.t.Fatalf("keys create output %q: %v", out, err)
	}
	return r.Key.ID, r.Secret
}

type apiResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r apiResponse) errCode() (code, msg string) {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code, e.Error.Message
}

func (s *serveEnv) do(method, path, secret string, body io.Reader) apiResponse {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://vordr"+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return apiResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

func (s *serveEnv) run(secret string, req api.RunRequest) apiResponse {
	s.t.Helper()
	b, _ := json.Marshal(req)
	return s.do("POST", "/api/v1/containers", secret, bytes.NewReader(b))
}

// containerdState counts the namespace's containers and snapshots: what a
// refused request must leave unchanged.
func containerdState(t *testing.T, e *env) (containers, snaps int) {
	t.Helper()
	recs, err := e.c.ContainerService().List(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.c.SnapshotService("overlayfs").Walk(e.ctx, func(context.Context, snapshots.Info) error {
		snaps++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return len(recs), snaps
}

// deleteAfter removes a container made through the API when the test ends,
// through the API (force), so nothing is left even when the test failed,
// and waits for its shim to exit: a shim still tearing down its guard when
// the daemon stops would count as a leak.
func (s *serveEnv) deleteAfter(secret, id string) {
	s.t.Cleanup(func() {
		r := s.do("DELETE", "/api/v1/containers/"+id+"?force=1", secret, nil)
		if r.status != http.StatusNoContent && r.status != http.StatusNotFound {
			s.t.Errorf("delete %s: %d %s", id, r.status, r.body)
		}
		deadline := time.Now().Add(30 * time.Second)
		for shimPidOf(s.d, id) != 0 {
			if time.Now().After(deadline) {
				s.t.Errorf("the shim of %s is still running 30s after its container was deleted", id)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// testIssuer signs OIDC tokens for the server's [oidc] section.
type testIssuer struct {
	key    *ecdsa.PrivateKey
	config string
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "it", Algorithm: string(jose.ES256), Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return &testIssuer{key: k, config: fmt.Sprintf("[oidc]\nissuer = \"https://issuer.test\"\naudience = \"vordr-it\"\njwks_file = %q\n", p)}
}

// token signs valid claims with over laid on them.
func (i *testIssuer) token(t *testing.T, over map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: i.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "it"))
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": "https://issuer.test", "aud": "vordr-it", "sub": "agent", "exp": time.Now().Add(time.Hour).Unix(), "scope": "run"}
	for k, v := range over {
		claims[k] = v
	}
	s, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestServe drives `vordr serve` over the shared containerd with the vordr
// shim: runs, refusals, authentication, limits and event streaming.
func TestServe(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	issuer := newTestIssuer(t)
	srv := startServe(t, shared, "[limits]\nrate = 50\nburst = 50\nmax_body_bytes = 4096\nmax_streams = 1\nmax_log_bytes = 65536\n"+issuer.config)
	runID, runKey := srv.key("run", "")
	_, readKey := srv.key("read", "")

	suffix := strconv.Itoa(os.Getpid())
	signedRef := "docker.io/vordr/serve-signed:" + suffix
	importSigned(t, e, signedRef, "serve-signed")
	plainRef := "docker.io/vordr/serve-plain:" + suffix
	importPlain(t, e, plainRef, "serve-plain")

	t.Run("health", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			if r := srv.do("GET", p, "", nil); r.status != 200 {
				t.Errorf("GET %s: %d %s", p, r.status, r.body)
			}
		}
	})

	t.Run("choices", func(t *testing.T) {
		r := srv.do("GET", "/api/v1/policies", readKey, nil)
		var c api.Choices
		if err := json.Unmarshal(r.body, &c); r.status != 200 || err != nil {
			t.Fatalf("%d %s %v", r.status, r.body, err)
		}
		var pols []string
		for _, p := range c.Policies {
			pols = append(pols, p.Name+"="+p.Mode)
		}
		// The gate tests' config: strict by default, permissive and audit
		// offered by loosen.
		if c.DefaultPolicy != "strict" || strings.Join(pols, ",") != "audit=audit,permissive=permissive,strict=strict" || c.DefaultProfile != "balanced" {
			t.Errorf("choices %+v", c)
		}
	})

	t.Run("images", func(t *testing.T) {
		r := srv.do("GET", "/api/v1/images", readKey, nil)
		var out struct{ Images []api.Image }
		if err := json.Unmarshal(r.body, &out); r.status != 200 || err != nil {
			t.Fatalf("%d %s %v", r.status, r.body, err)
		}
		states := map[string]string{}
		for _, img := range out.Images {
			states[img.Name] = img.State
		}
		if states[signedRef] != "verified" || states[plainRef] != "unverified" {
			t.Errorf("states %v", states)
		}
	})

	t.Run("verify", func(t *testing.T) {
		verify := func(req api.VerifyRequest) (apiResponse, api.VerifyResult) {
			b, _ := json.Marshal(req)
			r := srv.do("POST", "/api/v1/verify", readKey, bytes.NewReader(b))
			var res api.VerifyResult
			_ = json.Unmarshal(r.body, &res)
			return r, res
		}
		if r, res := verify(api.VerifyRequest{Image: signedRef}); r.status != 200 || !res.Verified || res.Policy != "strict" || res.Mode != "strict" {
			t.Errorf("signed image: %d %s", r.status, r.body)
		}
		if r, res := verify(api.VerifyRequest{Image: plainRef, Policy: "permissive"}); r.status != 200 || res.Verified || !strings.Contains(res.Message, "no vordr attestations") {
			t.Errorf("plain image: %d %s", r.status, r.body)
		}
		if r, _ := verify(api.VerifyRequest{Image: signedRef, Policy: "nope"}); r.status != 400 {
			t.Errorf("unknown policy: %d %s", r.status, r.body)
		}
		if r, _ := verify(api.VerifyRequest{Image: "docker.io/vordr/none:0"}); r.status != 404 {
			t.Errorf("missing image: %d %s", r.status, r.body)
		}
	})

	t.Run("verified image runs", func(t *testing.T) {
		id := uniqueID(t)
		srv.deleteAfter(runKey, id)
		r := srv.run(runKey, api.RunRequest{Image: signedRef, Name: id, Args: []string{"sh", "-c", "cat /etc/marker; echo $GREETING; exit 3"}, Env: []string{"GREETING=hello"}})
		if r.status != http.StatusCreated {
			t.Fatalf("run: %d %s\n%s", r.status, r.body, srv.stderr.String())
		}
		var c api.Container
		eventually(t, 30*time.Second, func() error {
			r := srv.do("GET", "/api/v1/containers/"+id, readKey, nil)
			if r.status != 200 {
				return fmt.Errorf("get: %d %s", r.status, r.body)
			}
			c = api.Container{}
			if err := json.Unmarshal(r.body, &c); err != nil {
				return err
			}
			if c.Status != "stopped" {
				return fmt.Errorf("status %q, want stopped", c.Status)
			}
			return nil
		})
		if c.ExitCode == nil || *c.ExitCode != 3 {
			t.Errorf("exit code %v, want 3", c.ExitCode)
		}
		if c.Runtime != vordrRuntime || c.Policy != "strict" || c.Profile != "balanced" {
			t.Errorf("view %+v", c)
		}
		if c.Verification == nil || c.Verification.Decision != "verified" || c.Verification.Policy != "strict" {
			t.Errorf("verification %+v", c.Verification)
		}
		// The name is taken until the container is deleted.
		r = srv.run(runKey, api.RunRequest{Image: signedRef, Name: id, Args: []string{"true"}})
		if code, _ := r.errCode(); r.status != http.StatusConflict || code != api.CodeAlreadyExists {
			t.Errorf("second run with the same name: %d %s", r.status, r.body)
		}
		if r := srv.do("GET", "/api/v1/containers/"+id+"/logs", readKey, nil); r.status != 200 || string(r.body) != "serve-signed\nhello\n" {
			t.Errorf("logs: %d %q", r.status, r.body)
		}
		r = srv.do("GET", "/api/v1/containers", readKey, nil)
		if r.status != 200 || !strings.Contains(string(r.body), `"id": "`+id+`"`) {
			t.Errorf("list: %d %s", r.status, r.body)
		}
		// Another run key may see the container but not stop or delete it;
		// an admin key may.
		_, otherKey := srv.key("run", "")
		for _, m := range []struct{ method, path string }{{"POST", "/api/v1/containers/" + id + "/stop"}, {"DELETE", "/api/v1/containers/" + id}} {
			if r := srv.do(m.method, m.path, otherKey, nil); r.status != http.StatusForbidden {
				t.Errorf("%s by another run key: %d %s", m.method, r.status, r.body)
			}
		}
		_, adminKey := srv.key("admin", "")
		if r := srv.do("DELETE", "/api/v1/containers/"+id, adminKey, nil); r.status != http.StatusNoContent {
			t.Fatalf("delete by an admin key: %d %s", r.status, r.body)
		}
		if _, err := e.c.LoadContainer(e.ctx, id); err == nil {
			t.Error("the container is still in containerd after DELETE")
		}
		if r := srv.do("GET", "/api/v1/containers/"+id, readKey, nil); r.status != 404 {
			t.Errorf("get after delete: %d", r.status)
		}
	})

	t.Run("unverified image refused", func(t *testing.T) {
		id := uniqueID(t)
		srv.deleteAfter(runKey, id)
		nc, ns := containerdState(t, e)
		r := srv.run(runKey, api.RunRequest{Image: plainRef, Name: id, Args: []string{"true"}})
		code, msg := r.errCode()
		if r.status != http.StatusForbidden || code != api.CodeRefused {
			t.Fatalf("run of an unverified image: %d %s", r.status, r.body)
		}
		for _, want := range []string{plainRef, "no vordr attestations", "strict"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q does not say %q", msg, want)
			}
		}
		if c, s := containerdState(t, e); c != nc || s != ns {
			t.Errorf("a refused run left containers %d→%d, snapshots %d→%d", nc, c, ns, s)
		}
		// A policy weaker than the operator's default is not offered.
		r = srv.run(runKey, api.RunRequest{Image: plainRef, Name: id, Policy: "nope"})
		if code, msg := r.errCode(); r.status != http.StatusForbidden || code != api.CodeRefused || !strings.Contains(msg, `"nope"`) {
			t.Errorf("unknown policy: %d %s", r.status, r.body)
		}
		// A missing image is a 404 naming it.
		r = srv.run(runKey, api.RunRequest{Image: "docker.io/vordr/none:0", Name: id})
		if code, _ := r.errCode(); r.status != http.StatusNotFound || code != api.CodeNotFound {
			t.Errorf("missing image: %d %s", r.status, r.body)
		}
	})

	t.Run("containers not made through the API are out of reach", func(t *testing.T) {
		id := uniqueID(t)
		e.newImageContainer(id, signedRef, nil, "true") // deleted by the test's cleanup
		for _, c := range []struct{ method, path, key string }{
			{"GET", "/api/v1/containers/" + id, readKey},
			{"POST", "/api/v1/containers/" + id + "/stop", runKey},
			{"DELETE", "/api/v1/containers/" + id + "?force=1", runKey},
			{"GET", "/api/v1/events?container=" + id, readKey},
		} {
			if r := srv.do(c.method, c.path, c.key, nil); r.status != http.StatusNotFound {
				t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
			}
		}
		if r := srv.do("GET", "/api/v1/containers", readKey, nil); strings.Contains(string(r.body), id) {
			t.Errorf("list shows a container made outside the API: %s", r.body)
		}
		if _, err := e.c.LoadContainer(e.ctx, id); err != nil {
			t.Errorf("the container made outside the API is gone: %v", err)
		}
	})

	t.Run("authentication", func(t *testing.T) {
		if r := srv.do("GET", "/api/v1/containers", "", nil); r.status != 401 {
			t.Errorf("no credentials: %d %s", r.status, r.body)
		}
		if r := srv.run(readKey, api.RunRequest{Image: signedRef, Args: []string{"true"}}); r.status != 403 {
			t.Errorf("read key runs: %d %s", r.status, r.body)
		} else if code, _ := r.errCode(); code != api.CodeForbidden {
			t.Errorf("read key runs: code %q", code)
		}
		id, secret := srv.key("run", "")
		if r := srv.do("GET", "/api/v1/containers", secret, nil); r.status != 200 {
			t.Fatalf("fresh key: %d %s", r.status, r.body)
		}
		if out, errOut, code := runCmd(t, srv.bin, "serve", "keys", "revoke", "--config", srv.config, id); code != 0 {
			t.Fatalf("revoke: %d %s %s", code, out, errOut)
		}
		if r := srv.do("GET", "/api/v1/containers", secret, nil); r.status != 401 {
			t.Errorf("revoked key: %d %s", r.status, r.body)
		}
		out, _, _ := runCmd(t, srv.bin, "serve", "keys", "list", "--config", srv.config)
		if !strings.Contains(out, id) || !strings.Contains(out, "revoked") || strings.Contains(out, secret) {
			t.Errorf("keys list:\n%s", out)
		}
		// A key valid for a few seconds works, then expires. (Expiry is
		// counted from the creation second, so it is 2-3 s away here.)
		_, short := srv.key("read", "3s")
		if r := srv.do("GET", "/api/v1/containers", short, nil); r.status != 200 {
			t.Errorf("short-lived key before its expiry: %d %s", r.status, r.body)
		}
		eventually(t, 10*time.Second, func() error {
			if r := srv.do("GET", "/api/v1/containers", short, nil); r.status != 401 {
				return fmt.Errorf("expired key: %d", r.status)
			}
			return nil
		})
	})

	t.Run("oidc tokens", func(t *testing.T) {
		if r := srv.do("GET", "/api/v1/containers", issuer.token(t, nil), nil); r.status != 200 {
			t.Errorf("valid token: %d %s", r.status, r.body)
		}
		for name, over := range map[string]map[string]any{
			"wrong audience": {"aud": "another-service"},
			"expired":        {"exp": time.Now().Add(-time.Hour).Unix()},
			"wrong issuer":   {"iss": "https://evil.test"},
		} {
			if r := srv.do("GET", "/api/v1/containers", issuer.token(t, over), nil); r.status != 401 {
				t.Errorf("%s token: %d %s", name, r.status, r.body)
			}
		}
		// A read-scoped token cannot run.
		if r := srv.run(issuer.token(t, map[string]any{"scope": "read"}), api.RunRequest{Image: signedRef}); r.status != 403 {
			t.Errorf("read token runs: %d %s", r.status, r.body)
		}
	})

	t.Run("bad bodies change nothing", func(t *testing.T) {
		nc, ns := containerdState(t, e)
		r := srv.do("POST", "/api/v1/containers", runKey, strings.NewReader(`{"image": "`+signedRef+`", "args": [`))
		if code, _ := r.errCode(); r.status != 400 || code != api.CodeMalformed {
			t.Errorf("malformed JSON: %d %s", r.status, r.body)
		}
		r = srv.do("POST", "/api/v1/containers", runKey, strings.NewReader(`{"image": "`+signedRef+`", "privileged": true}`))
		if code, msg := r.errCode(); r.status != 400 || code != api.CodeMalformed || !strings.Contains(msg, "privileged") {
			t.Errorf("raw spec field: %d %s", r.status, r.body)
		}
		big := `{"image": "` + signedRef + `", "args": ["` + strings.Repeat("x", 8192) + `"]}`
		r = srv.do("POST", "/api/v1/containers", runKey, strings.NewReader(big))
		if code, _ := r.errCode(); r.status != 413 || code != api.CodeBodyTooLarge {
			t.Errorf("oversize body: %d %s", r.status, r.body)
		}
		if c, s := containerdState(t, e); c != nc || s != ns {
			t.Errorf("refused bodies left containers %d→%d, snapshots %d→%d", nc, c, ns, s)
		}
	})

	t.Run("rate limit", func(t *testing.T) {
		_, secret := srv.key("read", "")
		var limited *apiResponse
		for i := 0; i < 200 && limited == nil; i++ {
			r := srv.do("GET", "/api/v1/containers/none", secret, nil)
			if r.status == http.StatusTooManyRequests {
				limited = &r
			} else if r.status != 404 {
				t.Fatalf("request %d: %d %s", i, r.status, r.body)
			}
		}
		if limited == nil {
			t.Fatal("200 requests at once were never limited (rate 50/s, burst 50)")
		}
		if code, _ := limited.errCode(); code != api.CodeRateLimited {
			t.Errorf("429 code %q", code)
		}
		if ra, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After %q", limited.header.Get("Retry-After"))
		}
		// Other keys are not limited by this one.
		if r := srv.do("GET", "/api/v1/containers", readKey, nil); r.status != 200 {
			t.Errorf("another key: %d", r.status)
		}
	})

	t.Run("events stream", func(t *testing.T) {
		id := uniqueID(t)
		srv.deleteAfter(runKey, id)
		// balanced alerts on a read of /etc/shadow; the container keeps
		// running after it.
		r := srv.run(runKey, api.RunRequest{Image: signedRef, Name: id, Args: []string{"sh", "-c", "cat /etc/shadow >/dev/null; exec sleep 600"}})
		if r.status != http.StatusCreated {
			t.Fatalf("run: %d %s", r.status, r.body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://vordr/api/v1/alerts?follow=1&container="+id, nil)
		req.Header.Set("Authorization", "Bearer "+readKey)
		resp, err := srv.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		// One stream per key here (max_streams = 1): a second is refused
		// while the first is open.
		if r := srv.do("GET", "/api/v1/events?follow=1&container="+id, readKey, nil); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Errorf("second stream of a key: %d %s", r.status, r.body)
		}
		sc := bufio.NewScanner(resp.Body)
		var got *monitor.Event
		for got == nil && sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev monitor.Event
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			if ev.Alert == nil {
				t.Errorf("/alerts sent a non-alert: %s", data)
			}
			if ev.ContainerID != id {
				t.Errorf("stream of %s sent an event of %s", id, ev.ContainerID)
			}
			if ev.Alert != nil && ev.Alert.Rule == monitor.RuleSensitiveFile {
				got = &ev
			}
		}
		if got == nil {
			t.Fatalf("no %s alert on the stream within 30s (%v)", monitor.RuleSensitiveFile, sc.Err())
		}
		g := srv.do("GET", "/api/v1/containers/"+id, readKey, nil)
		if !strings.Contains(string(g.body), `"status": "running"`) {
			t.Errorf("the container is not running while its alert streams: %s", g.body)
		}
		// The explanation names the gate's decision and the alert.
		r = srv.do("GET", "/api/v1/containers/"+id+"/explain", readKey, nil)
		var x api.Explanation
		if err := json.Unmarshal(r.body, &x); r.status != 200 || err != nil {
			t.Fatalf("explain: %d %s", r.status, r.body)
		}
		text := strings.Join(x.Summary, "\n")
		for _, want := range []string{"verified image " + signedRef, `policy "strict"`, `Profile "balanced"`, "Alert " + monitor.RuleSensitiveFile} {
			if !strings.Contains(text, want) {
				t.Errorf("explanation lacks %q:\n%s", want, text)
			}
		}
		// Severity filter: the alert is listed at its own severity and
		// left out above it.
		sev := got.Alert.Severity
		if r := srv.do("GET", "/api/v1/alerts?container="+id+"&severity="+sev.String(), readKey, nil); r.status != 200 || !strings.Contains(string(r.body), monitor.RuleSensitiveFile) {
			t.Errorf("alerts at severity %s: %d %s", sev, r.status, r.body)
		}
		if sev < monitor.SevCritical {
			above := (sev + 1).String()
			if r := srv.do("GET", "/api/v1/alerts?container="+id+"&severity="+above, readKey, nil); r.status != 200 || strings.Contains(string(r.body), monitor.RuleSensitiveFile) {
				t.Errorf("alerts at severity %s list a %s alert: %d %s", above, sev, r.status, r.body)
			}
		}
		// Events of the container include more than alerts (the gate's
		// record, the guard's report).
		r = srv.do("GET", "/api/v1/events?container="+id+"&kind=gate", readKey, nil)
		var gate struct {
			Events []struct{ Gate api.Verification }
		}
		if err := json.Unmarshal(r.body, &gate); r.status != 200 || err != nil || len(gate.Events) != 1 || gate.Events[0].Gate.Decision != "verified" {
			t.Errorf("gate record: %d %s (%v)", r.status, r.body, err)
		}
		// sleep ignores SIGTERM as pid 1: stop escalates to SIGKILL.
		r = srv.do("POST", "/api/v1/containers/"+id+"/stop?timeout=1", runKey, nil)
		var c api.Container
		if err := json.Unmarshal(r.body, &c); r.status != 200 || err != nil || c.Status != "stopped" {
			t.Errorf("stop: %d %s", r.status, r.body)
		}
	})

	t.Run("events stream of every container", func(t *testing.T) {
		// Opened before the container exists: the stream picks up
		// containers started later.
		_, key := srv.key("read", "")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://vordr/api/v1/events?follow=1&kind=gate", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := srv.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), ":") {
			t.Fatalf("the stream did not open with a comment: %q %v", sc.Text(), sc.Err())
		}
		id := uniqueID(t)
		srv.deleteAfter(runKey, id)
		if r := srv.run(runKey, api.RunRequest{Image: signedRef, Name: id, Args: []string{"true"}}); r.status != http.StatusCreated {
			t.Fatalf("run: %d %s", r.status, r.body)
		}
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev struct {
				Kind        string `json:"kind"`
				ContainerID string `json:"container_id"`
			}
			if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.Kind != "gate" {
				t.Fatalf("kind=gate stream sent %q (%v)", data, err)
			}
			if ev.ContainerID == id {
				return
			}
		}
		t.Fatalf("no gate record of %s on the stream within 30s (%v)", id, sc.Err())
	})

	t.Run("create then start", func(t *testing.T) {
		id := uniqueID(t)
		srv.deleteAfter(runKey, id)
		// strict, chosen by the request: a tightening the operator offers.
		b, _ := json.Marshal(api.RunRequest{Image: signedRef, Name: id, Args: []string{"sh", "-c", "exit 4"}, Profile: "strict"})
		r := srv.do("POST", "/api/v1/containers?start=0", runKey, bytes.NewReader(b))
		var c api.Container
		if err := json.Unmarshal(r.body, &c); r.status != http.StatusCreated || err != nil || c.Status != "created" || c.Verification == nil || c.Verification.Decision != "verified" {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		if c.Profile != "strict" || c.ProfileFrom != "annotation" {
			t.Errorf("profile %q from %q, want strict from the request's annotation", c.Profile, c.ProfileFrom)
		}
		// A loosening the operator does not offer is refused before
		// anything is created.
		b, _ = json.Marshal(api.RunRequest{Image: signedRef, Name: id + "-dev", Args: []string{"true"}, Profile: "dev"})
		if r := srv.do("POST", "/api/v1/containers", runKey, bytes.NewReader(b)); r.status != http.StatusForbidden {
			t.Errorf("profile dev over the default balanced: %d %s", r.status, r.body)
		}
		if r := srv.do("POST", "/api/v1/containers/"+id+"/start", readKey, nil); r.status != http.StatusForbidden {
			t.Errorf("start with a read key: %d %s", r.status, r.body)
		}
		if r := srv.do("POST", "/api/v1/containers/"+id+"/start", runKey, nil); r.status != 200 {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
		eventually(t, 30*time.Second, func() error {
			r := srv.do("GET", "/api/v1/containers/"+id, readKey, nil)
			c = api.Container{}
			if err := json.Unmarshal(r.body, &c); err != nil || c.Status != "stopped" {
				return fmt.Errorf("status %q (%v)", c.Status, err)
			}
			return nil
		})
		if c.ExitCode == nil || *c.ExitCode != 4 {
			t.Errorf("exit code %v, want 4", c.ExitCode)
		}
		if r := srv.do("POST", "/api/v1/containers/"+id+"/start", runKey, nil); r.status != http.StatusConflict {
			t.Errorf("start of a stopped container: %d %s", r.status, r.body)
		}
	})

	t.Run("logs follow", func(t *testing.T) {
		id := uniqueID(t)
		srv.deleteAfter(runKey, id)
		if r := srv.run(runKey, api.RunRequest{Image: signedRef, Name: id, Args: []string{"sh", "-c", "echo one; sleep 1; echo two"}}); r.status != http.StatusCreated {
			t.Fatalf("run: %d %s", r.status, r.body)
		}
		// The stream ends by itself once the task has exited and its
		// output is sent (srv.do's deadline bounds it).
		r := srv.do("GET", "/api/v1/containers/"+id+"/logs?follow=1", readKey, nil)
		if r.status != 200 || string(r.body) != "one\ntwo\n" {
			t.Errorf("logs follow: %d %q", r.status, r.body)
		}
		if r := srv.do("GET", "/api/v1/containers/"+id+"/logs?tail=1", readKey, nil); string(r.body) != "two\n" {
			t.Errorf("logs tail=1: %d %q", r.status, r.body)
		}
	})

	// The workload decides how much it prints and the shim appends all of
	// it to a file on the node: serve keeps each log within
	// limits.max_log_bytes (here 64 KiB) while the container runs.
	t.Run("output log capped", func(t *testing.T) {
		id := uniqueID(t)
		srv.deleteAfter(runKey, id)
		// About 2 MiB of numbered lines, then stay up.
		if r := srv.run(runKey, api.RunRequest{Image: signedRef, Name: id, Args: []string{"sh", "-c", "seq 1 300000; sleep 600"}}); r.status != http.StatusCreated {
			t.Fatalf("run: %d %s", r.status, r.body)
		}
		logPath := filepath.Join(filepath.Dir(srv.config), "state", "logs", shared.Namespace, id+".log")
		eventually(t, 30*time.Second, func() error {
			if r := srv.do("GET", "/api/v1/containers/"+id+"/logs?tail=1", readKey, nil); string(r.body) != "300000\n" {
				return fmt.Errorf("last line %q, want the workload's last", r.body)
			}
			var total int64
			for _, p := range []string{logPath, logPath + ".1"} {
				if fi, err := os.Stat(p); err == nil {
					total += fi.Size()
				}
			}
			if total > 65536*3/2 {
				return fmt.Errorf("the output log holds %d bytes on disk, want at most 1.5 × limits.max_log_bytes", total)
			}
			return nil
		})
	})

	// A stream outlives its request: revoking the key ends it at the next
	// credential check (every 15 s), not when the container exits.
	t.Run("stream ends when its key is revoked", func(t *testing.T) {
		id := uniqueID(t)
		srv.deleteAfter(runKey, id)
		if r := srv.run(runKey, api.RunRequest{Image: signedRef, Name: id, Args: []string{"sleep", "600"}}); r.status != http.StatusCreated {
			t.Fatalf("run: %d %s", r.status, r.body)
		}
		keyID, secret := srv.key("read", "")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", "http://vordr/api/v1/containers/"+id+"/logs?follow=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := srv.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("follow: %d", resp.StatusCode)
		}
		ended := make(chan time.Time, 1)
		go func() {
			io.Copy(io.Discard, resp.Body) // until the server ends the stream (or ctx)
			ended <- time.Now()
		}()
		if _, errOut, code := runCmd(t, srv.bin, "serve", "keys", "revoke", "--config", srv.config, keyID); code != 0 {
			t.Fatalf("revoke: exit %d %s", code, errOut)
		}
		revoked := time.Now()
		select {
		case at := <-ended:
			if ctx.Err() != nil {
				t.Fatal("the stream of a revoked key did not end within a minute")
			}
			t.Logf("the stream ended %s after its key was revoked", at.Sub(revoked).Round(time.Second))
		case <-ctx.Done():
			t.Fatal("the stream of a revoked key did not end within a minute")
		}
	})

	// Each exec holds up to 2 MiB of output for up to its timeout: at most
	// 32 run at once, node-wide; one more is refused (429) until one ends.
	t.Run("exec bound", func(t *testing.T) {
		id := uniqueID(t)
		srv.deleteAfter(runKey, id)
		if r := srv.run(runKey, api.RunRequest{Image: signedRef, Name: id, Args: []string{"sleep", "600"}}); r.status != http.StatusCreated {
			t.Fatalf("run: %d %s", r.status, r.body)
		}
		post := func(args ...string) (int, string, error) {
			b, _ := json.Marshal(api.ExecRequest{Args: args, TimeoutSeconds: 30})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "POST", "http://vordr/api/v1/containers/"+id+"/exec", bytes.NewReader(b))
			if err != nil {
				return 0, "", err
			}
			req.Header.Set("Authorization", "Bearer "+runKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.client.Do(req)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body), err
		}
		// 40 long execs at once (within the rate limit's burst of 50): 32
		// run, 8 are refused by the bound, not by the rate limit.
		const bound, sent = 32, 40
		type answer struct {
			code int
			body string
		}
		answers := make(chan answer, sent)
		for i := 0; i < sent; i++ {
			go func() {
				code, body, err := post("sleep", "8")
				if err != nil {
					code, body = -1, err.Error()
				}
				answers <- answer{code, body}
			}()
		}
		ran, refused := 0, 0
		for i := 0; i < sent; i++ {
			a := <-answers
			switch {
			case a.code == http.StatusOK:
				ran++
			case a.code == http.StatusTooManyRequests && strings.Contains(a.body, "execs are running already"):
				refused++
			default:
				t.Errorf("exec answered %d %s", a.code, a.body)
			}
		}
		if ran != bound || refused != sent-bound {
			t.Errorf("%d execs at once: %d ran and %d were refused, want %d and %d", sent, ran, refused, bound, sent-bound)
		}
		if code, body, err := post("true"); err != nil || code != http.StatusOK {
			t.Errorf("exec after the others ended: %d %s %v", code, body, err)
		}
	})

	t.Run("exec", func(t *testing.T) {
		id := uniqueID(t)
		srv.deleteAfter(runKey, id)
		if r := srv.run(runKey, api.RunRequest{Image: signedRef, Name: id, Args: []string{"sleep", "600"}}); r.status != http.StatusCreated {
			t.Fatalf("run: %d %s", r.status, r.body)
		}
		exec := func(key string, req api.ExecRequest) apiResponse {
			b, _ := json.Marshal(req)
			return srv.do("POST", "/api/v1/containers/"+id+"/exec", key, bytes.NewReader(b))
		}
		r := exec(runKey, api.ExecRequest{Args: []string{"sh", "-c", "cat /etc/marker; echo $X >&2; exit 5"}, Env: []string{"X=to-stderr"}})
		var res api.ExecResult
		if err := json.Unmarshal(r.body, &res); r.status != 200 || err != nil {
			t.Fatalf("exec: %d %s %v", r.status, r.body, err)
		}
		if res.ExitCode != 5 || res.Stdout != "serve-signed\n" || res.Stderr != "to-stderr\n" || res.TimedOut || res.Truncated {
			t.Errorf("exec result %+v", res)
		}
		r = exec(runKey, api.ExecRequest{Args: []string{"sleep", "60"}, TimeoutSeconds: 1})
		if err := json.Unmarshal(r.body, &res); r.status != 200 || err != nil || !res.TimedOut {
			t.Errorf("exec past its timeout: %d %s", r.status, r.body)
		}
		if r := exec(readKey, api.ExecRequest{Args: []string{"true"}}); r.status != http.StatusForbidden {
			t.Errorf("exec with a read key: %d %s", r.status, r.body)
		}
		_, other := srv.key("run", "")
		if r := exec(other, api.ExecRequest{Args: []string{"true"}}); r.status != http.StatusForbidden {
			t.Errorf("exec by another run key: %d %s", r.status, r.body)
		}
		if r := exec(runKey, api.ExecRequest{}); r.status != http.StatusBadRequest {
			t.Errorf("exec without args: %d %s", r.status, r.body)
		}
		if r := srv.do("POST", "/api/v1/containers/"+id+"/stop?timeout=0", runKey, nil); r.status != 200 {
			t.Fatalf("stop: %d %s", r.status, r.body)
		}
		if r := exec(runKey, api.ExecRequest{Args: []string{"true"}}); r.status != http.StatusConflict {
			t.Errorf("exec in a stopped container: %d %s", r.status, r.body)
		}
	})

	t.Run("audit", func(t *testing.T) {
		log := srv.stderr.String()
		if !strings.Contains(log, "msg=audit") || !strings.Contains(log, "method=POST") || !strings.Contains(log, "status=403") || !strings.Contains(log, "identity="+runID) {
			t.Errorf("no audit lines naming writes in the server log:\n%s", log)
		}
	})
}

package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

type testIssuer struct {
	t    *testing.T
	key  *ecdsa.PrivateKey
	kid  string
	iss  string
	aud  string
	jwks []byte
}

func newIssuer(t *testing.T, kid string) *testIssuer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{t: t, key: k, kid: kid, iss: "https://issuer.test", aud: "vordr", jwks: b}
}

// token signs claims (merged over valid defaults; a nil value removes one).
func (i *testIssuer) token(over map[string]any) string {
	i.t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: i.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", i.kid))
	if err != nil {
		i.t.Fatal(err)
	}
	claims := map[string]any{"iss": i.iss, "aud": i.aud, "sub": "agent-7", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "scope": "openid run"}
	for k, v := range over {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	s, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		i.t.Fatal(err)
	}
	return s
}

func oidcServer(t *testing.T, o OIDC) *Server {
	t.Helper()
	dir := t.TempDir()
	rc := filepath.Join(dir, "runtime.toml")
	if err := os.WriteFile(rc, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig([]byte(`state_dir = "`+filepath.Join(dir, "state")+`"
runtime_config = "`+rc+`"
keys = "`+filepath.Join(dir, "keys.json")+`"
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.OIDC = o
	s, err := New(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOIDC(t *testing.T) {
	iss := newIssuer(t, "k1")
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, iss.jwks, 0o644); err != nil {
		t.Fatal(err)
	}
	s := oidcServer(t, OIDC{Issuer: iss.iss, Audience: iss.aud, JWKSFile: jwks})
	h := s.Handler()
	other := newIssuer(t, "k1") // same kid, another key

	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	hsToken, _ := jwt.Signed(hs).Claims(map[string]any{"iss": iss.iss, "aud": iss.aud, "sub": "x", "exp": time.Now().Add(time.Hour).Unix(), "scope": "admin"}).Serialize()

	for _, c := range []struct {
		name, token string
		status      int
	}{
		{"valid run token reaches the handler", iss.token(nil), 400},
		{"read token cannot run", iss.token(map[string]any{"scope": "read"}), 403},
		{"scopes as a list", iss.token(map[string]any{"scope": []string{"run"}}), 400},
		{"unknown scopes grant nothing", iss.token(map[string]any{"scope": "root superuser"}), 403},
		{"wrong audience", iss.token(map[string]any{"aud": "someone-else"}), 401},
		{"wrong issuer", iss.token(map[string]any{"iss": "https://evil.test"}), 401},
		{"expired", iss.token(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), 401},
		{"not yet valid", iss.token(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}), 401},
		{"no expiry", iss.token(map[string]any{"exp": nil}), 401},
		{"no subject", iss.token(map[string]any{"sub": nil}), 401},
		{"signed by another key", other.token(nil), 401},
		{"HMAC with a guessable secret", hsToken, 401},
		{"garbage with dots", "a.b.c", 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec, eb := do(t, h, "POST", "/api/v1/containers", c.token, `{`)
			if rec.Code != c.status {
				t.Errorf("%d %+v, want %d", rec.Code, eb, c.status)
			}
		})
	}
	// API keys keep working next to tokens.
	_, secret, _ := s.Keys().Create(CreateOptions{Scopes: []string{ScopeRun}})
	if rec, _ := do(t, h, "POST", "/api/v1/containers", secret, `{`); rec.Code != 400 {
		t.Errorf("API key with [oidc]: %d", rec.Code)
	}
	// The token's subject is the identity (rate limit, owner, audit).
	id, err := s.identify(t.Context(), iss.token(nil))
	if err != nil || id.KeyID != "oidc:agent-7" {
		t.Errorf("identity %+v, %v", id, err)
	}
}

// TestOIDCKeyRotation: a JWKS URL is fetched again for an unknown key id,
// at most once a minute.
func TestOIDCKeyRotation(t *testing.T) {
	first, second := newIssuer(t, "k1"), newIssuer(t, "k2")
	var serving atomic.Pointer[[]byte]
	serving.Store(&first.jwks)
	var fetches atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		_, _ = w.Write(*serving.Load())
	}))
	defer ts.Close()
	s := oidcServer(t, OIDC{Issuer: first.iss, Audience: first.aud, JWKSURL: ts.URL})
	now := time.Now()
	s.tokens.now = func() time.Time { return now }
	if _, err := s.identify(t.Context(), first.token(nil)); err != nil {
		t.Fatal(err)
	}
	serving.Store(&second.jwks) // the issuer rotates
	if _, err := s.identify(t.Context(), second.token(nil)); err == nil {
		t.Error("a new kid was accepted without refetching within the minute")
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches within the first minute, want 1", n)
	}
	now = now.Add(2 * time.Minute)
	if _, err := s.identify(t.Context(), second.token(nil)); err != nil {
		t.Errorf("rotated key after the minute: %v", err)
	}
	if _, err := s.identify(t.Context(), first.token(nil)); err == nil {
		t.Error("the retired key still verifies after rotation")
	}
}

func TestOIDCConfig(t *testing.T) {
	for _, bad := range []string{
		"[oidc]\naudience = \"vordr\"\n",
		"[oidc]\nissuer = \"https://i\"\njwks_file = \"/x\"\n",
		"[oidc]\nissuer = \"https://i\"\naudience = \"vordr\"\n",
		"[oidc]\nissuer = \"https://i\"\naudience = \"vordr\"\njwks_file = \"/x\"\njwks_url = \"https://i/jwks\"\n",
	} {
		if _, err := ParseConfig([]byte(bad), "bad"); err == nil {
			t.Errorf("ParseConfig(%q) accepted", bad)
		}
	}
	// A JWKS with a private key is refused: it would be the issuer's secret.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "p"}}})
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newTokenVerifier(OIDC{Issuer: "i", Audience: "a", JWKSFile: p}); err == nil {
		t.Error("a JWKS holding a private key was accepted")
	}
}

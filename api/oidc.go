package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// OIDC configures bearer tokens from an OpenID Connect issuer, next to
// API keys: a JWT signed by a key of the issuer's JWKS, for the audience,
// within its validity. Its scopes claim grants read, run or admin.
type OIDC struct {
	Issuer   string `toml:"issuer"`
	Audience string `toml:"audience"`
	// JWKSFile or JWKSURL holds the issuer's public keys. A URL is fetched
	// at start and again (at most once a minute) for an unknown key id.
	JWKSFile string `toml:"jwks_file"`
	JWKSURL  string `toml:"jwks_url"`
	// ScopesClaim names the claim with the token's scopes (a space-separated
	// string or a list); "scope" when empty. Values other than read, run
	// and admin are ignored.
	ScopesClaim string `toml:"scopes_claim"`
}

func (o OIDC) enabled() bool { return o.Issuer != "" }

func (o OIDC) validate(source string) error {
	if !o.enabled() {
		if o.Audience != "" || o.JWKSFile != "" || o.JWKSURL != "" {
			return fmt.Errorf("serve config %s: [oidc] needs issuer: %w", source, errdefs.ErrInvalidArgument)
		}
		return nil
	}
	if o.Audience == "" {
		return fmt.Errorf("serve config %s: [oidc] needs audience (the tokens' aud this server accepts): %w", source, errdefs.ErrInvalidArgument)
	}
	if (o.JWKSFile == "") == (o.JWKSURL == "") {
		return fmt.Errorf("serve config %s: [oidc] needs exactly one of jwks_file and jwks_url: %w", source, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ErrBadToken is wrapped by every token refusal.
var ErrBadToken = errors.New("invalid bearer token")

// signatureAlgorithms are those a token may be signed with; "none" and
// HMAC (a shared secret would let anyone holding the JWKS sign) never.
var signatureAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// tokenVerifier checks OIDC bearer tokens.
type tokenVerifier struct {
	cfg  OIDC
	now  func() time.Time
	http *http.Client

	mu        sync.Mutex
	keys      *jose.JSONWebKeySet
	fetchedAt time.Time
}

func newTokenVerifier(cfg OIDC) (*tokenVerifier, error) {
	v := &tokenVerifier{cfg: cfg, now: time.Now, http: &http.Client{Timeout: 10 * time.Second}}
	if err := v.refresh(context.Background()); err != nil {
		return nil, err
	}
	return v, nil
}

const maxJWKSBytes = 1 << 20

// refresh (re)loads the key set. Called with v.mu held or before use.
func (v *tokenVerifier) refresh(ctx context.Context) error {
	var data []byte
	var err error
	if v.cfg.JWKSFile != "" {
		data, err = os.ReadFile(v.cfg.JWKSFile)
		if err != nil {
			return fmt.Errorf("[oidc] jwks_file: %w", err)
		}
	} else {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
		if err != nil {
			return fmt.Errorf("[oidc] jwks_url: %w", err)
		}
		resp, err := v.http.Do(req)
		if err != nil {
			return fmt.Errorf("[oidc] fetch jwks_url %s: %w", v.cfg.JWKSURL, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("[oidc] fetch jwks_url %s: %s", v.cfg.JWKSURL, resp.Status)
		}
		if data, err = io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes)); err != nil {
			return fmt.Errorf("[oidc] fetch jwks_url %s: %w", v.cfg.JWKSURL, err)
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return fmt.Errorf("[oidc] JWKS is not a JSON Web Key Set: %w", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return fmt.Errorf("[oidc] JWKS holds a private or symmetric key (kid %q); it must hold the issuer's public keys only", k.KeyID)
		}
	}
	v.keys, v.fetchedAt = &set, v.now()
	return nil
}

// keyFor finds the key a token names, refetching a URL's set for an
// unknown kid at most once a minute (keys rotate; a flood of made-up kids
// must not become a flood of fetches).
func (v *tokenVerifier) keyFor(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	find := func() *jose.JSONWebKey {
		for _, k := range v.keys.Keys {
			if k.KeyID == kid || (kid == "" && len(v.keys.Keys) == 1) {
				return &k
			}
		}
		return nil
	}
	if k := find(); k != nil {
		return k, nil
	}
	if v.cfg.JWKSURL != "" && v.now().Sub(v.fetchedAt) > time.Minute {
		// Counted as a fetch whether or not it succeeds: while the issuer
		// is slow or down, made-up kids must not each wait for a fetch.
		v.fetchedAt = v.now()
		if err := v.refresh(ctx); err != nil {
			return nil, err
		}
		if k := find(); k != nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: no key %q in the issuer's JWKS", ErrBadToken, kid)
}

// looksLikeJWT tells a compact JWS from an API key.
func looksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && !strings.HasPrefix(s, secretPrefix)
}

// verify checks a token and returns its identity.
func (v *tokenVerifier) verify(ctx context.Context, token string) (Identity, error) {
	tok, err := jwt.ParseSigned(token, signatureAlgorithms)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if len(tok.Headers) != 1 {
		return Identity{}, fmt.Errorf("%w: one signature expected", ErrBadToken)
	}
	key, err := v.keyFor(ctx, tok.Headers[0].KeyID)
	if err != nil {
		return Identity{}, err
	}
	var claims jwt.Claims
	extra := map[string]any{}
	if err := tok.Claims(key.Key, &claims, &extra); err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if claims.Expiry == nil {
		return Identity{}, fmt.Errorf("%w: no exp claim; tokens must expire", ErrBadToken)
	}
	if claims.Subject == "" {
		return Identity{}, fmt.Errorf("%w: no sub claim", ErrBadToken)
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: v.now()}, 30*time.Second); err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	claim := v.cfg.ScopesClaim
	if claim == "" {
		claim = "scope"
	}
	var scopes []string
	switch sc := extra[claim].(type) {
	case string:
		scopes = strings.Fields(sc)
	case []any:
		for _, x := range sc {
			if s, ok := x.(string); ok {
				scopes = append(scopes, s)
			}
		}
	}
	scopes = slices.DeleteFunc(scopes, func(s string) bool { _, ok := scopeRank[s]; return !ok })
	return Identity{KeyID: "oidc:" + claims.Subject, Name: claims.Subject, Scopes: scopes}, nil
}

package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestKeyStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	ks := OpenKeyStore(path)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ks.now = func() time.Time { return now }

	k, secret, err := ks.Create(CreateOptions{Name: "ci", Scopes: []string{ScopeRun}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "vordr_"+k.ID+"_") {
		t.Errorf("secret %q does not carry key id %s", secret, k.ID)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), secret[len("vordr_"+k.ID+"_"):]) {
		t.Fatal("the key file holds the secret")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}

	id, err := ks.Authenticate(secret)
	if err != nil || id.KeyID != k.ID || id.Name != "ci" {
		t.Fatalf("Authenticate = %+v, %v", id, err)
	}
	flipped := secret[:len(secret)-1] + "0"
	if secret[len(secret)-1] == '0' {
		flipped = secret[:len(secret)-1] + "1"
	}
	for _, bad := range []string{"", "vordr_", secret + "x", flipped, "Bearer " + secret,
		"vordr_0123456789abcdef_" + strings.Repeat("a", 64)} {
		if _, err := ks.Authenticate(bad); err == nil {
			t.Errorf("Authenticate(%q) accepted", bad)
		}
	}

	// A second store (another process: the CLI) revokes; the first sees it.
	other := OpenKeyStore(path)
	if err := other.Revoke(k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Authenticate(secret); err != ErrKeyRevoked {
		t.Errorf("revoked key: %v", err)
	}
	if err := other.Revoke("0000000000000000"); !errdefs.IsNotFound(err) {
		t.Errorf("revoke of an unknown id: %v", err)
	}

	k2, s2, err := ks.Create(CreateOptions{Scopes: []string{ScopeRead}, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Authenticate(s2); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if _, err := ks.Authenticate(s2); err != ErrKeyExpired {
		t.Errorf("expired key: %v", err)
	}
	keys, err := ks.List()
	if err != nil || len(keys) != 2 || keys[0].ID != k.ID || keys[1].ID != k2.ID {
		t.Fatalf("List = %+v, %v", keys, err)
	}
	if _, _, err := ks.Create(CreateOptions{Scopes: []string{"root"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown scope: %v", err)
	}
	if _, _, err := ks.Create(CreateOptions{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no scope: %v", err)
	}
}

func TestKeyStoreRefusesLooseFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, []byte(`{"keys":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	ks := OpenKeyStore(path)
	if _, err := ks.List(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-writable key file: %v", err)
	}
	if _, err := ks.Authenticate("vordr_0123456789abcdef_" + strings.Repeat("a", 64)); err == nil || err == ErrBadKey {
		t.Errorf("Authenticate with a loose key file: %v", err)
	}
}

func TestScopes(t *testing.T) {
	for _, c := range []struct {
		have []string
		need string
		ok   bool
	}{
		{[]string{ScopeRead}, ScopeRead, true},
		{[]string{ScopeRead}, ScopeRun, false},
		{[]string{ScopeRun}, ScopeRead, true},
		{[]string{ScopeRun}, ScopeAdmin, false},
		{[]string{ScopeAdmin}, ScopeRun, true},
		{nil, ScopeRead, false},
		{[]string{"bogus"}, ScopeRead, false},
	} {
		k := Key{Scopes: c.have}
		if got := k.Allows(c.need); got != c.ok {
			t.Errorf("%v allows %s = %v, want %v", c.have, c.need, got, c.ok)
		}
	}
}

// TestKeyStoreConcurrentCreate: keys created at once by separate stores
// (separate `vordr serve keys create` processes) are all kept.
func TestKeyStoreConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() {
			_, _, err := OpenKeyStore(path).Create(CreateOptions{Scopes: []string{ScopeRead}})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	keys, err := OpenKeyStore(path).List()
	if err != nil || len(keys) != n {
		t.Fatalf("%d keys after %d concurrent creates (%v)", len(keys), n, err)
	}
}

package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

// Scopes a key may hold. admin implies run, run implies read.
const (
	ScopeRead  = "read"
	ScopeRun   = "run"
	ScopeAdmin = "admin"
)

var scopeRank = map[string]int{ScopeRead: 1, ScopeRun: 2, ScopeAdmin: 3}

// secretPrefix starts every secret, so a leaked one is recognisable (secret
// scanners) and the key id travels with it: the store looks the key up by id
// and compares hashes, it never searches by secret.
const secretPrefix = "vordr_"

// Key is one API key as stored: the secret itself is never written, only
// its SHA-256. A random 256-bit secret needs no slow hash: there is nothing
// to guess that is cheaper than the secret itself.
type Key struct {
	ID      string    `json:"id"`
	Name    string    `json:"name,omitempty"`
	SHA256  string    `json:"sha256"`
	Scopes  []string  `json:"scopes"`
	Created time.Time `json:"created"`
	// Expires is zero for a key that does not expire.
	Expires time.Time `json:"expires,omitzero"`
	Revoked time.Time `json:"revoked,omitzero"`
}

// Allows reports whether the key's scopes cover scope.
func (k *Key) Allows(scope string) bool {
	need := scopeRank[scope]
	for _, s := range k.Scopes {
		if scopeRank[s] >= need {
			return true
		}
	}
	return false
}

// Identity is who a request comes from.
type Identity struct {
	KeyID  string
	Name   string
	Scopes []string
}

func (id Identity) String() string {
	if id.Name != "" {
		return id.KeyID + " (" + id.Name + ")"
	}
	return id.KeyID
}

// Errors of Authenticate. They say no more than needed to the caller; the
// server logs which one it was.
var (
	ErrNoCredentials = errors.New("no API key: send Authorization: Bearer <secret>")
	ErrBadKey        = errors.New("unknown or malformed API key")
	ErrKeyRevoked    = errors.New("API key revoked")
	ErrKeyExpired    = errors.New("API key expired")
)

type keyFile struct {
	Keys []Key `json:"keys"`
}

// KeyStore is the file of API keys. The server re-reads it when it changes,
// so `vordr serve keys revoke` takes effect on the next request without a
// restart.
type KeyStore struct {
	path string
	now  func() time.Time

	mu    sync.Mutex
	keys  map[string]Key
	order []string // ids in file order: creation order
	stamp fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

// OpenKeyStore opens the key file at path; a missing file is an empty store.
func OpenKeyStore(path string) *KeyStore {
	return &KeyStore{path: path, now: time.Now}
}

// Path is the key file.
func (s *KeyStore) Path() string { return s.path }

// load refreshes the in-memory keys if the file changed. Called with s.mu held.
func (s *KeyStore) load() error {
	fi, err := os.Stat(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.keys, s.order, s.stamp = map[string]Key{}, nil, fileStamp{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("API key file: %w", err)
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size(), ino: inodeOf(fi)}
	if s.keys != nil && st == s.stamp {
		return nil
	}
	kf, err := readKeyFile(s.path)
	if err != nil {
		return err
	}
	keys := make(map[string]Key, len(kf.Keys))
	order := make([]string, 0, len(kf.Keys))
	for _, k := range kf.Keys {
		if _, dup := keys[k.ID]; !dup {
			order = append(order, k.ID)
		}
		keys[k.ID] = k
	}
	s.keys, s.order, s.stamp = keys, order, st
	return nil
}

func readKeyFile(path string) (*keyFile, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("API key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("API key file %s is not a regular file (%s): %w", path, fi.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// Hashes are not secrets, but whoever can write this file can grant
		// themselves a key.
		return nil, fmt.Errorf("API key file %s has mode %v; it must be readable and writable by its owner only (chmod 600): %w", path, fi.Mode().Perm(), errdefs.ErrInvalidArgument)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("API key file: %w", err)
	}
	var kf keyFile
	if len(data) > 0 {
		if err := json.Unmarshal(data, &kf); err != nil {
			return nil, fmt.Errorf("API key file %s: %w: %w", path, err, errdefs.ErrInvalidArgument)
		}
	}
	return &kf, nil
}

// Authenticate returns the identity a bearer secret belongs to.
func (s *KeyStore) Authenticate(secret string) (Identity, error) {
	if secret == "" {
		return Identity{}, ErrNoCredentials
	}
	id, ok := parseSecret(secret)
	if !ok {
		return Identity{}, ErrBadKey
	}
	s.mu.Lock()
	err := s.load()
	k, found := s.keys[id]
	s.mu.Unlock()
	if err != nil {
		return Identity{}, err
	}
	sum := sha256.Sum256([]byte(secret))
	want, _ := hex.DecodeString(k.SHA256)
	// Compare even when the id is unknown, so timing says nothing of which
	// ids exist.
	if subtle.ConstantTimeCompare(sum[:], want) != 1 || !found {
		return Identity{}, ErrBadKey
	}
	if !k.Revoked.IsZero() {
		return Identity{}, ErrKeyRevoked
	}
	if !k.Expires.IsZero() && !s.now().Before(k.Expires) {
		return Identity{}, ErrKeyExpired
	}
	return Identity{KeyID: k.ID, Name: k.Name, Scopes: slices.Clone(k.Scopes)}, nil
}

// parseSecret extracts the key id from vordr_<id>_<random>.
func parseSecret(secret string) (string, bool) {
	rest, ok := strings.CutPrefix(secret, secretPrefix)
	if !ok {
		return "", false
	}
	id, random, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 || len(random) < 32 {
		return "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", false
	}
	return id, true
}

// CreateOptions describe a new key.
type CreateOptions struct {
	Name   string
	Scopes []string
	// TTL is how long the key is valid; 0: no expiry.
	TTL time.Duration
}

// ValidateScopes checks scope names.
func ValidateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return fmt.Errorf("a key needs at least one scope (read, run or admin): %w", errdefs.ErrInvalidArgument)
	}
	for _, sc := range scopes {
		if _, ok := scopeRank[sc]; !ok {
			return fmt.Errorf("unknown scope %q: use read, run or admin: %w", sc, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// Create adds a key and returns it with its secret, which is shown once and
// never stored.
func (s *KeyStore) Create(opts CreateOptions) (Key, string, error) {
	if err := ValidateScopes(opts.Scopes); err != nil {
		return Key{}, "", err
	}
	if opts.TTL < 0 {
		return Key{}, "", fmt.Errorf("negative key lifetime %v: %w", opts.TTL, errdefs.ErrInvalidArgument)
	}
	idb := make([]byte, 8)
	rb := make([]byte, 32)
	if _, err := rand.Read(idb); err != nil {
		return Key{}, "", err
	}
	if _, err := rand.Read(rb); err != nil {
		return Key{}, "", err
	}
	id := hex.EncodeToString(idb)
	secret := secretPrefix + id + "_" + hex.EncodeToString(rb)
	sum := sha256.Sum256([]byte(secret))
	now := s.now().UTC().Truncate(time.Second)
	k := Key{ID: id, Name: opts.Name, SHA256: hex.EncodeToString(sum[:]), Scopes: slices.Clone(opts.Scopes), Created: now}
	if opts.TTL > 0 {
		k.Expires = now.Add(opts.TTL)
	}
	err := s.update(func(kf *keyFile) error {
		kf.Keys = append(kf.Keys, k)
		return nil
	})
	if err != nil {
		return Key{}, "", err
	}
	return k, secret, nil
}

// List returns every key in the order they were created.
func (s *KeyStore) List() ([]Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(); err != nil {
		return nil, err
	}
	out := make([]Key, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.keys[id])
	}
	return out, nil
}

// Revoke marks a key revoked. The record stays, so the audit log's key ids
// keep a meaning.
func (s *KeyStore) Revoke(id string) error {
	return s.update(func(kf *keyFile) error {
		for i := range kf.Keys {
			if kf.Keys[i].ID == id {
				if kf.Keys[i].Revoked.IsZero() {
					kf.Keys[i].Revoked = s.now().UTC().Truncate(time.Second)
				}
				return nil
			}
		}
		return fmt.Errorf("no API key %q in %s (vordr serve keys list): %w", id, s.path, errdefs.ErrNotFound)
	})
}

// update rewrites the file atomically (a reader sees the old or the new
// file, never half of one).
func (s *KeyStore) update(f func(*keyFile) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("API key file: %w", err)
	}
	unlock, err := lockKeys(s.path)
	if err != nil {
		return fmt.Errorf("API key file lock: %w", err)
	}
	defer unlock()
	kf := &keyFile{}
	if _, err := os.Lstat(s.path); err == nil {
		if kf, err = readKeyFile(s.path); err != nil {
			return err
		}
	}
	if err := f(kf); err != nil {
		return err
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".keys-*")
	if err != nil {
		return fmt.Errorf("API key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("API key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("API key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("API key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("API key file: %w", err)
	}
	s.keys = nil // re-read on next use
	return nil
}

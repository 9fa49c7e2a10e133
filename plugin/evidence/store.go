package evidence

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/vordr-project/vordr/ctp"
)

// DefaultStoreDir is where the pull-time verifier keeps the evidence it
// fetched from a registry and verified, for the runtime gate to find by
// manifest digest: the verifier runs before containerd stores the image, so
// it cannot label the image record.
const DefaultStoreDir = "/var/lib/vordr/evidence"

// Store file names, per manifest: <dir>/<manifest hex>/<name>.
const (
	storeAttestations = "attestations.json"
	storeManifestTOML = "manifest.toml"
)

// WriteStore records evidence for manifest md in dir, replacing what was
// there. Nothing written here is trusted: the gate verifies it as it
// verifies evidence in the content store, so a planted file can only make a
// Create fail.
func WriteStore(dir string, md digest.Digest, attestJSON, manifestTOML []byte) error {
	if err := md.Validate(); err != nil {
		return fmt.Errorf("evidence store: manifest digest %q: %w", md, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("evidence store: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-")
	if err != nil {
		return fmt.Errorf("evidence store: %w", err)
	}
	defer os.RemoveAll(tmp)
	for name, data := range map[string][]byte{storeAttestations: attestJSON, storeManifestTOML: manifestTOML} {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o600); err != nil {
			return fmt.Errorf("evidence store: %w", err)
		}
	}
	final := filepath.Join(dir, md.Encoded())
	// Replace atomically: rename the old one away first (rename(2) does not
	// replace a non-empty directory).
	old := final + ".old"
	_ = os.RemoveAll(old)
	if err := os.Rename(final, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("evidence store: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("evidence store: %w", err)
	}
	_ = os.RemoveAll(old)
	pruneStore(dir, StoreKeep)
	return nil
}

// StoreKeep bounds the evidence store: the most recently stored entries are
// kept (each is written again at every verified pull of its manifest).
const StoreKeep = 1000

// pruneStore removes all but the keep newest entries of dir: a node that
// pulls many images must not grow the store for ever. An entry removed for
// an image still in use only means the gate refuses new containers of it
// until it is pulled again.
func pruneStore(dir string, keep int) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type entry struct {
		name string
		mod  time.Time
	}
	var all []entry
	for _, e := range ents {
		if !e.IsDir() || len(e.Name()) != 64 {
			continue // temporaries and strays are not entries
		}
		if fi, err := e.Info(); err == nil {
			all = append(all, entry{e.Name(), fi.ModTime()})
		}
	}
	if len(all) <= keep {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.After(all[j].mod) })
	for _, e := range all[keep:] {
		_ = os.RemoveAll(filepath.Join(dir, e.name))
	}
}

// OfStore is the evidence recorded in dir for img's manifest (by WriteStore),
// with the two evidence files already read; Load then reads the manifest and
// config from the content store. It wraps ErrNoEvidence when dir holds
// nothing for the image.
func OfStore(img images.Image, dir string) (*Evidence, error) {
	if img.Target.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("image %s: %w", img.Name, ErrNoEvidence)
	}
	base := filepath.Join(dir, img.Target.Digest.Encoded())
	lim := ctp.DefaultLimits
	att, err := readStoreFile(filepath.Join(base, storeAttestations), lim.MaxAttestationJSON)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("image %s (no evidence in %s either): %w", img.Name, dir, ErrNoEvidence)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: evidence store: %w", img.Name, err)
	}
	toml, err := readStoreFile(filepath.Join(base, storeManifestTOML), lim.MaxManifestTOML)
	if err != nil {
		return nil, fmt.Errorf("image %s: evidence store: %w", img.Name, err)
	}
	return &Evidence{Image: img, Attestations: digest.FromBytes(att), ManifestTOML: digest.FromBytes(toml), attestJSON: att, manifestTOML: toml, fromStore: true}, nil
}

// FromStore reports evidence read from the evidence store rather than named
// by the image's labels.
func (e *Evidence) FromStore() bool { return e.fromStore }

// readStoreFile reads a regular file of at most max bytes, without following
// a symlink or blocking on a FIFO.
func readStoreFile(path string, max int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", path, errdefs.ErrInvalidArgument)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, limit %d: %w", path, fi.Size(), max, errdefs.ErrInvalidArgument)
	}
	return io.ReadAll(io.LimitReader(f, max+1))
}

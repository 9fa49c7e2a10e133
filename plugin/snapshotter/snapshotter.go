// Package snapshotter is vordr's verifying snapshotter: it wraps a containerd
// snapshotter (overlayfs in cmd/vordr-snapshotter) and refuses, under a strict
// policy, to hand out a container root filesystem whose layer chain was not
// unpacked from a verified image.
//
// Layers are unpacked as usual (containerd's unpacker prepares "extract-…"
// snapshots and commits them under their chain ids); `vordr import` then labels
// the committed chain with plugin.SnapshotLabelVerifiedImage (the image
// manifest digest) and plugin.SnapshotLabelPolicy. Those labels are the
// verified-chain record, and only hints: when a container snapshot is prepared
// (or its mounts are asked for, as containerd does when a task is created), the
// parent chain's record is checked by a Checker — EvidenceChecker re-verifies
// the attestations containerd stores for that image under the snapshotter's
// own policy and checks that the parent is the image's top layer.
//
// The check holds for every client of containerd (ctr, nerdctl, CRI) because
// it sits below them; it does not need the vordr runtime.
package snapshotter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/plugin"
)

// ErrUnverifiedChain is wrapped (with errdefs.ErrPermissionDenied) when a
// strict snapshotter refuses a container snapshot.
var ErrUnverifiedChain = errors.New("parent layer chain is not from a verified image")

// Chain names the committed snapshot a container rootfs would sit on.
type Chain struct {
	// Namespace is the containerd namespace the request came from.
	Namespace string
	// Key is the backend key of the parent ("ns/id/name" when containerd's
	// metadata store made it).
	Key string
	// Name is the client-visible name of the parent (for unpacked layers,
	// the chain id).
	Name string
	// Labels are the parent's labels as the backend stores them.
	Labels map[string]string
}

// Checker decides whether a committed chain is verified. It returns a
// description of what was verified (e.g. the image) or an error saying why
// not.
type Checker interface {
	CheckChain(ctx context.Context, c Chain) (string, error)
}

// Op is the snapshotter operation a decision was made for.
type Op string

// Operations that are checked.
const (
	OpPrepare Op = "prepare"
	OpView    Op = "view"
	OpMounts  Op = "mounts"
)

// Decision is what the snapshotter decided for one request, reported to
// Options.OnDecision (the daemon logs it; the library never logs).
type Decision struct {
	Op        Op
	Key       string
	Chain     Chain
	Mode      policy.Mode
	Verified  string // what the checker verified, when Err is nil
	Err       error  // why the chain is not verified
	Allowed   bool
	Cached    bool
	Elapsed   time.Duration
	Namespace string
}

// Options configure a Snapshotter.
type Options struct {
	// Mode says what a failed check does: strict refuses, permissive allows
	// (and reports a warning), audit allows (and reports). Empty is audit.
	Mode policy.Mode
	// Checker verifies chains; nil means every chain is unverified.
	Checker Checker
	// CacheTTL bounds how long a successful check is reused for the same
	// parent and labels; 0 means 5 minutes, negative disables caching.
	CacheTTL time.Duration
	// OnDecision, if set, is called for every checked request.
	OnDecision func(ctx context.Context, d Decision)
}

// Snapshotter wraps another snapshotter with the verified-chain check.
type Snapshotter struct {
	snapshots.Snapshotter
	opts  Options
	cache *cache
}

var _ snapshots.Snapshotter = (*Snapshotter)(nil)
var _ snapshots.Cleaner = (*Snapshotter)(nil)

// New wraps inner.
func New(inner snapshots.Snapshotter, opts Options) *Snapshotter {
	if opts.Mode == "" {
		opts.Mode = policy.Audit
	}
	ttl := opts.CacheTTL
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	return &Snapshotter{Snapshotter: inner, opts: opts, cache: newCache(ttl)}
}

// Mode is the snapshotter's enforcement mode.
func (s *Snapshotter) Mode() policy.Mode { return s.opts.Mode }

// Prepare implements snapshots.Snapshotter: an unpack (extract) snapshot is
// always allowed; a container snapshot is checked before it is created.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	if !isUnpack(key, opts) {
		if err := s.check(ctx, OpPrepare, key, parent); err != nil {
			return nil, err
		}
	}
	return s.Snapshotter.Prepare(ctx, key, parent, opts...)
}

// View implements snapshots.Snapshotter: a read-only container rootfs is
// checked like a writable one.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	if !isUnpack(key, opts) {
		if err := s.check(ctx, OpView, key, parent); err != nil {
			return nil, err
		}
	}
	return s.Snapshotter.View(ctx, key, parent, opts...)
}

// Mounts implements snapshots.Snapshotter. containerd asks for a container's
// mounts when its task is created, so a snapshot made before the policy
// changed, or made as an "extract" snapshot to get around the Prepare check,
// is checked again here.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	info, err := s.Snapshotter.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if info.Kind == snapshots.KindActive || info.Kind == snapshots.KindView {
		if err := s.check(ctx, OpMounts, key, info.Parent); err != nil {
			return nil, err
		}
	}
	return s.Snapshotter.Mounts(ctx, key)
}

// Cleanup implements snapshots.Cleaner when the wrapped snapshotter does.
func (s *Snapshotter) Cleanup(ctx context.Context) error {
	if c, ok := s.Snapshotter.(snapshots.Cleaner); ok {
		return c.Cleanup(ctx)
	}
	return nil
}

// isUnpack tells an unpack snapshot from a container one the way containerd's
// unpacker names them: key "extract-<unique> <chain id>" and the
// containerd.io/snapshot.ref label naming the chain id it will commit as.
func isUnpack(key string, opts []snapshots.Opt) bool {
	if strings.HasPrefix(clientName(key), snapshots.UnpackKeyPrefix+"-") {
		return true
	}
	var info snapshots.Info
	for _, o := range opts {
		if err := o(&info); err != nil {
			return false
		}
	}
	return info.Labels[snapshots.LabelSnapshotRef] != ""
}

// splitKey splits a backend key made by containerd's metadata store,
// "<namespace>/<sequence>/<name>", into namespace and name; ok is false for
// a key in another shape (a client talking to the snapshotter directly).
func splitKey(key string) (ns, name string, ok bool) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", key, false
	}
	for _, r := range parts[1] {
		if r < '0' || r > '9' {
			return "", key, false
		}
	}
	return parts[0], parts[2], true
}

func clientName(key string) string {
	_, name, _ := splitKey(key)
	return name
}

// check decides a container snapshot on parent and returns the error to
// refuse it with, or nil.
func (s *Snapshotter) check(ctx context.Context, op Op, key, parent string) error {
	start := time.Now()
	d := Decision{Op: op, Key: key, Mode: s.opts.Mode}
	d.Namespace, _, _ = splitKey(key)
	if d.Namespace == "" {
		d.Namespace, _ = namespaces.Namespace(ctx)
	}
	d.Err = s.verify(ctx, parent, &d)
	d.Elapsed = time.Since(start)
	d.Allowed = d.Err == nil || s.opts.Mode != policy.Strict
	if s.opts.OnDecision != nil {
		s.opts.OnDecision(ctx, d)
	}
	if d.Allowed {
		return nil
	}
	return fmt.Errorf("vordr snapshotter (strict): refusing %s of snapshot %q: %w: %w: %w", op, clientName(key), ErrUnverifiedChain, d.Err, errdefs.ErrPermissionDenied)
}

func (s *Snapshotter) verify(ctx context.Context, parent string, d *Decision) error {
	if parent == "" {
		return errors.New("the snapshot has no parent, so nothing in it was verified; import a signed bundle with `vordr import --snapshotter vordr` and run from its image")
	}
	pinfo, err := s.Snapshotter.Stat(ctx, parent)
	if err != nil {
		return fmt.Errorf("parent %q: %w", parent, err)
	}
	ns, name, ok := splitKey(parent)
	if !ok {
		ns = d.Namespace
	}
	d.Chain = Chain{Namespace: ns, Key: parent, Name: name, Labels: pinfo.Labels}
	if pinfo.Labels[plugin.SnapshotLabelVerifiedImage] == "" {
		return fmt.Errorf("parent %s carries no verified-chain record (label %s): its layers were not unpacked by `vordr import` from a verified bundle",
			name, plugin.SnapshotLabelVerifiedImage)
	}
	if s.opts.Checker == nil {
		return errors.New("no checker configured")
	}
	ck := cacheKey(d.Chain)
	if v, ok := s.cache.get(ck); ok {
		d.Verified, d.Cached = v, true
		return nil
	}
	v, err := s.opts.Checker.CheckChain(ctx, d.Chain)
	if err != nil {
		return err
	}
	d.Verified = v
	s.cache.put(ck, v)
	return nil
}

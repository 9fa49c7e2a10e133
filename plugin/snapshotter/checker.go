package snapshotter

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/ctp/sigstore"
	"github.com/vordr-project/vordr/plugin"
)

// EvidenceChecker verifies a chain from the evidence containerd holds: the
// chain's record names an image manifest; an image record of the chain's
// namespace with that target must carry attestations that re-verify under
// Policy (plugin.FindVerifiedImage), and the chain must be that image's top
// layer (the chain id of its signed config's diff ids).
type EvidenceChecker struct {
	// Address of containerd's gRPC socket.
	Address string
	// Policy the attestations are re-verified under.
	Policy *policy.Policy

	mu     sync.Mutex
	client *containerd.Client
}

// CheckChain implements Checker.
func (e *EvidenceChecker) CheckChain(ctx context.Context, c Chain) (string, error) {
	if e.Policy == nil {
		return "", fmt.Errorf("no verification policy: %w", errdefs.ErrFailedPrecondition)
	}
	if c.Namespace == "" {
		return "", fmt.Errorf("the request carries no containerd namespace, so the image cannot be looked up: %w", errdefs.ErrInvalidArgument)
	}
	md, err := digest.Parse(c.Labels[plugin.SnapshotLabelVerifiedImage])
	if err != nil {
		return "", fmt.Errorf("parent %s: label %s: %v: %w", c.Name, plugin.SnapshotLabelVerifiedImage, err, errdefs.ErrInvalidArgument)
	}
	client, err := e.getClient()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.WithoutCancel(ctx), c.Namespace), 30*time.Second)
	defer cancel()
	ev, err := plugin.FindVerifiedImage(ctx, client, md, e.Policy, ctp.VerifyOptions{Sigstore: sigstore.PolicyVerifier{}})
	if err != nil {
		return "", fmt.Errorf("parent %s claims image %s: %w", c.Name, md, err)
	}
	if top := ev.ChainID(); top.String() != c.Name {
		return "", fmt.Errorf("parent %s is not the top layer %s of verified image %s: %w", c.Name, top, ev.Image.Name, errdefs.ErrFailedPrecondition)
	}
	return ev.Image.Name + "@" + md.String(), nil
}

func (e *EvidenceChecker) getClient() (*containerd.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		return e.client, nil
	}
	if e.Address == "" {
		return nil, fmt.Errorf("no containerd address to read evidence from: %w", errdefs.ErrFailedPrecondition)
	}
	// containerd may be starting (it needs this snapshotter): connect
	// lazily, on the first check.
	c, err := containerd.New(e.Address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s to read evidence: %w", e.Address, err)
	}
	e.client = c
	return c, nil
}

// Close releases the containerd connection.
func (e *EvidenceChecker) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client == nil {
		return nil
	}
	err := e.client.Close()
	e.client = nil
	return err
}

// LabelChecker trusts the verified-chain record itself: a chain is verified
// when its labels name an image and the digest of PolicyDigest's policy. It
// needs no containerd connection but proves nothing against a client that
// can label snapshots; use it only where EvidenceChecker cannot reach
// containerd.
type LabelChecker struct {
	PolicyDigest digest.Digest
}

// CheckChain implements Checker.
func (l LabelChecker) CheckChain(_ context.Context, c Chain) (string, error) {
	img := c.Labels[plugin.SnapshotLabelVerifiedImage]
	if got := c.Labels[plugin.SnapshotLabelPolicy]; got != l.PolicyDigest.String() {
		return "", fmt.Errorf("parent %s was verified under policy %q, not this snapshotter's %s: %w", c.Name, got, l.PolicyDigest, errdefs.ErrFailedPrecondition)
	}
	return img + " (labels only)", nil
}

// cache remembers successful checks for a while, keyed by the parent and its
// vordr labels: relabelling the parent is a new key.
type cache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cached
}

type cached struct {
	what  string
	until time.Time
}

// maxCached bounds the cache.
const maxCached = 4096

func newCache(ttl time.Duration) *cache { return &cache{ttl: ttl, m: map[string]cached{}} }

func cacheKey(c Chain) string {
	var vl []string
	for k, v := range c.Labels {
		if strings.Contains(k, "vordr.") {
			vl = append(vl, k+"="+v)
		}
	}
	sort.Strings(vl)
	return c.Namespace + "\x00" + c.Key + "\x00" + strings.Join(vl, "\x00")
}

func (c *cache) get(k string) (string, bool) {
	if c.ttl < 0 {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	if !ok {
		return "", false
	}
	if time.Now().After(v.until) {
		delete(c.m, k)
		return "", false
	}
	return v.what, true
}

func (c *cache) put(k, what string) {
	if c.ttl < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.m) >= maxCached {
		for k, v := range c.m {
			if now.After(v.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCached {
			clear(c.m) // bounded memory; the next checks repopulate it
		}
	}
	c.m[k] = cached{what: what, until: now.Add(c.ttl)}
}

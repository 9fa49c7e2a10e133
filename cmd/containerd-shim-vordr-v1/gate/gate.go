//go:build linux

// Package gate is the shim hook that decides, before runc create, whether a
// container's image may run: it finds the container's image through
// containerd's API, re-verifies the attestations stored with it at import
// against the image's manifest digest under the container's policy, and checks
// that the container's rootfs snapshot descends from that image's layers.
//
// The policy is the one named by the vordr.io/policy annotation (it must be
// one of the runtime config's [policies]) or the config's default_policy. Its
// mode decides what a failed check does: strict refuses Create, permissive
// allows it with a warning and an alert on containerd's event bus, audit
// logs. Without any policy configured the gate only warns, so a plain
// `ctr run --runtime io.containerd.vordr.v1` works out of the box.
package gate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	cplugin "github.com/containerd/plugin"
	"github.com/opencontainers/go-digest"

	"github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/task"
	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/eventlog"
	"github.com/vordr-project/vordr/monitor"
	"github.com/vordr-project/vordr/plugin/evidence"
	"github.com/vordr-project/vordr/plugin/rootfs"
	"github.com/vordr-project/vordr/plugin/sigstorecheck"
)

// Alert topic and payload, as the guard publishes them: a
// containerd.types.Descriptor that every containerd client can decode.
const (
	TopicAlert     = "/vordr/alert"
	MediaTypeAlert = "application/vnd.vordr.alert.v1+json"
)

// cacheTTL bounds how long a successful verification is trusted without
// re-checking signatures: signer validity windows end.
const cacheTTL = 5 * time.Minute

func init() {
	task.RegisterHook(task.HookFactory{Name: "gate", New: New})
}

// Gate is the verification gate hook.
type Gate struct {
	task.NopHook
	address   string
	publisher shim.Publisher

	clientMu sync.Mutex
	client   *services

	mu       sync.Mutex
	verified map[string]verdict  // by evidence key | policy digest
	uppers   map[string]*started // by namespace/id, until Start
}

// verdict is a cached successful verification.
type verdict struct {
	until  time.Time
	layers []rootfs.Layer
}

// started is what PreStart re-checks: the writable layer of a container
// whose content was checked at Create.
type started struct {
	upper    string
	allowed  []string
	decision Decision
}

// New makes the gate for a shim; the containerd address is the one the shim
// was started with.
func New(ic *cplugin.InitContext, publisher shim.Publisher) (task.Hook, error) {
	addr := ic.Properties[plugins.PropertyGRPCAddress]
	if addr == "" {
		addr = os.Getenv("GRPC_ADDRESS")
	}
	g := &Gate{address: addr, publisher: publisher, verified: map[string]verdict{}, uppers: map[string]*started{}}
	if addr != "" {
		// Connect while containerd is still starting the shim, so the first
		// Create does not pay for the connection, but only where the node's
		// config names policies: without one the gate never asks containerd
		// anything, and an idle connection costs both sides memory.
		go func() {
			if cfg, err := config.Default(); err == nil && len(cfg.Policies) > 0 {
				g.warm()
			}
		}()
	}
	return g, nil
}

// warm opens the connection to containerd (no call: without a policy the
// gate never asks containerd anything).
func (g *Gate) warm() {
	if c, err := g.getClient(); err == nil {
		c.conn.Connect()
	}
}

// Name implements task.Hook.
func (g *Gate) Name() string { return "gate" }

// Decision is the outcome of a check, for logs and tests.
type Decision struct {
	Policy  string
	Mode    policy.Mode
	Image   string
	Err     error // nil: verified
	Cached  bool
	Elapsed time.Duration
	// Phases times the steps of the check, for the log.
	Phases phases
	// upper is the writable layer checked at Create, re-checked at Start.
	upper string
}

// phases records how long each step of a check took.
type phases struct {
	last  time.Time
	steps []string
}

func (p *phases) mark(step string) {
	now := time.Now()
	if !p.last.IsZero() {
		p.steps = append(p.steps, step+"="+now.Sub(p.last).Round(time.Microsecond).String())
	}
	p.last = now
}

func (p *phases) String() string { return strings.Join(p.steps, " ") }

// PreCreate implements task.Hook.
func (g *Gate) PreCreate(ctx context.Context, c *task.Container) error {
	start := time.Now()
	lg := log.G(ctx).WithField("id", c.ID)
	sel := c.Selection
	if sel == nil || sel.Policy == nil {
		// Not a warning per container: the node has simply not configured
		// verification. `vordr doctor` reports it once.
		lg.Debug("vordr gate: no verification policy configured (runtime config [policies] / default_policy); the container's image is not verified (audit)")
		return nil
	}
	name, pol := sel.PolicyName, sel.Policy
	pd, err := evidence.PolicyDigest(pol)
	if err != nil {
		return fmt.Errorf("verification policy %q: %w", name, err)
	}
	d := g.check(namespaces.WithNamespace(ctx, c.Namespace), c, pol, pd)
	d.Policy, d.Elapsed = name, time.Since(start)
	lg = lg.WithFields(log.Fields{"image": d.Image, "policy": name, "mode": d.Mode, "cached": d.Cached, "took": d.Elapsed.String(), "phases": d.Phases.String()})
	if d.upper != "" {
		g.mu.Lock()
		g.uppers[c.Namespace+"/"+c.ID] = &started{upper: d.upper, allowed: mountpoints(c), decision: d}
		g.mu.Unlock()
	}
	if d.Err == nil {
		lg.Info("vordr gate: image verified")
		c.GateRecord = gateRecord(c, d, nil)
		return nil
	}
	err = g.judge(ctx, c, d, "")
	if err == nil {
		c.GateRecord = gateRecord(c, d, nil)
		return nil
	}
	// A refused container gets no guard, and so no event log from it:
	// write the one line it has here.
	if c.Config != nil {
		ev := c.Config.Events
		if w, werr := eventlog.Create(ev.Dir, c.Namespace, c.ID, ev.MaxFileBytes, ev.MaxFiles); werr != nil {
			log.G(ctx).WithError(werr).Warn("vordr gate: record the refusal in the event log")
		} else {
			_ = w.Write(gateRecord(c, d, err))
			_ = w.Close()
		}
	}
	return err
}

// gateRecord is the gate's decision as an event log line (kind "gate"): the
// guard writes it first in the container's log, the gate itself for a
// refused container. `vordr events --container` shows it, and the metrics
// exporter counts decisions and check times from it.
func gateRecord(c *task.Container, d Decision, refused error) map[string]any {
	decision, verdict := "verified", "allowed"
	switch {
	case refused != nil:
		decision, verdict = "refused", "denied"
	case d.Err != nil:
		decision = "unverified"
	}
	g := map[string]any{"decision": decision, "mode": d.Mode, "policy": d.Policy, "image": d.Image,
		"seconds": d.Elapsed.Seconds(), "cached": d.Cached}
	if d.Err != nil {
		reason := string(ctp.CodeOf(d.Err))
		if reason == "" {
			reason = "other"
		}
		g["reason"], g["message"] = reason, d.Err.Error()
	}
	return map[string]any{"time": time.Now(), "kind": "gate", "container_id": c.ID, "verdict": verdict, "gate": g}
}

// judge applies the policy's mode to a failed check.
func (g *Gate) judge(ctx context.Context, c *task.Container, d Decision, when string) error {
	lg := log.G(ctx).WithFields(log.Fields{"id": c.ID, "image": d.Image, "policy": d.Policy, "mode": d.Mode})
	name := d.Policy
	switch d.Mode {
	case policy.Permissive:
		lg.WithError(d.Err).Warn("vordr gate: image NOT verified" + when + "; allowed by permissive policy")
		g.alert(ctx, c, d)
		return nil
	case policy.Audit:
		lg.WithError(d.Err).Info("vordr gate: image not verified" + when + " (audit)")
		return nil
	default:
		lg.WithError(d.Err).Error("vordr gate: refused" + when)
		g.alert(ctx, c, d)
		err := fmt.Errorf("image %s is not verified under policy %q (strict)%s: %w", d.Image, name, when, d.Err)
		if !errdefs.IsPermissionDenied(err) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
		}
		return err
	}
}

// PreStart re-checks the writable layer: content written into the active
// snapshot between Create and Start would run as the entrypoint.
func (g *Gate) PreStart(ctx context.Context, c *task.Container) error {
	k := c.Namespace + "/" + c.ID
	g.mu.Lock()
	st := g.uppers[k]
	delete(g.uppers, k)
	g.mu.Unlock()
	if st == nil {
		return nil
	}
	if err := rootfs.CheckUpper(st.upper, st.allowed); err != nil {
		d := st.decision
		d.Err = err
		return g.judge(ctx, c, d, " at start")
	}
	return nil
}

// Deleted forgets a container that was never started.
func (g *Gate) Deleted(_ context.Context, c *task.Container) {
	g.mu.Lock()
	delete(g.uppers, c.Namespace+"/"+c.ID)
	g.mu.Unlock()
}

// mountpoints are the paths runc may create in the rootfs: the spec's mount
// destinations and the process's working directory.
func mountpoints(c *task.Container) []string {
	var out []string
	if c.Spec == nil {
		return nil
	}
	for _, m := range c.Spec.Mounts {
		out = append(out, m.Destination)
	}
	if c.Spec.Process != nil && c.Spec.Process.Cwd != "" {
		out = append(out, c.Spec.Process.Cwd)
	}
	return out
}

func (g *Gate) getClient() (*services, error) {
	g.clientMu.Lock()
	defer g.clientMu.Unlock()
	if g.client != nil {
		return g.client, nil
	}
	if g.address == "" {
		return nil, fmt.Errorf("the shim was started without containerd's address (-address), so it cannot look up the container's image: %w", errdefs.ErrFailedPrecondition)
	}
	c, err := dial(g.address)
	if err != nil {
		return nil, err
	}
	g.client = c
	return c, nil
}

// check runs the verification; Decision.Err says why the image is not
// verified.
func (g *Gate) check(ctx context.Context, c *task.Container, pol *policy.Policy, pd digest.Digest) (d Decision) {
	d.Mode = pol.Mode
	d.Image = "(unknown)"
	d.Phases.mark("")
	defer func() { d.Phases.mark("content") }()
	client, err := g.getClient()
	if err != nil {
		d.Err = err
		return d
	}
	d.Phases.mark("connect")
	ctx = namespaces.WithNamespace(ctx, c.Namespace) // also the gRPC header
	rec, img, err := evidence.ContainerImage(ctx, client.containers, client.images, c.ID)
	d.Phases.mark("lookup")
	if rec.Image != "" {
		d.Image = rec.Image
	}
	if err != nil {
		d.Err = err
		return d
	}
	d.Image = img.Name + "@" + img.Target.Digest.String()
	ev, err := evidence.Of(img)
	if errors.Is(err, evidence.ErrNoEvidence) {
		// Another record of the same manifest may carry the evidence: the
		// CRI names an image imported as repo:tag also repo@digest and by
		// its config digest. Its evidence is verified against this
		// manifest, so which record carries it does not matter.
		if sibs, lerr := client.images.ByTarget(ctx, img.Target.Digest); lerr == nil {
			for _, s := range sibs {
				if sev, serr := evidence.Of(s); serr == nil && s.Target.Digest == img.Target.Digest {
					sev.Image.Name = img.Name
					ev, err = sev, nil
					break
				}
			}
		}
	}
	if errors.Is(err, evidence.ErrNoEvidence) {
		// Pulled by ctr, nerdctl or the CRI: the pull-time verifier may
		// have stored the registry's evidence by manifest digest.
		dir := c.Config.Gate.EvidenceDir
		if dir == "" {
			dir = evidence.DefaultStoreDir
		}
		ev, err = evidence.OfStore(img, dir)
	}
	if err != nil {
		d.Err = err
		return d
	}
	key := ev.Key() + "|" + pd.String()
	g.mu.Lock()
	v, ok := g.verified[key]
	g.mu.Unlock()
	var layers []rootfs.Layer
	if ok && time.Now().Before(v.until) {
		// A cached verdict still needs the evidence to exist and the
		// rootfs to be the content; both are checked below.
		cs := client.content
		evidenceBlobs := []digest.Digest{ev.Attestations, ev.ManifestTOML}
		if ev.FromStore() {
			evidenceBlobs = nil // just read from the store; its key names them
		}
		for _, dg := range evidenceBlobs {
			if _, err := cs.Info(ctx, dg); err != nil {
				d.Err = fmt.Errorf("image %s: evidence %s: %w", img.Name, dg, err)
				return d
			}
		}
		layers = v.layers
		d.Cached = true
	} else {
		if err := ev.Load(ctx, client.content); err != nil {
			d.Err = err
			return d
		}
		d.Phases.mark("load")
		res, err := ev.Verify(ctx, pol, ctp.VerifyOptions{Sigstore: sigstorecheck.Exec{Path: task.HelperPath(), Run: task.RunReaped}})
		d.Phases.mark("verify")
		if err == nil && res.Decision != ctp.Accept {
			err = &ctp.Error{Code: res.ErrorCode, Reason: res.Reason, Msg: res.Message}
		}
		if err != nil {
			d.Err = fmt.Errorf("attestations of image %s do not verify: %w", img.Name, err)
			return d
		}
		descs, diffIDs, err := ev.Layers()
		if err != nil {
			d.Err = err
			return d
		}
		for i := range descs {
			layers = append(layers, rootfs.Layer{Blob: descs[i], DiffID: diffIDs[i]})
		}
		g.mu.Lock()
		g.verified[key] = verdict{until: time.Now().Add(cacheTTL), layers: layers}
		g.mu.Unlock()
	}
	// The name of the container's snapshot proves nothing (anyone with the
	// containerd API can commit a snapshot under the verified chain id):
	// the mounts the shim is asked to mount must hold the content.
	chk := rootfs.Checker{Content: client.content, CacheDir: c.Config.Gate.CacheDir}
	res, err := chk.Check(ctx, layers, mount.FromProto(c.Mounts), mountpoints(c))
	if err != nil {
		d.Err = fmt.Errorf("container %s: %w", c.ID, err)
		return d
	}
	d.upper = res.Upper
	if p := c.Selection.Profile; p != nil && p.Exec.Drift == monitor.ActionDeny {
		// The guard appraises every exec against the signed image's
		// executables: only their bytes run.
		set, err := chk.Executables(ctx, layers)
		if err != nil {
			d.Err = fmt.Errorf("container %s: exec appraisal set: %w", c.ID, err)
			return d
		}
		c.ImageExecutables, c.VerifiedImage = set, d.Image
	}
	return d
}

// alert publishes a permissive-mode failure on containerd's event bus.
func (g *Gate) alert(ctx context.Context, c *task.Container, d Decision) {
	if g.publisher == nil {
		return
	}
	ev := &types.Descriptor{MediaType: MediaTypeAlert, Annotations: map[string]string{
		"vordr.io/rule":      "unverified-image",
		"vordr.io/severity":  "high",
		"vordr.io/container": c.ID,
		"vordr.io/image":     d.Image,
		"vordr.io/policy":    d.Policy,
		"vordr.io/reason":    d.Err.Error(),
	}}
	if code := ctp.CodeOf(d.Err); code != "" {
		ev.Annotations["vordr.io/code"] = string(code)
	}
	if err := g.publisher.Publish(namespaces.WithNamespace(ctx, c.Namespace), TopicAlert, ev); err != nil {
		log.G(ctx).WithError(err).Warn("vordr gate: publish alert")
	}
}

//go:build linux

// Package guard is the shim hook that puts every container under vordr's
// guard: it shapes the OCI spec with the container's security profile before
// runc create, attaches the eBPF/fanotify guard after runc create (before the
// container's first instruction), writes every event to the container's event
// log, publishes alerts on containerd's event bus, and removes every trace at
// delete.
package guard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/log"
	"github.com/containerd/plugin"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vordr-project/vordr/alerts"
	"github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/task"
	"github.com/vordr-project/vordr/eventlog"
	"github.com/vordr-project/vordr/monitor"
)

func init() {
	task.RegisterHook(task.HookFactory{
		Name: "guard",
		New: func(ic *plugin.InitContext, publisher shim.Publisher) (task.Hook, error) {
			h := &hook{out: newOutbox(publisher), state: map[string]*guarded{}, tearing: map[string]chan struct{}{}}
			if ss, err := ic.GetByID(plugins.InternalPlugin, "shutdown"); err == nil {
				ss.(shutdown.Service).RegisterCallback(h.shutdown)
			}
			// The seccomp agent turns the profiles' denied syscalls (module,
			// bpf, ptrace…) into reported events: the kernel hands each
			// attempt to the shim, which answers EPERM. Without it the
			// syscalls are still denied, silently.
			agent, err := monitor.StartSeccompAgent(fmt.Sprintf("@vordr-seccomp-%d", os.Getpid()))
			if err != nil {
				log.G(ic.Context).WithError(err).Warn("vordr: seccomp agent unavailable; denied syscalls will not be reported")
			} else {
				h.agent = agent
			}
			self, _ := os.Executable() // runs monitor.PidnsSysctlMain (see main.go)
			h.opts = monitor.Options{Seccomp: h.agent, SysctlHelper: self, RunHelper: task.RunReaped}
			// containerd starts a shim for a task it is about to create:
			// prepare that task's guard (open the node's program set, claim
			// a ring) while containerd prepares the Create request.
			h.spareReady = make(chan struct{})
			go func() {
				defer close(h.spareReady)
				pp, err := monitor.Prepare(h.opts)
				if err != nil {
					log.G(ic.Context).WithError(err).Debug("vordr: prepare a guard at start (the first Create will try again)")
					return
				}
				h.mu.Lock()
				h.spare = pp
				h.mu.Unlock()
			}()
			return h, nil
		},
	})
}

type hook struct {
	task.NopHook
	out   *outbox               // events for containerd's bus, in order
	agent *monitor.SeccompAgent // nil when it could not start
	opts  monitor.Options       // of every guard of this shim

	// spare is a guard prepared when the shim started, for its first
	// container; spareReady closes once the attempt is over.
	spareReady chan struct{}

	mu    sync.Mutex
	spare *monitor.Prepared
	state map[string]*guarded // by namespace/id
	// tearing: guards being closed after Delete returned, by namespace/id;
	// closing counts them for shutdown.
	tearing map[string]chan struct{}
	closing sync.WaitGroup
}

// guarded is one container's guard state.
type guarded struct {
	profile *monitor.Profile
	guard   *monitor.Guard // nil when the guard could not attach (dev profile)
	log     *eventlog.Writer
	webhook *webhook
	pumped  chan struct{}
	pinned  []monitor.PinnedSource // bind sources checked at PreCreate
	// logReady closes once log (or logErr) is set: the log is opened while
	// runc creates the container.
	logReady chan struct{}
	logErr   error
	// prepReady closes once prep (or prepErr) is set: the guard's node-wide
	// part is prepared while runc creates the container too. Attach takes
	// prep over; teardown releases it if Attach never ran.
	prepReady chan struct{}
	prep      *monitor.Prepared
	prepErr   error
}

// LostMarker is the bundle file naming a guarded container's event log
// while its guard runs.
const LostMarker = "vordr-eventlog"

// RecordLost appends to the event log named in bundle's LostMarker that the
// guard ended without its shim: `shim delete` calls it after a dead shim.
func RecordLost(bundle, id string) error {
	b, err := os.ReadFile(filepath.Join(bundle, LostMarker))
	if err != nil {
		return nil // not guarded, or closed cleanly
	}
	f, err := os.OpenFile(strings.TrimSpace(string(b)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	now := time.Now()
	msg := "guard lost: the shim died before the container was deleted; nothing after this record was watched"
	a := monitor.Alert{Rule: monitor.RuleGuardDegraded, Severity: monitor.SevHigh, ContainerID: id, Message: msg}
	line, err := json.Marshal(monitor.Event{Time: now, Kind: monitor.KindAlert, ContainerID: id, Alert: &a})
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	os.Remove(filepath.Join(bundle, LostMarker))
	return err
}

func key(c *task.Container) string { return c.Namespace + "/" + c.ID }

func (h *hook) Name() string { return "guard" }

// PreCreate shapes the spec with the container's profile (config.Select
// chose it).
func (h *hook) PreCreate(ctx context.Context, c *task.Container) error {
	if c.Selection == nil || c.Selection.Profile == nil {
		return errors.New("internal error: no profile selected for the container")
	}
	p := c.Selection.Profile
	var opts []monitor.SpecOption
	if h.agent != nil {
		opts = append(opts, monitor.WithSeccompAgent(h.agent))
	}
	if cfg := c.Config; cfg != nil {
		// vordr's own state: a container that could write the gate's cache
		// could vouch for forged content.
		var cfgDir string
		if cfg.Path != "" {
			cfgDir = filepath.Dir(cfg.Path)
		}
		opts = append(opts, monitor.WithProtectedPaths(cfg.Gate.CacheDir, cfg.Events.Dir, cfgDir))
	}
	// The bind sources' inodes, checked again once runc has mounted them.
	var pinned []monitor.PinnedSource
	opts = append(opts, monitor.WithPinnedSources(&pinned))
	if err := p.ApplySpec(c.Spec, opts...); err != nil {
		return fmt.Errorf("apply security profile %q: %w", p.Name, err)
	}
	g := &guarded{profile: p, pinned: pinned, logReady: make(chan struct{}), prepReady: make(chan struct{})}
	h.mu.Lock()
	h.state[key(c)] = g
	h.mu.Unlock()
	// The node's program set, a ring from its pool and the ring's reader
	// do not depend on the container: take them while runc creates it, so
	// that only the container's own steps remain after runc create.
	go func() {
		defer close(g.prepReady)
		if g.prep = h.takeSpare(); g.prep == nil {
			g.prep, g.prepErr = monitor.Prepare(h.opts)
		}
	}()
	// Open the event log while runc creates the container: file creation
	// is disk I/O that Create need not wait for twice.
	go func() {
		defer close(g.logReady)
		h.waitTeardown(key(c)) // a previous container of this id still closing its log
		ev := c.Config.Events
		g.log, g.logErr = eventlog.Create(ev.Dir, c.Namespace, c.ID, ev.MaxFileBytes, ev.MaxFiles)
		if g.logErr == nil && c.GateRecord != nil {
			_ = g.log.Write(c.GateRecord) // set by the gate, which runs first
		}
		if g.logErr == nil {
			// Where this container's log is, for `shim delete` after a
			// dead shim (it writes the "guard lost" record the dead shim
			// could not).
			_ = os.WriteFile(filepath.Join(c.Bundle, LostMarker), []byte(g.log.Path()), 0o600)
		}
	}()
	return nil
}

// takeSpare returns the guard prepared at start, once; it waits for the
// attempt, which started earlier than a new one would.
func (h *hook) takeSpare() *monitor.Prepared {
	if h.spareReady == nil {
		return nil
	}
	<-h.spareReady
	h.mu.Lock()
	defer h.mu.Unlock()
	pp := h.spare
	h.spare = nil
	return pp
}

// releasePrep gives back the prepared guard of a container that will not
// be attached: a task returned stopped keeps its record until Delete, and
// its ring should not wait that long.
func (g *guarded) releasePrep() {
	<-g.prepReady
	g.prep.Release()
}

// waitTeardown waits until a guard of key closed after its Delete has done so.
func (h *hook) waitTeardown(k string) {
	h.mu.Lock()
	ch := h.tearing[k]
	h.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// shutdown lets the guards closing after Delete finish, then publishes what
// is queued: the shim exits after its callbacks.
func (h *hook) shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { h.closing.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	// A spare no container took: its ring goes back to the pool now
	// rather than when another shim finds this one gone.
	if pp := h.takeSpare(); pp != nil {
		pp.Release()
	}
	return h.out.close(ctx)
}

// PostCreate attaches the guard: the init process waits in runc init, so
// the container's first exec is the guard's first event.
func (h *hook) PostCreate(ctx context.Context, c *task.Container) error {
	h.mu.Lock()
	g := h.state[key(c)]
	h.mu.Unlock()
	if g == nil {
		return errors.New("internal error: no profile recorded for the container at PreCreate")
	}
	// runc has mounted the bind sources: each must be the inode checked.
	if err := monitor.VerifyPinned(c.Pid, g.pinned); err != nil {
		g.releasePrep()
		return err
	}
	<-g.logReady
	if g.logErr != nil {
		g.releasePrep()
		return g.logErr
	}
	w := g.log
	ev := c.Config.Events
	if ev.Webhook != "" {
		g.webhook = newWebhook(ev.Webhook)
	}
	start := time.Now()
	target := monitor.Target{
		ContainerID: c.ID,
		CgroupPath:  c.CgroupDir,
		CgroupID:    c.CgroupID,
		InitPID:     c.Pid,
		RootfsPath:  c.Rootfs,
	}
	if c.ImageExecutables != nil {
		target.Executables = &monitor.ImageExecutables{Digests: c.ImageExecutables, Source: "verified image " + c.VerifiedImage}
	}
	<-g.prepReady
	var guard *monitor.Guard
	err := g.prepErr
	if err == nil {
		guard, err = g.prep.Attach(ctx, target, g.profile)
	}
	if err != nil {
		if g.profile.Required {
			return fmt.Errorf("profile %q requires the guard, which could not attach: %w (run `vordr doctor` to see what this node supports, or choose profile dev to run unguarded)", g.profile.Name, err)
		}
		// Fail open, loudly: the profile allows it.
		msg := fmt.Sprintf("container %s runs UNGUARDED: profile %q does not require the guard and it could not attach: %v", c.ID, g.profile.Name, err)
		log.G(ctx).WithField("id", c.ID).Error("vordr: " + msg)
		alert := monitor.Alert{Rule: monitor.RuleGuardDegraded, Severity: monitor.SevHigh, ContainerID: c.ID, Message: msg}
		_ = w.Write(monitor.Event{Time: time.Now(), Kind: monitor.KindAlert, ContainerID: c.ID, CgroupID: c.CgroupID, Alert: &alert})
		_ = w.Flush()
		h.publishAlert(ctx, c, &alert, g.webhook)
		return nil
	}
	g.guard = guard
	g.pumped = make(chan struct{})
	took := time.Since(start)
	// Say so off Create's path (formatting the mechanisms and encoding the
	// bus event took 0.2 ms), before the pump can publish any alert.
	ctx = context.WithoutCancel(ctx)
	go func() {
		mech := guard.Mechanisms()
		log.G(ctx).WithFields(log.Fields{"id": c.ID, "profile": g.profile.Name, "cgroup_id": guard.CgroupID(), "mechanisms": mech, "took": took}).Info("vordr: guard attached")
		h.publish(ctx, alerts.TopicGuard, alerts.MediaTypeGuard, map[string]any{
			"event": "attached", "container_id": c.ID, "namespace": c.Namespace, "profile": g.profile.Name,
			"cgroup_id": guard.CgroupID(), "mechanisms": mech,
		}, map[string]string{"event": "attached", "container": c.ID, "profile": g.profile.Name})
		h.pump(c, g)
	}()
	// Attaching parses the eBPF object and opens the pinned set: a few MiB
	// of garbage the Go runtime would hand back to the OS only slowly. A
	// shim lives as long as its pod, so return it once the container runs.
	time.AfterFunc(time.Second, debug.FreeOSMemory)
	return nil
}

// pump drains the guard's events into the event log, alerts to the bus.
// It ends when the guard closes its channel (at Close, after a final drain).
func (h *hook) pump(c *task.Container, g *guarded) {
	defer close(g.pumped)
	// The publisher needs the namespace; the Create request's context is gone.
	ctx := namespaces.WithNamespace(context.Background(), c.Namespace)
	ctx = log.WithLogger(ctx, log.G(ctx).WithField("id", c.ID))
	events := g.guard.Events()
	for e := range events {
		if err := g.log.Write(e); err != nil {
			log.G(ctx).WithError(err).Warn("vordr: write event log")
		}
		if e.Kind == monitor.KindAlert && e.Alert != nil {
			// Alerts are rare: make them visible on disk at once.
			_ = g.log.Flush()
			h.publishAlert(ctx, c, e.Alert, g.webhook)
			continue
		}
		if len(events) == 0 {
			// A burst is written in one go; a quiet container's log is
			// complete on disk, and no timer wakes the shim.
			_ = g.log.Flush()
		}
	}
}

func (h *hook) publishAlert(ctx context.Context, c *task.Container, a *monitor.Alert, wh *webhook) {
	fields := map[string]string{
		"rule": a.Rule, "severity": a.Severity.String(), "container": c.ID, "namespace": c.Namespace, "message": a.Message,
	}
	for k, v := range a.Evidence {
		fields["evidence."+k] = v
	}
	log.G(ctx).WithFields(log.Fields{"rule": a.Rule, "severity": a.Severity.String()}).Warn("vordr alert: " + a.Message)
	h.publish(ctx, alerts.TopicAlert, alerts.MediaTypeAlert, a, fields)
	if wh != nil {
		wh.send(a)
	}
}

func (h *hook) publish(ctx context.Context, topic, mediaType string, v any, fields map[string]string) {
	d, err := alerts.Encode(mediaType, v, fields)
	if err != nil {
		log.G(ctx).WithError(err).Warn("vordr: encode event")
		return
	}
	h.out.send(ctx, topic, d)
}

// PreExec gives exec'd processes the same process-level hardening as the
// container's init (capabilities, no_new_privileges): the client sends the
// exec's process spec itself, unshaped. Seccomp, mounts and namespaces are
// the container's: runc exec takes them from the container, not from the
// process spec.
func (h *hook) PreExec(ctx context.Context, c *task.Container, execID string, p *specs.Process) error {
	h.mu.Lock()
	g := h.state[key(c)]
	h.mu.Unlock()
	if g == nil {
		return nil
	}
	g.profile.ApplyProcess(p)
	return nil
}

// Deleted closes the guard (removing its map entries, links and marks),
// writes its final counters and closes the event log — after Delete has
// returned: runc has removed the container and its cgroup, nothing of it is
// left to guard, and containerd need not wait the milliseconds this takes.
// The shim does not exit before it is done (shutdown), and a new container
// of the same id waits for it (waitTeardown).
func (h *hook) Deleted(ctx context.Context, c *task.Container) {
	k := key(c)
	h.mu.Lock()
	g := h.state[k]
	delete(h.state, k)
	if g == nil {
		h.mu.Unlock()
		return
	}
	done := make(chan struct{})
	prev := h.tearing[k]
	h.tearing[k] = done
	h.closing.Add(1)
	h.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer h.closing.Done()
		defer func() {
			if r := recover(); r != nil {
				log.G(ctx).WithFields(log.Fields{"id": c.ID, "panic": r, "stack": string(debug.Stack())}).Error("vordr: closing the guard panicked")
			}
			// After the teardown: a new container of this id waits for
			// its log to be closed, not for the prune.
			h.prune(ctx, c)
		}()
		defer func() {
			h.mu.Lock()
			if h.tearing[k] == done {
				delete(h.tearing, k)
			}
			h.mu.Unlock()
			close(done)
		}()
		if prev != nil {
			<-prev
		}
		h.teardown(ctx, c, g)
	}()
}

func (h *hook) teardown(ctx context.Context, c *task.Container, g *guarded) {
	<-g.logReady
	<-g.prepReady
	g.prep.Release() // a no-op once Attach took it over
	if g.guard != nil {
		start := time.Now()
		stats := g.guard.Stats()
		if err := g.guard.Close(); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.ID).Error("vordr: close guard")
		}
		<-g.pumped
		stats = mergeFinal(stats, g.guard.Stats())
		_ = g.log.Write(map[string]any{"time": time.Now(), "kind": "summary", "container_id": c.ID, "stats": stats})
		h.publish(ctx, alerts.TopicGuard, alerts.MediaTypeGuard, map[string]any{
			"event": "detached", "container_id": c.ID, "namespace": c.Namespace, "stats": stats,
		}, map[string]string{"event": "detached", "container": c.ID,
			"seen": fmt.Sprint(stats.Seen), "dropped": fmt.Sprint(stats.Dropped), "alerts": fmt.Sprint(stats.Alerts)})
		log.G(ctx).WithFields(log.Fields{"id": c.ID, "seen": stats.Seen, "dropped": stats.Dropped, "lost": stats.Lost, "alerts": stats.Alerts, "took": time.Since(start)}).Info("vordr: guard detached")
	}
	_ = os.Remove(filepath.Join(c.Bundle, LostMarker))
	if g.log != nil {
		if err := g.log.Close(); err != nil {
			log.G(ctx).WithError(err).Warn("vordr: close event log")
		}
	}
	if g.webhook != nil {
		g.webhook.close()
	}
}

// prune removes logs of deleted containers beyond the retention rule:
// they would pile up (rotation bounds a file's size, not their number).
// It runs as each container's teardown ends, after Delete has answered.
func (h *hook) prune(ctx context.Context, c *task.Container) {
	if c.Config == nil {
		return
	}
	ev := c.Config.Events
	keep, maxAge := ev.Retention()
	if removed, err := eventlog.Prune(ev.Dir, c.Namespace, keep, maxAge, time.Now()); err != nil {
		log.G(ctx).WithError(err).Warn("vordr: prune event logs")
	} else if len(removed) > 0 {
		log.G(ctx).WithField("containers", len(removed)).Debug("vordr: pruned event logs of deleted containers")
	}
}

// mergeFinal prefers counters read after Close where the guard still has
// them (Close may zero kernel counters once the map entry is gone).
func mergeFinal(before, after monitor.Stats) monitor.Stats {
	if after.Seen >= before.Seen {
		return after
	}
	before.Delivered, before.Lost, before.Alerts = after.Delivered, after.Lost, after.Alerts
	return before
}

//go:build linux

// Package task is the task service of io.containerd.vordr.v1: containerd's runc
// task service, wrapped so that vordr's hooks run around Create, Start, Exec
// and Delete. Every call vordr does not add to is the runc service's own, so
// the runtime behaves exactly like io.containerd.runc.v2 there.
package task

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/vordr-project/vordr/alerts"
	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/monitor"
)

// service wraps the runc task service. Methods it does not override are the
// embedded service's.
type service struct {
	taskapi.TTRPCTaskService
	hooks     []Hook
	publisher shim.Publisher

	mu         sync.Mutex
	containers map[string]*Container
}

var _ taskapi.TTRPCTaskService = (*service)(nil)

func newService(inner taskapi.TTRPCTaskService, hooks []Hook, publisher shim.Publisher) *service {
	return &service{TTRPCTaskService: inner, hooks: hooks, publisher: publisher, containers: map[string]*Container{}}
}

// RegisterTTRPC serves the wrapper, not the inner service (which would
// register itself).
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskapi.RegisterTTRPCTaskService(server, s)
	return nil
}

func (s *service) container(id string) *Container {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.containers[id]
}

// Create translates vordr's runtime options for runc, runs the hooks' PreCreate,
// runc create, learns the init process's cgroup, and runs PostCreate: by the
// time Create returns, every hook is in force and the container has not run.
func (s *service) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	resp, err := s.create(ctx, r)
	// The first Create is on containerd's clock, and so are the Start and
	// the first events that follow it: collect a moment later (gc.go).
	defer resumeGCSoon()
	// Over ttrpc only a gRPC status keeps the error's kind: the client
	// must see InvalidArgument / PermissionDenied, not Unknown.
	return resp, errgrpc.ToGRPC(err)
}

func (s *service) create(ctx context.Context, r *taskapi.CreateTaskRequest) (_ *taskapi.CreateTaskResponse, retErr error) {
	// Where Create's time goes, logged with the result: users compare it
	// with runc.v2, and each step's share shows what to tune.
	var timing strings.Builder
	mark := func(what string, since time.Time) {
		fmt.Fprintf(&timing, "%s=%s ", what, time.Since(since).Round(10*time.Microsecond))
	}
	begin := time.Now()

	cfg, err := config.FromOptions(r.Options)
	if err != nil {
		return nil, err
	}
	runcOpts, err := typeurl.MarshalAnyToProto(cfg.RuncOptions())
	if err != nil {
		return nil, fmt.Errorf("encode runc options: %w", err)
	}
	r.Options = runcOpts
	if err := checkRuncBinary(cfg); err != nil {
		return nil, err
	}

	mark("config", begin)
	t := time.Now()
	spec, _, err := readSpec(r.Bundle)
	if err != nil {
		return nil, err
	}
	mark("readspec", t)
	t = time.Now()
	ns, _ := namespaces.Namespace(ctx)
	sel, err := cfg.Select(spec.Annotations)
	if err != nil {
		if errors.Is(err, config.ErrAnnotationRefused) {
			s.alertRefused(ctx, ns, r.ID, err)
		}
		return nil, fmt.Errorf("vordr refused container %s: %w", r.ID, err)
	}
	c := &Container{
		ID:        r.ID,
		Namespace: ns,
		Bundle:    r.Bundle,
		Rootfs:    rootfsOf(r.Bundle, spec),
		Mounts:    r.Rootfs,
		Spec:      spec,
		Config:    cfg,
		Selection: sel,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	mark("spec", t)

	ran := 0 // hooks whose PreCreate succeeded, to undo on failure
	defer func() {
		if retErr != nil {
			s.undo(ctx, c, ran)
		}
	}()

	if len(s.hooks) > 0 {
		before, err := json.Marshal(spec)
		if err != nil {
			return nil, fmt.Errorf("encode OCI spec: %w", err)
		}
		for _, h := range s.hooks {
			t = time.Now()
			if err := call(ctx, h, "PreCreate", func() error { return h.PreCreate(ctx, c) }); err != nil {
				return nil, fmt.Errorf("vordr %s refused container %s: %w", h.Name(), r.ID, err)
			}
			mark(h.Name()+".pre", t)
			ran++
		}
		after, err := json.Marshal(c.Spec)
		if err != nil {
			return nil, fmt.Errorf("encode OCI spec: %w", err)
		}
		if !bytes.Equal(before, after) {
			if err := writeSpec(r.Bundle, c.Spec); err != nil {
				return nil, err
			}
		}
	}

	t = time.Now()
	resp, err := s.TTRPCTaskService.Create(ctx, r)
	if err != nil {
		return nil, err
	}
	mark("runc", t)
	created := true
	defer func() {
		if retErr != nil && created {
			// The init process exists but a hook could not guard it: remove it
			// so nothing unguarded can be started.
			if _, err := s.TTRPCTaskService.Delete(ctx, &taskapi.DeleteRequest{ID: r.ID}); err != nil {
				log.G(ctx).WithError(err).WithField("id", r.ID).Error("vordr: delete container after failed create")
			}
		}
	}()

	c.Pid = int(resp.Pid)
	if err := c.learnCgroup(); err != nil {
		if monitor.ProcessGone(c.Pid) {
			return s.createdDead(ctx, c, resp, err)
		}
		return nil, err
	}
	for _, h := range s.hooks {
		t := time.Now()
		if err := call(ctx, h, "PostCreate", func() error { return h.PostCreate(ctx, c) }); err != nil {
			if monitor.ProcessGone(c.Pid) {
				return s.createdDead(ctx, c, resp, err)
			}
			return nil, fmt.Errorf("vordr %s could not guard container %s: %w", h.Name(), r.ID, err)
		}
		mark(h.Name()+".post", t)
	}
	mark("total", begin)

	s.mu.Lock()
	s.containers[r.ID] = c
	s.mu.Unlock()
	log.G(ctx).WithFields(log.Fields{
		"id":        c.ID,
		"pid":       c.Pid,
		"cgroup":    c.CgroupPath,
		"cgroup_id": c.CgroupID,
		"config":    cfg.Source,
		"timing":    strings.TrimSpace(timing.String()),
	}).Info("vordr: container created")
	return resp, nil
}

// createdDead returns the task of a container whose init process died
// between runc create and the guard (killed, OOM-killed): as runc.v2 does,
// so the client sees a stopped task with its exit status rather than a
// failed Create. There is nothing to guard; nothing of the container can
// start (runc start refuses a stopped container, and Start below does not
// run the hooks for it). Delete undoes what PreCreate set up.
func (s *service) createdDead(ctx context.Context, c *Container, resp *taskapi.CreateTaskResponse, cause error) (*taskapi.CreateTaskResponse, error) {
	c.InitGone = true
	log.G(ctx).WithError(cause).WithFields(log.Fields{"id": c.ID, "pid": c.Pid}).Warn("vordr: the container's init process exited before the guard attached; the task is returned stopped, as runc.v2 returns it")
	s.mu.Lock()
	s.containers[c.ID] = c
	s.mu.Unlock()
	return resp, nil
}

// alertRefused reports a deployer's attempt to choose what the operator did
// not offer: it is an attack or a misconfiguration, and either way someone
// must see it.
func (s *service) alertRefused(ctx context.Context, ns, id string, err error) {
	log.G(ctx).WithError(err).WithField("id", id).Error("vordr: annotation refused")
	if s.publisher == nil {
		return
	}
	a := map[string]any{"rule": RuleAnnotationRefused, "severity": "high", "container_id": id, "message": err.Error()}
	d, eerr := alerts.Encode(alerts.MediaTypeAlert, a, map[string]string{
		"rule": RuleAnnotationRefused, "severity": "high", "container": id, "namespace": ns, "message": err.Error(),
	})
	if eerr != nil {
		return
	}
	if perr := s.publisher.Publish(namespaces.WithNamespace(ctx, ns), alerts.TopicAlert, d); perr != nil {
		log.G(ctx).WithError(perr).Warn("vordr: publish alert")
	}
}

// RuleAnnotationRefused is the alert rule for a refused vordr.io/*
// annotation.
const RuleAnnotationRefused = "annotation-refused"

// undo runs Deleted for the first n hooks, last first.
func (s *service) undo(ctx context.Context, c *Container, n int) {
	for i := n - 1; i >= 0; i-- {
		h := s.hooks[i]
		_ = call(ctx, h, "Deleted", func() error { h.Deleted(ctx, c); return nil })
	}
}

// Start runs PreStart for a container's init process.
func (s *service) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	if r.ExecID == "" {
		if c := s.container(r.ID); c != nil && !c.InitGone {
			c.mu.Lock()
			for _, h := range s.hooks {
				if err := call(ctx, h, "PreStart", func() error { return h.PreStart(ctx, c) }); err != nil {
					c.mu.Unlock()
					return nil, errgrpc.ToGRPC(fmt.Errorf("vordr %s refused to start container %s: %w", h.Name(), r.ID, err))
				}
			}
			c.mu.Unlock()
		}
	}
	return s.TTRPCTaskService.Start(ctx, r)
}

// Exec runs PreExec, which may refuse or change the process.
func (s *service) Exec(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	c := s.container(r.ID)
	if c == nil || len(s.hooks) == 0 || r.Spec == nil {
		return s.TTRPCTaskService.Exec(ctx, r)
	}
	var p specs.Process
	if err := json.Unmarshal(r.Spec.GetValue(), &p); err != nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("exec %s: process spec is not valid JSON: %v: %w", r.ExecID, err, errdefs.ErrInvalidArgument))
	}
	c.mu.Lock()
	for _, h := range s.hooks {
		if err := call(ctx, h, "PreExec", func() error { return h.PreExec(ctx, c, r.ExecID, &p) }); err != nil {
			c.mu.Unlock()
			return nil, errgrpc.ToGRPC(fmt.Errorf("vordr %s refused exec %s in container %s: %w", h.Name(), r.ExecID, r.ID, err))
		}
	}
	c.mu.Unlock()
	data, err := json.Marshal(&p)
	if err != nil {
		return nil, fmt.Errorf("encode exec process spec: %w", err)
	}
	if !bytes.Equal(data, r.Spec.GetValue()) {
		r.Spec.Value = data
	}
	return s.TTRPCTaskService.Exec(ctx, r)
}

// Update applies the container's profile to the new resources: an update
// must not undo what the profile decided at create (a pids limit, a closed
// device cgroup).
func (s *service) Update(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	c := s.container(r.ID)
	if c == nil || c.Selection == nil || c.Selection.Profile == nil || r.Resources == nil || len(r.Resources.GetValue()) == 0 {
		return s.TTRPCTaskService.Update(ctx, r)
	}
	var res specs.LinuxResources
	if err := json.Unmarshal(r.Resources.GetValue(), &res); err != nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("update %s: resources are not valid JSON: %v: %w", r.ID, err, errdefs.ErrInvalidArgument))
	}
	if err := safeApply(func() error { return c.Selection.Profile.ApplyUpdate(&res) }); err != nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("vordr refused the update of container %s: %w: %w", r.ID, err, errdefs.ErrInvalidArgument))
	}
	data, err := json.Marshal(&res)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	r.Resources.Value = data
	return s.TTRPCTaskService.Update(ctx, r)
}

// Delete runs Deleted once a container's init process is gone.
func (s *service) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	resp, err := s.TTRPCTaskService.Delete(ctx, r)
	if err != nil || r.ExecID != "" {
		return resp, err
	}
	s.mu.Lock()
	c := s.containers[r.ID]
	delete(s.containers, r.ID)
	s.mu.Unlock()
	if c != nil {
		c.mu.Lock()
		s.undo(ctx, c, len(s.hooks))
		c.mu.Unlock()
	}
	return resp, nil
}

// checkRuncBinary fails early, with a message that says what to do, when the
// runc binary is missing: runc's own error would come from deep in create.
func checkRuncBinary(cfg *config.Config) error {
	name := cfg.Runc.BinaryName
	if name == "" {
		name = "runc"
	}
	if _, err := exec.LookPath(name); err != nil {
		return fmt.Errorf("runc binary %q not found (%v): install runc (make deps) or set BinaryName in the [runc] section of the vordr runtime config: %w",
			name, err, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func rootfsOf(bundle string, spec *specs.Spec) string {
	root := "rootfs"
	if spec.Root != nil && spec.Root.Path != "" {
		root = spec.Root.Path
	}
	if len(root) > 0 && root[0] == '/' {
		return root
	}
	return bundle + "/" + root
}

// safeApply runs a profile function; a panic fails the request only.
func safeApply(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error (panic: %v), please report it: %w", r, errdefs.ErrInternal)
		}
	}()
	return f()
}

package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/platforms"

	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/plugin"
)

// Labels the API puts on the containers it creates. Only containers with
// LabelOwner are visible to and managed by the API: a key to the API is
// not a key to every container of the namespace (CRI's, ctr's).
const (
	LabelOwner = "vordr.io/serve.owner"
)

// RunRequest is everything an API caller may choose about a container. It
// is deliberately small: a caller is a deployer (docs/threat-model.md) and
// chooses no mounts, capabilities, namespaces, devices, hooks or raw spec
// fields; profile and policy select among the operator's names.
type RunRequest struct {
	Image   string   `json:"image"`
	Name    string   `json:"name,omitempty"`
	Args    []string `json:"args,omitempty"`
	Env     []string `json:"env,omitempty"`
	Profile string   `json:"profile,omitempty"`
	Policy  string   `json:"policy,omitempty"`
}

// Limits of a run request's fields.
const (
	maxArgs   = 256
	maxEnv    = 256
	maxString = 4096
)

func (req *RunRequest) validate() error {
	bad := func(format string, a ...any) error {
		return apiError(http.StatusBadRequest, CodeInvalidArgument, fmt.Sprintf(format, a...))
	}
	if req.Image == "" {
		return bad("image is required: the name of an image in containerd (GET /api/v1/images)")
	}
	if req.Name != "" {
		if err := identifiers.Validate(req.Name); err != nil {
			return bad("name %q: %v", req.Name, err)
		}
	}
	if len(req.Args) > maxArgs || len(req.Env) > maxEnv {
		return bad("at most %d args and %d env entries", maxArgs, maxEnv)
	}
	for _, a := range req.Args {
		if len(a) > maxString || strings.ContainsRune(a, 0) {
			return bad("an argument is longer than %d bytes or contains a NUL byte", maxString)
		}
	}
	for _, e := range req.Env {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" || len(e) > maxString || strings.ContainsRune(e, 0) {
			return bad("env entry %.40q is not KEY=VALUE (at most %d bytes, no NUL)", e, maxString)
		}
	}
	for field, v := range map[string]string{"profile": req.Profile, "policy": req.Policy} {
		if len(v) > 64 || strings.ContainsAny(v, "/\n\r\x00") {
			return bad("%s must be the name of a profile or policy the operator offers, not a path or text", field)
		}
	}
	return nil
}

// Container is the API's view of a container: containerd's record and task
// state, with what vordr decided for it.
type Container struct {
	ID      string    `json:"id"`
	Image   string    `json:"image"`
	Runtime string    `json:"runtime"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner,omitempty"`
	// Status is the task's: created, running, paused, stopped, or "none"
	// when the container has no task.
	Status   string     `json:"status"`
	PID      uint32     `json:"pid,omitempty"`
	ExitCode *uint32    `json:"exitCode,omitempty"`
	ExitedAt *time.Time `json:"exitedAt,omitempty"`
	// Profile and Policy are what the operator's runtime config selects
	// for the container's annotations (config.Select, the decision the
	// shim makes too).
	Profile     string `json:"profile,omitempty"`
	ProfileFrom string `json:"profileFrom,omitempty"`
	Policy      string `json:"policy,omitempty"`
	// Verification is the gate's decision record from the container's
	// event log, when the shim wrote one.
	Verification *Verification `json:"verification,omitempty"`
	// SelectError says why the profile or policy could not be decided.
	SelectError string `json:"selectError,omitempty"`
}

// Verification is the gate's decision for a container.
type Verification struct {
	Decision string  `json:"decision"`
	Mode     string  `json:"mode,omitempty"`
	Policy   string  `json:"policy,omitempty"`
	Image    string  `json:"image,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	Message  string  `json:"message,omitempty"`
	Seconds  float64 `json:"seconds,omitempty"`
}

func ownerFilter() string { return fmt.Sprintf("labels.%q", LabelOwner) }

// load returns a container the API manages, or NotFound.
func (s *Server) load(ctx context.Context, id string) (containerd.Container, error) {
	if err := identifiers.Validate(id); err != nil {
		return nil, apiError(http.StatusBadRequest, CodeInvalidArgument, fmt.Sprintf("container id %q: %v", id, err))
	}
	recs, err := s.client.ContainerService().List(ctx, fmt.Sprintf("id==%q,%s", id, ownerFilter()))
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, apiError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("no container %q made through this API in namespace %q", id, s.cfg.Namespace))
	}
	return s.client.LoadContainer(ctx, id)
}

// loadForWrite is load for stop and delete: a key manages the containers
// it made; an admin key manages every container of the API. One deployer
// must not stop another's workloads.
func (s *Server) loadForWrite(ctx context.Context, id string, who Identity) (containerd.Container, error) {
	ctr, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if (&Key{Scopes: who.Scopes}).Allows(ScopeAdmin) {
		return ctr, nil
	}
	labels, err := ctr.Labels(ctx)
	if err != nil {
		return nil, err
	}
	if owner := labels[LabelOwner]; owner != who.KeyID {
		return nil, apiError(http.StatusForbidden, CodeForbidden, fmt.Sprintf("container %s was made by key %s; only that key or an admin key may stop or delete it", id, owner))
	}
	return ctr, nil
}

// selector answers config.Select once per distinct profile/policy choice:
// a list of many containers loads each profile and policy file once.
type selector struct {
	rc   *config.Config
	memo map[[2]string]selection
}

type selection struct {
	sel *config.Selection
	err error
}

func newSelector(rc *config.Config) *selector {
	return &selector{rc: rc, memo: map[[2]string]selection{}}
}

func (s *selector) Select(ann map[string]string) (*config.Selection, error) {
	k := [2]string{ann[config.AnnotationProfile], ann[config.AnnotationPolicy]}
	r, ok := s.memo[k]
	if !ok {
		r.sel, r.err = s.rc.Select(map[string]string{config.AnnotationProfile: k[0], config.AnnotationPolicy: k[1]})
		s.memo[k] = r
	}
	return r.sel, r.err
}

// view is vordr's view of container c whose task is p (nil: none).
func (s *Server) view(rc *selector, c containers.Container, p *tasktypes.Process) Container {
	v := Container{ID: c.ID, Image: c.Image, Runtime: c.Runtime.Name, Created: c.CreatedAt, Owner: c.Labels[LabelOwner], Status: "none"}
	if rc != nil && rc.rc != nil {
		// The spec is the OCI spec as JSON; only its annotations matter.
		var sp struct {
			Annotations map[string]string `json:"annotations"`
		}
		if c.Spec != nil {
			_ = json.Unmarshal(c.Spec.GetValue(), &sp)
		}
		ann := sp.Annotations
		if sel, err := rc.Select(ann); err == nil {
			v.Profile, v.ProfileFrom, v.Policy = sel.ProfileName, sel.ProfileFrom, sel.PolicyName
		} else {
			v.SelectError = err.Error()
		}
	}
	var cfg *config.Config
	if rc != nil {
		cfg = rc.rc
	}
	v.Verification = s.gateRecord(cfg, c.ID)
	if p != nil {
		v.Status, v.PID = strings.ToLower(p.Status.String()), p.Pid
		if p.Status == tasktypes.Status_STOPPED {
			code := p.ExitStatus
			v.ExitCode = &code
			if p.ExitedAt != nil {
				at := p.ExitedAt.AsTime()
				v.ExitedAt = &at
			}
		}
	}
	return v
}

// taskOf is the task of container id as containerd records it, nil when
// it has none: one request, where Container.Task + Status are two.
func (s *Server) taskOf(ctx context.Context, id string) (*tasktypes.Process, error) {
	resp, err := s.client.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: id})
	if err != nil {
		if err = errgrpc.ToNative(err); errdefs.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return resp.Process, nil
}

// containerList is every container the API made, with vordr's view.
func (s *Server) containerList(ctx context.Context) ([]Container, error) {
	ctx = s.ns(ctx)
	recs, err := s.client.ContainerService().List(ctx, ownerFilter())
	if err != nil {
		return nil, err
	}
	// Every task in one request, not one or two per container.
	resp, err := s.client.TaskService().List(ctx, &tasks.ListTasksRequest{})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	procs := make(map[string]*tasktypes.Process, len(resp.Tasks))
	for _, p := range resp.Tasks {
		procs[p.ContainerID] = p
	}
	rc, _ := s.cfg.runtimeConfig()
	sel := newSelector(rc)
	out := make([]Container, 0, len(recs))
	for _, c := range recs {
		out = append(out, s.view(sel, c, procs[c.ID]))
	}
	return out, nil
}

// inspect is one container the API made, with vordr's view.
func (s *Server) inspect(ctx context.Context, id string) (Container, error) {
	ctx = s.ns(ctx)
	ctr, err := s.load(ctx, id)
	if err != nil {
		return Container{}, err
	}
	info, err := ctr.Info(ctx)
	if err != nil {
		return Container{}, err
	}
	p, err := s.taskOf(ctx, id)
	if err != nil {
		return Container{}, err
	}
	rc, _ := s.cfg.runtimeConfig()
	return s.view(newSelector(rc), info, p), nil
}

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request, _ Identity) error {
	out, err := s.containerList(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"containers": out})
	return nil
}

func (s *Server) getContainer(w http.ResponseWriter, r *http.Request, _ Identity) error {
	v, err := s.inspect(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func randomName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "vordr-" + hex.EncodeToString(b)
}

func (s *Server) logPath(id string) string {
	return filepath.Join(s.cfg.StateDir, "logs", s.cfg.Namespace, id+".log")
}

// runtimeOptions names the operator's runtime config to the shim. It is
// the server's choice, never the caller's.
func (s *Server) runtimeOptions() any {
	if s.cfg.RuntimeConfig == "" {
		return nil
	}
	return &runtimeoptions.Options{ConfigPath: s.cfg.RuntimeConfig}
}

func (s *Server) runContainer(w http.ResponseWriter, r *http.Request, id Identity) error {
	var req RunRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	start := true
	switch q := r.URL.Query().Get("start"); q {
	case "", "1", "true":
	case "0", "false":
		start = false
	default:
		return apiError(http.StatusBadRequest, CodeInvalidArgument, fmt.Sprintf("start=%q: use start=0 to create without starting", q))
	}
	v, err := s.run(r.Context(), id, req, start)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/containers/"+v.ID)
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// run creates (and, when start, starts) a container under
// io.containerd.vordr.v1 for identity id. The shim's gate and the
// operator's profile decide whether it runs; a container whose task
// cannot be created or started is removed again.
func (s *Server) run(ctx context.Context, id Identity, req RunRequest, start bool) (Container, error) {
	if err := req.validate(); err != nil {
		return Container{}, err
	}
	ctx = s.ns(ctx)
	ann := map[string]string{}
	if req.Profile != "" {
		ann[config.AnnotationProfile] = req.Profile
	}
	if req.Policy != "" {
		ann[config.AnnotationPolicy] = req.Policy
	}
	// The shim decides (and refuses) again at Create; asking first gives
	// the caller the operator's rules before anything is created.
	rc, err := s.cfg.runtimeConfig()
	if err != nil {
		return Container{}, fmt.Errorf("the operator's runtime config: %w", err)
	}
	if _, err := rc.Select(ann); err != nil {
		if errors.Is(err, config.ErrAnnotationRefused) {
			return Container{}, &Error{Status: http.StatusForbidden, Code: CodeRefused, Message: strings.ReplaceAll(err.Error(), "annotation ", "request field profile/policy, annotation "), Err: err}
		}
		return Container{}, err
	}
	img, err := s.client.GetImage(ctx, req.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return Container{}, apiError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("image %q is not in containerd's namespace %q; the operator imports images (vordr import); GET /api/v1/images lists them", req.Image, s.cfg.Namespace))
		}
		return Container{}, err
	}
	if img, err = s.evidenceRecord(ctx, img); err != nil {
		return Container{}, err
	}
	if ok, err := img.IsUnpacked(ctx, s.cfg.Snapshotter); err != nil {
		return Container{}, err
	} else if !ok {
		if err := img.Unpack(ctx, s.cfg.Snapshotter); err != nil {
			return Container{}, fmt.Errorf("unpack %s: %w", req.Image, err)
		}
	}
	name := req.Name
	if name == "" {
		name = randomName()
	}
	specOpts := []oci.SpecOpts{oci.WithImageConfig(img)}
	if len(req.Args) > 0 {
		specOpts = append(specOpts, oci.WithProcessArgs(req.Args...))
	}
	if len(req.Env) > 0 {
		specOpts = append(specOpts, oci.WithEnv(req.Env))
	}
	if len(ann) > 0 {
		specOpts = append(specOpts, oci.WithAnnotations(ann))
	}
	ctr, err := s.client.NewContainer(ctx, name,
		containerd.WithImage(img),
		containerd.WithSnapshotter(s.cfg.Snapshotter),
		containerd.WithNewSnapshot(name, img),
		containerd.WithNewSpec(specOpts...),
		containerd.WithRuntime(Runtime, s.runtimeOptions()),
		containerd.WithContainerLabels(map[string]string{LabelOwner: id.KeyID}),
	)
	if err != nil {
		return Container{}, err
	}
	// Cleanup uses its own context: the request's may be what failed.
	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if t, err := ctr.Task(cctx, nil); err == nil {
			_, _ = t.Delete(cctx, containerd.WithProcessKill)
		}
		if err := ctr.Delete(cctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			s.log.Error("run: clean up a container that did not start", "id", name, "error", err)
		}
		removeLog(s.logPath(name))
	}
	logPath := s.logPath(name)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		cleanup()
		return Container{}, err
	}
	task, err := ctr.NewTask(ctx, cio.LogFile(logPath))
	if err != nil {
		cleanup()
		return Container{}, fmt.Errorf("create the task of %s: %w", name, err)
	}
	if start {
		if err := task.Start(ctx); err != nil {
			cleanup()
			return Container{}, fmt.Errorf("start %s: %w", name, err)
		}
	}
	return s.inspect(ctx, name)
}

func (s *Server) startContainer(w http.ResponseWriter, r *http.Request, who Identity) error {
	v, err := s.start(r.Context(), who, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// start starts a created container's task. The gate checks the rootfs
// again before the start (content planted since create is refused).
func (s *Server) start(ctx context.Context, who Identity, id string) (Container, error) {
	ctx = s.ns(ctx)
	ctr, err := s.loadForWrite(ctx, id, who)
	if err != nil {
		return Container{}, err
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return Container{}, apiError(http.StatusConflict, CodeConflict, fmt.Sprintf("container %s has no task; delete it and run it again", id))
		}
		return Container{}, err
	}
	st, err := task.Status(ctx)
	if err != nil {
		return Container{}, err
	}
	if st.Status != containerd.Created {
		return Container{}, apiError(http.StatusConflict, CodeConflict, fmt.Sprintf("container %s is %s; only a created container starts", id, st.Status))
	}
	if err := task.Start(ctx); err != nil {
		return Container{}, fmt.Errorf("start %s: %w", id, err)
	}
	return s.inspect(ctx, id)
}

// evidenceRecord returns the image record a container of img should
// name. A record without vordr evidence (a pull, CRI's repo@digest
// record) whose manifest a record with evidence also has is an alias of
// it: the container names the record with evidence, so the gate can find
// the evidence to verify. The bytes are the same (same manifest digest),
// and the gate still verifies that evidence and the rootfs content.
func (s *Server) evidenceRecord(ctx context.Context, img containerd.Image) (containerd.Image, error) {
	if _, err := plugin.EvidenceOf(img.Metadata()); err == nil {
		return img, nil
	}
	recs, err := s.client.ImageService().List(ctx, fmt.Sprintf("target.digest==%s", img.Target().Digest))
	if err != nil {
		return nil, err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	for _, r := range recs {
		if _, err := plugin.EvidenceOf(r); err == nil {
			return containerd.NewImageWithPlatform(s.client, r, platforms.Default()), nil
		}
	}
	return img, nil
}

func (s *Server) stopContainer(w http.ResponseWriter, r *http.Request, who Identity) error {
	grace := s.cfg.Limits.StopGrace()
	if t := r.URL.Query().Get("timeout"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > 300 {
			return apiError(http.StatusBadRequest, CodeInvalidArgument, "timeout must be whole seconds between 0 and 300")
		}
		grace = time.Duration(n) * time.Second
	}
	v, err := s.stop(r.Context(), who, r.PathValue("id"), grace)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// stop sends SIGTERM to the container's task and SIGKILL to all its
// processes if it has not exited after grace.
func (s *Server) stop(ctx context.Context, who Identity, id string, grace time.Duration) (Container, error) {
	ctx = s.ns(ctx)
	ctr, err := s.loadForWrite(ctx, id, who)
	if err != nil {
		return Container{}, err
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return Container{}, apiError(http.StatusConflict, CodeConflict, "the container has no task to stop")
		}
		return Container{}, err
	}
	st, err := task.Status(ctx)
	if err != nil {
		return Container{}, err
	}
	if st.Status != containerd.Stopped {
		exited, err := task.Wait(ctx)
		if err != nil {
			return Container{}, err
		}
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return Container{}, err
		}
		select {
		case <-exited:
		case <-time.After(grace):
			if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
				return Container{}, err
			}
			select {
			case <-exited:
			case <-ctx.Done():
				return Container{}, ctx.Err()
			}
		case <-ctx.Done():
			return Container{}, ctx.Err()
		}
	}
	return s.inspect(ctx, id)
}

func (s *Server) deleteContainer(w http.ResponseWriter, r *http.Request, who Identity) error {
	force := r.URL.Query().Get("force") == "1" || r.URL.Query().Get("force") == "true"
	if err := s.remove(r.Context(), who, r.PathValue("id"), force); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// remove deletes a container, its task (killed only when force) and its
// snapshot, for who.
func (s *Server) remove(ctx context.Context, who Identity, id string, force bool) error {
	ctx = s.ns(ctx)
	ctr, err := s.loadForWrite(ctx, id, who)
	if err != nil {
		return err
	}
	if task, err := ctr.Task(ctx, nil); err == nil {
		st, err := task.Status(ctx)
		if err != nil {
			return err
		}
		if st.Status != containerd.Stopped && !force {
			return apiError(http.StatusConflict, CodeConflict, fmt.Sprintf("container %s is %s; stop it first (POST /api/v1/containers/%s/stop) or delete with ?force=1", id, st.Status, id))
		}
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	} else if !errdefs.IsNotFound(err) {
		return err
	}
	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		return err
	}
	removeLog(s.logPath(id))
	return nil
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request, id Identity) error {
	ctx := s.ns(r.Context())
	cid := r.PathValue("id")
	if _, err := s.load(ctx, cid); err != nil {
		return err
	}
	q := r.URL.Query()
	tail := -1
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return apiError(http.StatusBadRequest, CodeInvalidArgument, "tail must be a non-negative number of lines")
		}
		tail = n
	}
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	if follow {
		release, ok := s.openStream(id.KeyID)
		if !ok {
			w.Header().Set("Retry-After", "10")
			return apiError(http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf("key %s already holds %d streams (limits.max_streams); close one", id.KeyID, s.cfg.Limits.MaxStreams))
		}
		defer release()
	}
	path := s.logPath(cid)
	data, end, err := readLogTail(path, tail, 1<<20)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(data)
	if !follow {
		return nil
	}
	// Follow: send what is appended until the task has exited and its
	// output is all sent, or the client goes.
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	// Revoking the key or the token's expiry ends a follow too, checked
	// every 15 s.
	nextCheck := time.Now().Add(15 * time.Second)
	for {
		if time.Now().After(nextCheck) {
			if _, err := s.authenticate(r, ScopeRead); err != nil {
				return nil
			}
			nextCheck = time.Now().Add(15 * time.Second)
		}
		exited := false
		if p, err := s.taskOf(ctx, cid); err != nil || p == nil || p.Status == tasktypes.Status_STOPPED {
			exited = true // read once more: the last output may be new
		}
		if f, err := os.Open(path); err == nil {
			if fi, err := f.Stat(); err == nil && fi.Size() < end {
				end = 0 // cut by the log cap: its newest half went to .1, sent already
			}
			if _, err := f.Seek(end, io.SeekStart); err == nil {
				n, _ := io.Copy(w, f)
				end += n
			}
			f.Close()
			if err := rc.Flush(); err != nil {
				return nil
			}
		}
		if exited {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// logs returns the last tail lines (all when tail <= 0) of a container's
// output, at most 1 MiB.
func (s *Server) logs(ctx context.Context, id string, tail int) (string, error) {
	if _, err := s.load(s.ns(ctx), id); err != nil {
		return "", err
	}
	if tail <= 0 {
		tail = -1
	}
	data, _, err := readLogTail(s.logPath(id), tail, 1<<20)
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}
	return string(data), nil
}

// readTail returns the last n lines (all when n < 0) of at most max bytes
// from the end of path, and the offset it read up to.
func readTail(path string, n int, max int64) ([]byte, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := fi.Size()
	if n == 0 {
		return nil, size, nil
	}
	off := int64(0)
	if size > max {
		off = size - max
	}
	buf := make([]byte, size-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, 0, err
	}
	return lastLines(buf, n), size, nil
}

// lastLines returns the last n lines of buf (all when n < 0).
func lastLines(buf []byte, n int) []byte {
	if n < 0 {
		return buf
	}
	if n == 0 {
		return nil
	}
	end := len(buf)
	if end > 0 && buf[end-1] == '\n' {
		end--
	}
	for i := end - 1; i >= 0; i-- {
		if buf[i] == '\n' {
			n--
			if n == 0 {
				return buf[i+1:]
			}
		}
	}
	return buf
}

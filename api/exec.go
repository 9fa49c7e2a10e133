package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// ExecRequest runs a command in a running container, non-interactively.
// The process spec is the container's own (user, capabilities, cwd), with
// these args and extra env: a caller chooses no more than at run, and the
// shim applies the container's profile to the exec as to any other.
type ExecRequest struct {
	Args           []string `json:"args"`
	Env            []string `json:"env,omitempty"`
	TimeoutSeconds int      `json:"timeout_seconds,omitempty"`
}

// ExecResult is the exec's outcome.
type ExecResult struct {
	ExitCode uint32 `json:"exitCode"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	// Truncated: the output exceeded maxExecOutput per stream.
	Truncated bool `json:"truncated,omitempty"`
	// TimedOut: the process was killed after the timeout.
	TimedOut bool `json:"timedOut,omitempty"`
}

const (
	maxExecOutput      = 1 << 20
	defaultExecTimeout = 60 * time.Second
	maxExecTimeout     = 600
)

// capped keeps the first max bytes written to it and drops the rest (the
// process must not block on a full pipe).
type capped struct {
	mu        sync.Mutex
	buf       []byte
	max       int
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.buf); room < len(p) {
		c.buf = append(c.buf, p[:max(room, 0)]...)
		c.truncated = true
	} else {
		c.buf = append(c.buf, p...)
	}
	return len(p), nil
}

// result is what was kept and whether anything was dropped.
func (c *capped) result() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf), c.truncated
}

func (req *ExecRequest) validate() error {
	if len(req.Args) == 0 {
		return apiError(http.StatusBadRequest, CodeInvalidArgument, "args is required: the command and its arguments")
	}
	if req.TimeoutSeconds < 0 || req.TimeoutSeconds > maxExecTimeout {
		return apiError(http.StatusBadRequest, CodeInvalidArgument, fmt.Sprintf("timeout_seconds must be between 0 and %d", maxExecTimeout))
	}
	// The same bounds as a run's args and env.
	return (&RunRequest{Image: "-", Args: req.Args, Env: req.Env}).validate()
}

func (s *Server) execContainer(w http.ResponseWriter, r *http.Request, who Identity) error {
	var req ExecRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	res, err := s.exec(r.Context(), who, r.PathValue("id"), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// exec runs req in container id's task, for who (the container's key or
// an admin key), and waits for it.
// maxExecs bounds the execs running at once, node-wide.
const maxExecs = 32

func (s *Server) exec(ctx context.Context, who Identity, id string, req ExecRequest) (ExecResult, error) {
	if err := req.validate(); err != nil {
		return ExecResult{}, err
	}
	// Each exec holds up to 2 MiB of output for up to its timeout: bound
	// how many run at once, node-wide.
	select {
	case s.execs <- struct{}{}:
		defer func() { <-s.execs }()
	default:
		return ExecResult{}, apiError(http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf("%d execs are running already; retry when one has finished", cap(s.execs)))
	}
	ctx = s.ns(ctx)
	ctr, err := s.loadForWrite(ctx, id, who)
	if err != nil {
		return ExecResult{}, err
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return ExecResult{}, apiError(http.StatusConflict, CodeConflict, fmt.Sprintf("container %s has no task", id))
		}
		return ExecResult{}, err
	}
	if st, err := task.Status(ctx); err != nil {
		return ExecResult{}, err
	} else if st.Status != containerd.Running {
		return ExecResult{}, apiError(http.StatusConflict, CodeConflict, fmt.Sprintf("container %s is %s; exec needs a running container", id, st.Status))
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return ExecResult{}, err
	}
	p := *spec.Process
	p.Terminal, p.ConsoleSize = false, nil
	p.Args = req.Args
	p.Env = append(append([]string(nil), p.Env...), req.Env...)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	execID := "vordr-exec-" + hex.EncodeToString(b)
	stdout, stderr := &capped{max: maxExecOutput}, &capped{max: maxExecOutput}
	proc, err := task.Exec(ctx, execID, &p, cio.NewCreator(cio.WithStreams(nil, stdout, stderr), cio.WithFIFODir(filepath.Join(s.cfg.StateDir, "fifo"))))
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in %s: %w", id, err)
	}
	// Deleted with its own context: the caller's may be what ended.
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = proc.Delete(dctx, containerd.WithProcessKill)
	}()
	exited, err := proc.Wait(ctx)
	if err != nil {
		return ExecResult{}, err
	}
	if err := proc.Start(ctx); err != nil {
		return ExecResult{}, fmt.Errorf("exec in %s: %w", id, err)
	}
	timeout := defaultExecTimeout
	if req.TimeoutSeconds > 0 {
		timeout = time.Duration(req.TimeoutSeconds) * time.Second
	}
	var res ExecResult
	var st containerd.ExitStatus
	select {
	case st = <-exited:
	case <-time.After(timeout):
		res.TimedOut = true
		_ = proc.Kill(ctx, syscall.SIGKILL)
		st = <-exited
	case <-ctx.Done():
		_ = proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		return ExecResult{}, ctx.Err()
	}
	if err := st.Error(); err != nil {
		return ExecResult{}, err
	}
	proc.IO().Wait()
	res.ExitCode = st.ExitCode()
	var t1, t2 bool
	res.Stdout, t1 = stdout.result()
	res.Stderr, t2 = stderr.result()
	res.Truncated = t1 || t2
	return res, nil
}

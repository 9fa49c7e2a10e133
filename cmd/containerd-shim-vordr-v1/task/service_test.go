//go:build linux

package task

import (
	"context"
	"testing"

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// innerExecs stands in for the runc task service: a hook's panic must be
// caught before the request reaches runc, which this test cannot observe
// with a real runc (the shim would simply be gone).
type innerExecs struct {
	taskapi.TTRPCTaskService // nil: any other call panics the test
	execs                    []string
}

func (i *innerExecs) Exec(_ context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	i.execs = append(i.execs, r.ExecID)
	return &emptypb.Empty{}, nil
}

// buggyHook panics on one container: a nil dereference, as the minimal exec
// spec once caused in the profile code.
type buggyHook struct{ NopHook }

func (buggyHook) Name() string { return "buggy" }

func (buggyHook) PreExec(_ context.Context, c *Container, _ string, p *specs.Process) error {
	if c.ID == "bad" {
		_ = p.Capabilities.Bounding // nil: no capabilities in the spec
	}
	return nil
}

func TestHookPanicFailsOnlyThatRequest(t *testing.T) {
	inner := &innerExecs{}
	s := newService(inner, []Hook{buggyHook{}}, nil)
	s.containers["bad"] = &Container{ID: "bad"}
	s.containers["good"] = &Container{ID: "good"}
	spec := &anypb.Any{Value: []byte(`{"args":["true"],"cwd":"/"}`)}

	_, err := s.Exec(context.Background(), &taskapi.ExecProcessRequest{ID: "bad", ExecID: "e1", Spec: spec})
	if err == nil || !errdefs.IsInternal(errgrpc.ToNative(err)) {
		t.Fatalf("exec with a panicking hook: %v, want an internal error", err)
	}
	_, err = s.Exec(context.Background(), &taskapi.ExecProcessRequest{ID: "good", ExecID: "e2", Spec: spec})
	if err != nil {
		t.Fatalf("the next request after a panic: %v", err)
	}
	if len(inner.execs) != 1 || inner.execs[0] != "e2" {
		t.Errorf("runc got execs %v, want only e2 (the panicking request must not reach it)", inner.execs)
	}
}

//go:build linux

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/vordr-project/vordr/internal/daemon"
)

// TestBadInput: what vordr cannot run is refused at Create with an error that
// names the problem, and nothing is left behind (no shim, no task).
func TestBadInput(t *testing.T) {
	cases := []struct {
		name    string
		options func(d *daemon.Daemon) any
		spec    []oci.SpecOpts
		want    string
	}{
		{
			name:    "unknown options type",
			options: func(*daemon.Daemon) any { return durationpb.New(time.Second) },
			want:    `unsupported runtime options type "google.protobuf.Duration"`,
		},
		{
			name: "unknown config key",
			options: func(d *daemon.Daemon) any {
				return &runtimeoptions.Options{ConfigBody: []byte("[runc]\nRooot = \"/x\"\n")}
			},
			want: `unknown key "runc.Rooot" (line 2)`,
		},
		{
			name: "config path missing",
			options: func(d *daemon.Daemon) any {
				return &runtimeoptions.Options{ConfigPath: "/nonexistent/vordr.toml"}
			},
			want: "vordr config file /nonexistent/vordr.toml does not exist",
		},
		{
			name: "missing runc binary",
			options: func(d *daemon.Daemon) any {
				return &options.Options{Root: d.RuncRoot, BinaryName: "/nonexistent/runc"}
			},
			want: `runc binary "/nonexistent/runc" not found`,
		},
		{
			name:    "spec without linux section",
			options: runcOptions,
			spec: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Linux = nil
				return nil
			}},
			want: "the OCI spec has no linux section",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, shared, runtimeCase{"vordr", vordrRuntime, tc.options})
			id := uniqueID(t)
			ctr := e.container(id, []string{"true"}, tc.spec...)
			_, err := ctr.NewTask(e.ctx, cio.NullIO)
			if err == nil {
				t.Fatal("Create succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if _, err := ctr.Task(e.ctx, nil); err == nil {
				t.Error("a task exists after the failed Create")
			}
			eventually(t, 10*time.Second, func() error {
				if pid := shimPidOf(shared, id); pid != 0 {
					return fmt.Errorf("shim %d still running after the failed Create", pid)
				}
				return nil
			})
		})
	}
}

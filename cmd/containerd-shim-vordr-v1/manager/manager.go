//go:build linux

// Package manager is the shim manager of io.containerd.vordr.v1: containerd's
// runc shim manager, with vordr's runtime options translated to runc's where
// the runc manager reads them (bootstrap extensions and -info).
package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	runcmanager "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/guard"
	"github.com/vordr-project/vordr/cmd/containerd-shim-vordr-v1/task"
	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/monitor"
)

// RuntimeName is the runtime's name in containerd.
const RuntimeName = "io.containerd.vordr.v1"

type manager struct {
	shim.Shim
}

// New returns the vordr shim manager.
func New(name string) shim.Shim {
	return &manager{Shim: runcmanager.NewShimManager(name)}
}

// Start translates a runtimeoptions.v1.Options extension into runc options so
// that the runc manager honours settings such as ShimCgroup, then starts the
// shim as runc.v2 does (grouping a pod's containers into one shim process).
func (m *manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (*bootapi.BootstrapResult, error) {
	// This process only starts the daemon and exits: collecting its few
	// MiB of garbage would be time containerd waits for.
	debug.SetGCPercent(task.HeldGCPercent)
	for _, ext := range params.GetExtensions() {
		v := ext.GetValue()
		if v == nil || v.GetTypeUrl() == "" {
			continue
		}
		if trim(v.GetTypeUrl()) != config.RuntimeOptionsTypeURL {
			continue
		}
		cfg, err := config.FromOptions(v)
		if err != nil {
			// The shim only needs runc's options to start; Create reads
			// the options again and refuses them with an error the client
			// can act on (a failed start is just "exit status 1").
			if cfg, err = config.Default(); err != nil {
				return nil, fmt.Errorf("io.containerd.vordr.v1: %w", err)
			}
		}
		runc, err := anypb.New(cfg.RuncOptions())
		if err != nil {
			return nil, err
		}
		ext.Value = runc
	}
	return m.Shim.Start(ctx, params)
}

// Info answers `containerd-shim-vordr-v1 -info`, which containerd calls with the
// runtime options on stdin; the runc manager only understands runc options.
func (m *manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	data, err := io.ReadAll(optionsR)
	if err != nil {
		return nil, fmt.Errorf("read runtime options from stdin: %w", err)
	}
	if len(data) == 0 {
		return m.Shim.Info(ctx, bytes.NewReader(nil))
	}
	var a anypb.Any
	if err := proto.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("decode runtime options: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	cfg, err := config.FromOptions(&a)
	if err != nil {
		return nil, err
	}
	runc, err := anypb.New(cfg.RuncOptions())
	if err != nil {
		return nil, err
	}
	out, err := proto.Marshal(runc)
	if err != nil {
		return nil, err
	}
	return m.Shim.Info(ctx, bytes.NewReader(out))
}

// Stop is `containerd-shim-vordr-v1 delete`, run by containerd to clean up
// after a shim that died or a Create that failed. When the bundle has no
// options.json, runc never ran for it (the runc service writes the file before
// it mounts the rootfs or calls runc), so there is nothing for runc to delete;
// the runc manager would still call `runc delete` with runc's default root and
// create state under /run/containerd/runc. Return what it would have returned.
func (m *manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	debug.SetGCPercent(task.HeldGCPercent) // a short-lived process too (see Start)
	cwd, err := os.Getwd()
	if err != nil {
		return shim.StopStatus{}, err
	}
	bundle := filepath.Join(filepath.Dir(cwd), id)
	if _, err := os.Stat(filepath.Join(bundle, "options.json")); errors.Is(err, os.ErrNotExist) {
		return shim.StopStatus{ExitedAt: time.Now(), ExitStatus: 128 + int(unix.SIGKILL)}, nil
	}
	// The dead shim could not write its container's summary: say in the
	// event log that the guard was lost, rather than let it just stop.
	if err := guard.RecordLost(bundle, id); err != nil {
		log.G(ctx).WithError(err).Warn("vordr: record the lost guard in the event log")
	}
	st, err := m.Shim.Stop(ctx, id)
	// The dead shim could not close its guards: remove their node-wide
	// eBPF entries now rather than at the next container's attach.
	if n, cerr := monitor.Collect(monitor.Options{}); cerr != nil {
		log.G(ctx).WithError(cerr).Warn("vordr: collect guard state of a dead shim")
	} else if n > 0 {
		log.G(ctx).WithField("containers", n).Info("vordr: removed guard state left by a dead shim")
	}
	return st, err
}

func trim(url string) string {
	const prefix = "type.googleapis.com/"
	if len(url) > len(prefix) && url[:len(prefix)] == prefix {
		return url[len(prefix):]
	}
	return url
}

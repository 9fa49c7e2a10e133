//go:build linux

package task

import (
	"fmt"
	"os"
	"sync"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// HookFactory makes a hook when the shim starts. It gets the shim's event
// publisher so the hook can publish on containerd's event bus.
type HookFactory struct {
	Name string
	New  func(ic *plugin.InitContext, publisher shim.Publisher) (Hook, error)
}

var (
	factoriesMu sync.Mutex
	factories   []HookFactory
)

// RegisterHook adds a hook to every task service of this shim. Call it from an
// init function; hooks run in registration order.
func RegisterHook(f HookFactory) {
	factoriesMu.Lock()
	defer factoriesMu.Unlock()
	factories = append(factories, f)
}

func init() {
	// Registered as the shim's "task" TTRPC plugin in place of the runc shim's
	// own (whose plugin package is deliberately not imported).
	registry.Register(&plugin.Registration{
		Type: plugins.TTRPCPlugin,
		ID:   "task",
		Requires: []plugin.Type{
			plugins.EventPlugin,
			plugins.InternalPlugin,
		},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			DeferGC() // until the first Create has answered (gc.go)
			// containerd starts the shim in the bundle of its first task.
			if cwd, err := os.Getwd(); err == nil {
				earlySpec.start(cwd)
			}
			pp, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			ss, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			publisher := pp.(shim.Publisher)
			inner, err := task.NewTaskService(ic.Context, publisher, ss.(shutdown.Service))
			if err != nil {
				return nil, err
			}
			factoriesMu.Lock()
			defer factoriesMu.Unlock()
			hooks := make([]Hook, 0, len(factories))
			for _, f := range factories {
				h, err := f.New(ic, publisher)
				if err != nil {
					return nil, fmt.Errorf("vordr hook %s: %w", f.Name, err)
				}
				hooks = append(hooks, h)
			}
			return newService(inner, hooks, publisher), nil
		},
	})
}

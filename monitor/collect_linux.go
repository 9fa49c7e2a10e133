//go:build linux

package monitor

import (
	"fmt"

	"github.com/cilium/ebpf"
	"os"
	"path/filepath"

	vbpf "github.com/vordr-project/vordr/bpf"
)

// Collect removes the node-wide entries of containers whose guarding process
// died without closing its guard (a shim killed with SIGKILL). The shim calls it from
// `delete`, which containerd runs after it found a shim dead, so stale
// entries do not wait for the next Attach; with Options.UnloadWhenIdle it
// also unloads an idle set. It returns how many containers it removed. A node without a pinned set is not an error.
func Collect(o Options) (removed int, err error) {
	o.defaults()
	dir := filepath.Join(o.PinDir, vbpf.Version())
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err != nil {
		return 0, nil // nothing pinned: nothing to collect, and no lock to take
	}
	err = withLock(o.LockPath, func() error {
		if _, err := os.Stat(filepath.Join(dir, completeMarker)); err != nil {
			return nil // unloaded meanwhile
		}
		// containerd runs `shim delete` after every shim exits: look for
		// dead owners in the containers map alone, and open the rest of
		// the set only when there is something to remove.
		if !o.UnloadWhenIdle {
			stale, err := hasDeadOwners(dir)
			if err != nil || !stale {
				return err
			}
		}
		n, err := loadPinned(dir, vbpf.MapNames(), nil) // maps only: the syscall counter's program is opened if needed
		if err != nil {
			return err
		}
		defer n.close()
		removed = n.gcEntries()
		if err := n.reconcileSyscount(); err != nil {
			return err
		}
		if !o.UnloadWhenIdle {
			return nil
		}
		return n.unloadIfIdle()
	})
	if err != nil {
		return removed, fmt.Errorf("collect stale guard state: %w", err)
	}
	return removed, nil
}

func hasDeadOwners(dir string) (bool, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_"+vbpf.MapContainers), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return false, fmt.Errorf("open pinned map %s: %w", vbpf.MapContainers, err)
	}
	defer m.Close()
	var (
		k uint64
		v vbpf.Container
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !ownerAlive(int(v.OwnerPid), v.OwnerStart) {
			return true, nil
		}
	}
	return false, it.Err()
}

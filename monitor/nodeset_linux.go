//go:build linux

package monitor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	vbpf "github.com/vordr-project/vordr/bpf"
)

// The node-wide program set (docs/monitoring.md, "One program set per node"):
//
//	<PinDir>/<bpf.Version()>/map_<name>    every map
//	<PinDir>/<bpf.Version()>/prog_<name>   every program
//	<PinDir>/<bpf.Version()>/link_<name>   tracepoint links (exec, exit, fork;
//	                                       sys_enter only while opted in)
//
// Every change happens under an exclusive flock on LockPath, so concurrent
// shims neither load twice nor unload under each other. The directory is
// versioned by the object's hash: an upgraded shim loads its own set next to
// an older one, and each set is unloaded when its last container goes.

const (
	defaultPinDir   = "/sys/fs/bpf/vordr"
	defaultLockPath = "/run/vordr/bpf.lock"
	bpffsMagic      = 0xcafe4a11
	completeMarker  = "link_vordr_fork" // pinned last: a set without it is a crashed load
)

var tracepointProgs = []string{"vordr_exec", "vordr_exit", "vordr_fork"}

type nodeSet struct {
	dir   string
	maps  map[string]*ebpf.Map
	progs map[string]*ebpf.Program

	// Under openSets' lock: guards using the set, and whether the process
	// cache still holds it (an uncached set is closed by its last user).
	refs   int
	cached bool
}

// openSets holds the program sets this process opened, by directory. A shim
// opens the pinned set once and reuses it for every container it guards
// (all of a pod's), checking under the node lock that it is still the
// pinned one: opening fifteen pinned objects costs a millisecond or two.
var openSets struct {
	sync.Mutex
	m map[string]*nodeSet
}

// acquireSet returns the pinned set under pinDir, loading it if the node has
// none. Must run under the node lock; give it back with releaseSet.
func acquireSet(pinDir string) (*nodeSet, error) {
	dir := filepath.Join(pinDir, vbpf.Version())
	openSets.Lock()
	defer openSets.Unlock()
	if n := openSets.m[dir]; n != nil {
		if samePinnedMap(filepath.Join(dir, "map_"+vbpf.MapContainers), n.maps[vbpf.MapContainers]) {
			n.refs++
			return n, nil
		}
		// Unloaded, and maybe loaded again, by another process: the
		// cached maps are no longer the node's.
		forgetLocked(n)
	}
	n, err := openNodeSet(pinDir)
	if err != nil {
		return nil, err
	}
	if openSets.m == nil {
		openSets.m = map[string]*nodeSet{}
	}
	n.refs, n.cached = 1, true
	openSets.m[dir] = n
	return n, nil
}

// releaseSet gives back a set from acquireSet.
func releaseSet(n *nodeSet) {
	openSets.Lock()
	defer openSets.Unlock()
	if n.refs--; n.refs == 0 && !n.cached {
		n.close()
	}
}

// forgetSet drops n from the process cache (it was unloaded); its last user
// closes it.
func forgetSet(n *nodeSet) {
	openSets.Lock()
	defer openSets.Unlock()
	forgetLocked(n)
}

func forgetLocked(n *nodeSet) {
	if openSets.m[n.dir] == n {
		delete(openSets.m, n.dir)
	}
	if n.cached {
		n.cached = false
		if n.refs == 0 {
			n.close()
		}
	}
}

func (n *nodeSet) close() {
	for _, m := range n.maps {
		m.Close()
	}
	for _, p := range n.progs {
		p.Close()
	}
}

// loadSpec parses the embedded object. Not cached: only loading the set
// needs it (once per node, not per attach), and the parsed object with its
// BTF is half a megabyte a long-lived shim should not keep.
func loadSpec() (*ebpf.CollectionSpec, error) {
	s, err := vbpf.Spec()
	if err != nil {
		return nil, fmt.Errorf("parse embedded eBPF object (rebuild vordr): %w", err)
	}
	return s, nil
}

// withLock runs fn holding the node-wide lock.
func withLock(lockPath string, fn func() error) error {
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o700); err != nil {
		return fmt.Errorf("create lock directory: %w", err)
	}
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open node lock %s: %w", lockPath, err)
	}
	defer f.Close()
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", lockPath, err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return fn()
}

// ensureBPFFS mounts bpffs on dir unless it already is one: this machine
// kind does not mount it at boot. Called under the node lock so two shims do
// not stack two (separate) bpffs instances.
func ensureBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && uint32(st.Type) == bpffsMagic {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on %s (mount it yourself: mount -t bpf bpf %s): %w", dir, dir, err)
	}
	return nil
}

// openNodeSet opens the pinned program set, loading and pinning it first if
// this node has none of this version. Must run under the node lock.
func openNodeSet(pinDir string) (*nodeSet, error) {
	// The pin directory must live in a bpffs; mount one at its top.
	if err := ensureBPFFS(bpffsRoot(pinDir)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("create pin directory: %w", err)
	}
	dir := filepath.Join(pinDir, vbpf.Version())
	var n *nodeSet
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err == nil {
		// The common case, on every attach: no ELF to parse.
		n, err = loadPinned(dir, vbpf.MapNames(), cgroupProgramNames())
		if err != nil {
			return nil, err
		}
	} else {
		spec, err := loadSpec()
		if err != nil {
			return nil, err
		}
		// Absent, or left half-pinned by a loader that died: nobody can
		// be using a set without its marker, so start over.
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("remove incomplete program set %s: %w", dir, err)
		}
		n, err = loadAndPin(dir, spec)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	gcOtherVersions(pinDir, vbpf.Version())
	return n, nil
}

// bpffsRoot is the directory to mount bpffs on for pinDir: /sys/fs/bpf for
// anything below it, else pinDir's parent.
func bpffsRoot(pinDir string) string {
	if pinDir == "/sys/fs/bpf" || strings.HasPrefix(pinDir, "/sys/fs/bpf/") {
		return "/sys/fs/bpf"
	}
	return filepath.Dir(pinDir)
}

// loadPinned opens the named maps and programs of the pinned set in dir.
func loadPinned(dir string, maps, progs []string) (*nodeSet, error) {
	n := &nodeSet{dir: dir, maps: map[string]*ebpf.Map{}, progs: map[string]*ebpf.Program{}}
	for _, name := range maps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_"+name), nil)
		if err != nil {
			n.close()
			return nil, fmt.Errorf("open pinned map %s (remove %s if no vordr container runs): %w", name, dir, err)
		}
		n.maps[name] = m
	}
	for _, name := range progs {
		p, err := ebpf.LoadPinnedProgram(filepath.Join(dir, "prog_"+name), nil)
		if err != nil {
			n.close()
			return nil, fmt.Errorf("open pinned program %s (remove %s if no vordr container runs): %w", name, dir, err)
		}
		n.progs[name] = p
	}
	return n, nil
}

func loadAndPin(dir string, spec *ebpf.CollectionSpec) (*nodeSet, error) {
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load eBPF programs: the kernel's verifier refused them (kernel too old or without BTF?): %w", err)
		}
		return nil, fmt.Errorf("load eBPF programs (needs root and a kernel with BTF): %w", err)
	}
	n := &nodeSet{dir: dir, maps: coll.Maps, progs: coll.Programs}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		n.close()
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	for name, m := range n.maps {
		if strings.HasPrefix(name, ".") {
			continue
		}
		if err := m.Pin(filepath.Join(dir, "map_"+name)); err != nil {
			n.close()
			return nil, fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	for name, p := range n.progs {
		if err := p.Pin(filepath.Join(dir, "prog_"+name)); err != nil {
			n.close()
			return nil, fmt.Errorf("pin program %s: %w", name, err)
		}
	}
	// completeMarker (the fork link) is attached and pinned last.
	for _, name := range tracepointProgs {
		l, err := link.AttachTracing(link.TracingOptions{Program: n.progs[name]})
		if err != nil {
			n.close()
			return nil, fmt.Errorf("attach %s: %w", name, err)
		}
		err = l.Pin(filepath.Join(dir, "link_"+name))
		l.Close() // the pin keeps it attached
		if err != nil {
			n.close()
			return nil, fmt.Errorf("pin link %s: %w", name, err)
		}
	}
	return n, nil
}

// gcEntries removes the entries of containers whose owning process is gone
// (a shim that was killed could not Close). Must run under the node lock.
func (n *nodeSet) gcEntries() int {
	var (
		k       uint64
		v       vbpf.Container
		victims []uint64
	)
	it := n.maps[vbpf.MapContainers].Iterate()
	for it.Next(&k, &v) {
		if !ownerAlive(int(v.OwnerPid), v.OwnerStart) {
			victims = append(victims, k)
		}
	}
	for _, id := range victims {
		n.removeEntry(id)
	}
	return len(victims)
}

// removeEntry deletes every map entry of one container. The containers
// entry goes first: once it is gone no program touches the others.
func (n *nodeSet) removeEntry(cgid uint64) {
	n.maps[vbpf.MapContainers].Delete(cgid)
	n.maps[vbpf.MapSyscounts].Delete(cgid)
	var (
		k    vbpf.AllowKey
		v    uint8
		keys []vbpf.AllowKey
	)
	it := n.maps[vbpf.MapAllow].Iterate()
	for it.Next(&k, &v) {
		if k.CgroupId == cgid {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		n.maps[vbpf.MapAllow].Delete(k)
	}
}

// ringSlots reads the owner records of the pool's filled slots, which are
// always a prefix of the array (slots fill in order and the pool shrinks
// from the top): one lookup per ring, not per possible slot.
func (n *nodeSet) ringSlots() ([]vbpf.RingOwner, error) {
	m := n.maps[vbpf.MapRingOwners]
	var slots []vbpf.RingOwner
	for slot := uint32(0); slot < m.MaxEntries(); slot++ {
		var o vbpf.RingOwner
		if err := m.Lookup(slot, &o); err != nil {
			return nil, fmt.Errorf("read ring slot %d: %w", slot, err)
		}
		if o.RingSize == 0 {
			break
		}
		slots = append(slots, o)
	}
	return slots, nil
}

func ringFree(o vbpf.RingOwner) bool {
	return o.OwnerPid == 0 || !ownerAlive(int(o.OwnerPid), o.OwnerStart)
}

// maxFreeRings is how many unused rings the pool keeps for the next
// containers; a release beyond it frees the ring (see releaseRing).
const maxFreeRings = 8

// claimRing takes a ring buffer from the node's pool for a container of the
// given owner: a filled slot whose owner is gone, or an empty slot with a
// new ring. Putting a ring into the map-of-maps waits for an RCU grace
// period (milliseconds); reusing one does not, so a node that starts and
// stops containers pays it only when the pool grows. Must run under the
// node lock.
func (n *nodeSet) claimRing(owner uint32, start uint64) (uint32, *ebpf.Map, error) {
	owners, rings := n.maps[vbpf.MapRingOwners], n.maps[vbpf.MapRings]
	claim := vbpf.RingOwner{OwnerPid: owner, OwnerStart: start, RingSize: vbpf.RingSize}
	slots, err := n.ringSlots()
	if err != nil {
		return 0, nil, err
	}
	for i, o := range slots {
		if !ringFree(o) {
			continue
		}
		slot := uint32(i)
		var id uint32
		if err := rings.Lookup(slot, &id); err != nil {
			return 0, nil, fmt.Errorf("read ring slot %d: %w", slot, err)
		}
		ring, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			return 0, nil, fmt.Errorf("open ring of slot %d: %w", slot, err)
		}
		if err := owners.Update(slot, claim, ebpf.UpdateExist); err != nil {
			ring.Close()
			return 0, nil, fmt.Errorf("claim ring slot %d: %w", slot, err)
		}
		return slot, ring, nil
	}
	if len(slots) == int(rings.MaxEntries()) {
		return 0, nil, fmt.Errorf("all %d ring slots of the node are taken (one per guarded container)", len(slots))
	}
	slot := uint32(len(slots))
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Name: "vordr_ring", Type: ebpf.RingBuf, MaxEntries: vbpf.RingSize})
	if err != nil {
		return 0, nil, fmt.Errorf("create ring buffer: %w", err)
	}
	if err := rings.Update(slot, ring, ebpf.UpdateAny); err != nil {
		ring.Close()
		return 0, nil, fmt.Errorf("insert ring buffer: %w", err)
	}
	// Filled, then owned: a slot whose owner record says filled always
	// has its ring.
	if err := owners.Update(slot, claim, ebpf.UpdateAny); err != nil {
		ring.Close()
		return 0, nil, fmt.Errorf("claim ring slot %d: %w", slot, err)
	}
	return slot, ring, nil
}

// releaseRing gives a slot back to the pool if owner still holds it. The
// ring stays for the next container, unless the pool already keeps
// maxFreeRings unused ones: then free rings at the top of the pool are
// dropped (one RCU wait each, paid only while a node shrinks from a peak).
// Must run under the node lock.
func (n *nodeSet) releaseRing(slot, owner uint32) error {
	owners := n.maps[vbpf.MapRingOwners]
	var o vbpf.RingOwner
	if err := owners.Lookup(slot, &o); err != nil {
		return fmt.Errorf("release ring slot %d: %w", slot, err)
	}
	if o.OwnerPid != owner {
		return nil
	}
	if err := owners.Update(slot, vbpf.RingOwner{RingSize: o.RingSize}, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("release ring slot %d: %w", slot, err)
	}
	slots, err := n.ringSlots()
	if err != nil {
		return err
	}
	free := 0
	for _, s := range slots {
		if ringFree(s) {
			free++
		}
	}
	for top := len(slots) - 1; top >= 0 && free > maxFreeRings && ringFree(slots[top]); top-- {
		// Empty, then drop the ring: an empty slot never holds a ring
		// that could be claimed by mistake.
		if err := owners.Update(uint32(top), vbpf.RingOwner{}, ebpf.UpdateExist); err != nil {
			return fmt.Errorf("shrink ring pool at slot %d: %w", top, err)
		}
		if err := n.maps[vbpf.MapRings].Delete(uint32(top)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("free ring of slot %d: %w", top, err)
		}
		free--
	}
	return nil
}

// reconcileSyscount attaches the opt-in sys_enter counter while some
// container asked for it and detaches it when none does, so the host pays
// its cost only then. Must run under the node lock.
func (n *nodeSet) reconcileSyscount() error {
	want := false
	var (
		k uint64
		v vbpf.Container
	)
	it := n.maps[vbpf.MapContainers].Iterate()
	for it.Next(&k, &v) {
		if v.Flags&vbpf.CfSyscount != 0 {
			want = true
			break
		}
	}
	pin := filepath.Join(n.dir, "link_vordr_sys_enter")
	_, err := os.Stat(pin)
	have := err == nil
	switch {
	case want && !have:
		prog := n.progs["vordr_sys_enter"]
		if prog == nil {
			// A shim opens only the programs it attaches per container.
			p, err := ebpf.LoadPinnedProgram(filepath.Join(n.dir, "prog_vordr_sys_enter"), nil)
			if err != nil {
				return fmt.Errorf("open pinned syscall counter: %w", err)
			}
			defer p.Close()
			prog = p
		}
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: prog})
		if err != nil {
			return fmt.Errorf("attach opt-in syscall counter: %w", err)
		}
		defer l.Close()
		if err := l.Pin(pin); err != nil {
			return fmt.Errorf("pin syscall counter link: %w", err)
		}
	case !want && have:
		if err := os.Remove(pin); err != nil {
			return fmt.Errorf("detach syscall counter: %w", err)
		}
	}
	return nil
}

// empty reports whether no container uses the set: no container entry,
// and no ring claimed by a live process (a guard being prepared has its
// ring before its entry).
func (n *nodeSet) empty() bool {
	var k uint64
	var v vbpf.Container
	if n.maps[vbpf.MapContainers].Iterate().Next(&k, &v) {
		return false
	}
	slots, err := n.ringSlots()
	if err != nil {
		return false
	}
	for _, o := range slots {
		if !ringFree(o) {
			return false
		}
	}
	return true
}

// unloadIfIdle removes the pinned set when no container uses it: the links'
// pins go, so the tracepoints detach, and the maps and programs are freed
// once the last open descriptor closes. Must run under the node lock.
func (n *nodeSet) unloadIfIdle() error {
	if !n.empty() {
		return nil
	}
	if !samePinnedMap(filepath.Join(n.dir, "map_"+vbpf.MapContainers), n.maps[vbpf.MapContainers]) {
		return nil // already unloaded (and maybe reloaded) by someone else
	}
	if err := os.RemoveAll(n.dir); err != nil {
		return fmt.Errorf("unload program set %s: %w", n.dir, err)
	}
	forgetSet(n)
	os.Remove(filepath.Dir(n.dir)) // fails while other versions live there
	return nil
}

func samePinnedMap(path string, m *ebpf.Map) bool {
	pm, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return false
	}
	defer pm.Close()
	a, err1 := pm.Info()
	b, err2 := m.Info()
	if err1 != nil || err2 != nil {
		return false
	}
	ida, ok1 := a.ID()
	idb, ok2 := b.ID()
	return ok1 && ok2 && ida == idb
}

// gcOtherVersions garbage-collects sets pinned by other vordr versions and
// unloads those nobody uses any more (after an upgrade, or a crashed shim).
func gcOtherVersions(pinDir, current string) {
	ents, err := os.ReadDir(pinDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || e.Name() == current {
			continue
		}
		dir := filepath.Join(pinDir, e.Name())
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_"+vbpf.MapContainers), nil)
		if err != nil {
			if _, serr := os.Stat(filepath.Join(dir, completeMarker)); serr != nil {
				os.RemoveAll(dir) // incomplete leftovers
			}
			continue
		}
		var (
			k    uint64
			v    vbpf.Container
			live bool
		)
		it := m.Iterate()
		for it.Next(&k, &v) {
			if ownerAlive(int(v.OwnerPid), v.OwnerStart) {
				live = true
				break
			}
		}
		m.Close()
		if !live && !ringsClaimed(dir) {
			// Deleting the pins drops the old links; entries die with the maps.
			os.RemoveAll(dir)
		}
	}
}

// ringsClaimed reports whether a live process holds a ring of the set in
// dir: a guard prepared (its ring claimed) but not yet attached uses the
// set as much as a container entry does. A set without a ring pool (an
// older version) has none.
func ringsClaimed(dir string) bool {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_"+vbpf.MapRingOwners), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return false
	}
	defer m.Close()
	for slot := uint32(0); slot < m.MaxEntries(); slot++ {
		var o vbpf.RingOwner
		if m.Lookup(slot, &o) != nil || o.RingSize == 0 {
			return false
		}
		if !ringFree(o) {
			return true
		}
	}
	return false
}

// selfStart is this process's start time, read once.
var selfStart = sync.OnceValues(func() (uint64, error) { return processStart(os.Getpid()) })

// processStart returns a process's start time in clock ticks since boot
// (field 22 of /proc/PID/stat): with the pid it names a process uniquely.
func processStart(pid int) (uint64, error) {
	s, _, _, err := processStartState(pid)
	return s, err
}

// pfExiting is PF_EXITING in a task's flags: set at the very start of exit.
const pfExiting = 0x4

// processStartState also returns the process state (field 3: R, S, Z…)
// and whether it is exiting (PF_EXITING in field 9).
func processStartState(pid int) (start uint64, state byte, exiting bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false, err
	}
	// comm may contain spaces and parentheses: split after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) == 0 {
		return 0, 0, false, errors.New("malformed stat")
	}
	flags, _ := strconv.ParseUint(f[6], 10, 64)
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0][0], flags&pfExiting != 0, err
}

// ProcessGone reports whether pid has exited: gone from /proc, exiting, or
// a zombie waiting for its parent to reap it.
func ProcessGone(pid int) bool {
	_, state, exiting, err := processStartState(pid)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH)
	}
	return exiting || state == 'Z' || state == 'X' || state == 'x'
}

func ownerAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	s, state, exiting, err := processStartState(pid)
	// An exiting task, a zombie or a dead task not yet reaped owns nothing
	// any more: a SIGKILLed shim closes its sockets (containerd then runs
	// `shim delete`) before it even becomes a zombie.
	return err == nil && s == start && !exiting && state != 'Z' && state != 'X' && state != 'x'
}

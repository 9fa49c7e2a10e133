//go:build linux

package monitor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	vbpf "github.com/vordr-project/vordr/bpf"
)

// Target identifies the container to guard. The shim fills it after runc
// create, before start: the init process exists (stopped in runc init) and
// its cgroup and mount namespace are final.
type Target struct {
	ContainerID string
	// CgroupPath is the container's cgroup v2 directory, e.g.
	// /sys/fs/cgroup/unified/default/<id>. Required: network programs are
	// attached there.
	CgroupPath string
	// CgroupID is bpf_get_current_cgroup_id() of the container: the inode
	// number of CgroupPath. 0 means: take it from CgroupPath.
	CgroupID uint64
	// InitPID is the container's init process (host pid). 0 disables the
	// fanotify file guard (exec drift denial falls back to SIGKILL, and
	// sensitive files are not watched).
	InitPID int
	// RootfsPath is the bundle's rootfs, for the record only: marks are
	// placed through /proc/<InitPID>/root, which is what the container sees.
	RootfsPath string
	// Executables, when set, turns a denying drift rule into exec
	// appraisal: only files whose bytes are executables of the signed
	// image run (plus the profile's exec.allow).
	Executables *ImageExecutables
}

// Options tune a guard. The zero value is right for the shim.
type Options struct {
	// PinDir is where the node-wide program set is pinned (default
	// /sys/fs/bpf/vordr). Every vordr process on a node must use the same.
	PinDir string
	// LockPath serialises loading and unloading across processes
	// (default /run/vordr/bpf.lock).
	LockPath string
	// Buffer is the capacity of the Events channel (default 512: the ring batches and aggregates storms).
	Buffer int
	// PollInterval is how often counters are read for the anomaly
	// detector (default 250 ms).
	PollInterval time.Duration
	// UnloadWhenIdle unloads the node's program set when its last guard
	// closes. By default the set stays pinned: loading it costs ~0.3 s of
	// verifier time on the next container's start, while an idle set costs
	// one failed hash lookup per exec/fork/exit on the host.
	UnloadWhenIdle bool
	// SysctlHelper is a binary that runs PidnsSysctlMain when called with
	// PidnsSysctlArg (the shim itself): needed to deny fileless execution
	// (exec.fileless = "deny"). Empty: fileless execution is not denied,
	// and Attach fails if the profile requires it.
	SysctlHelper string
	// RunHelper starts and waits for the helper; nil means exec.Cmd.Run.
	// A shim, whose reaper collects every child, passes its reaper's.
	RunHelper func(*exec.Cmd) error
	// Seccomp is the shim's seccomp agent, if the spec was shaped with
	// WithSeccompAgent: the guard then reports the container's denied
	// syscalls (module, bpf, ptrace, …) as KindSyscall events.
	Seccomp *SeccompAgent
}

func (o *Options) defaults() {
	if o.PinDir == "" {
		o.PinDir = defaultPinDir
	}
	if o.LockPath == "" {
		o.LockPath = defaultLockPath
	}
	if o.Buffer == 0 {
		o.Buffer = 512
	}
	if o.PollInterval == 0 {
		o.PollInterval = 250 * time.Millisecond
	}
}

// ErrAlreadyGuarded is returned by Attach when the cgroup already has a live
// guard (in this or another process).
var ErrAlreadyGuarded = errors.New("cgroup is already guarded")

// Guard is the eBPF and fanotify guard of one container. Create it with
// Attach, read Events until the channel closes, Close it at task delete.
type Guard struct {
	t     Target
	p     *Profile
	o     Options
	cgid  uint64
	set   *nodeSet
	ring  *ebpf.Map
	slot  uint32 // this guard's slot in the rings pool, while ring != nil
	links []link.Link
	rd    *ringbuf.Reader
	files *fileGuard
	det   *detector
	detMu sync.Mutex
	// stopPoll ends the counter poller; pollWG waits for it. The poller
	// stops, and the detector judges the final counters, before the map
	// entry is removed, so teardown never reads vanished counters.
	stopPoll chan struct{}
	activity chan struct{}
	pollWG   sync.WaitGroup
	polling  bool
	mech     map[string]string
	// digests caches reported executables by (inode, ctime); used only
	// by the ring reader.
	digests map[[2]uint64]string
	monoOff int64 // wall ns - monotonic ns
	// inserted: this guard put the containers entry in; only then may it
	// remove it (a refused second Attach must not remove the first's).
	inserted bool

	events    chan Event
	sendMu    sync.RWMutex // guards closed against late senders (seccomp agent)
	closed    bool
	closing   chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	delivered, lost, alerts atomic.Uint64
}

// Attach puts the container under guard: it inserts the container into the
// node-wide maps (loading and pinning the program set if this is the first
// container on the node), attaches the network programs to its cgroup, and
// places fanotify marks on its mounts and sensitive files. Call it after
// runc create and before start so the first exec is seen. ctx bounds only
// the attach itself, not the guard's life.
//
// On error nothing is left behind. Whether an error must stop the container
// is the caller's decision: Profile.Required says what the profile wants.
func Attach(ctx context.Context, t Target, p *Profile, o Options) (*Guard, error) {
	if err := checkAttach(t, p); err != nil {
		return nil, err
	}
	pp, err := Prepare(o)
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", t.ContainerID, err)
	}
	return pp.Attach(ctx, t, p)
}

func checkAttach(t Target, p *Profile) error {
	if p == nil {
		return errors.New("attach: nil profile (use monitor.LoadProfile)")
	}
	if t.CgroupPath == "" {
		return errors.New("attach: Target.CgroupPath is required (the container's cgroup v2 directory)")
	}
	return nil
}

// Prepared is the part of a guard that does not depend on the container:
// the node's program set, a ring buffer from the node's pool, claimed for
// this process, and its reader. A shim prepares while runc creates the
// container, so that only the container's own steps (its map entry, its
// cgroup's programs, its fanotify marks) remain between runc create and the
// reply to Create.
//
// A Prepared is used by one Attach, which takes it over whatever its
// outcome, or given back with Release.
type Prepared struct {
	o    Options
	set  *nodeSet
	slot uint32
	ring *ebpf.Map
	rd   *ringbuf.Reader

	mu    sync.Mutex
	taken bool // by Attach or Release
}

// Prepare opens the node's program set (loading it if the node has none),
// claims a ring buffer from its pool and opens the ring's reader. While it
// is held, the claimed ring keeps the set from being unloaded as idle.
func Prepare(o Options) (_ *Prepared, err error) {
	o.defaults()
	pp := &Prepared{o: o}
	owner := os.Getpid()
	ownerStart, err := selfStart()
	if err != nil {
		return nil, fmt.Errorf("read own start time: %w", err)
	}
	defer func() {
		if err != nil {
			pp.Release()
		}
	}()
	err = withLock(o.LockPath, func() error {
		set, err := acquireSet(o.PinDir)
		if err != nil {
			return err
		}
		pp.set = set
		// Entries of shims that died: collected here, off Create's path.
		set.gcEntries()
		// A ring from the pool: no map-of-maps update on this path.
		pp.slot, pp.ring, err = set.claimRing(uint32(owner), ownerStart)
		return err
	})
	if err != nil {
		return nil, err
	}
	if pp.rd, err = ringbuf.NewReader(pp.ring); err != nil {
		return nil, fmt.Errorf("open ring buffer: %w", err)
	}
	return pp, nil
}

// take hands pp's resources to its caller once.
func (pp *Prepared) take() bool {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.taken {
		return false
	}
	pp.taken = true
	return true
}

// Release gives back what Prepare took, unless Attach took it over: the
// reader, the ring's slot (to the pool) and the set.
func (pp *Prepared) Release() {
	if pp == nil || !pp.take() {
		return
	}
	if pp.rd != nil {
		pp.rd.Close()
	}
	if pp.ring != nil {
		pp.ring.Close()
	}
	if pp.set != nil {
		withLock(pp.o.LockPath, func() error {
			if pp.ring != nil {
				if err := pp.set.releaseRing(pp.slot, uint32(os.Getpid())); err != nil {
					return err
				}
			}
			if pp.o.UnloadWhenIdle {
				return pp.set.unloadIfIdle()
			}
			return nil
		})
		releaseSet(pp.set)
	}
}

// Attach puts the container under guard with what pp prepared (see the
// package-level Attach). It takes pp over: on error, everything pp held is
// given back too.
func (pp *Prepared) Attach(ctx context.Context, t Target, p *Profile) (_ *Guard, err error) {
	if !pp.take() {
		return nil, errors.New("attach: the prepared guard was already used or released")
	}
	o := pp.o
	attachStart := time.Now()
	g := &Guard{
		t: t, p: p, o: o,
		set: pp.set, ring: pp.ring, slot: pp.slot, rd: pp.rd,
		stopPoll: make(chan struct{}),
		activity: make(chan struct{}, 1),
		mech:     map[string]string{},
		digests:  map[[2]uint64]string{},
		events:   make(chan Event, o.Buffer),
		closing:  make(chan struct{}),
	}
	// attached is set once the guard is complete: on an error, and on a
	// panic a caller recovers from, everything taken over is given back.
	attached := false
	defer func() {
		if !attached {
			g.teardown()
		}
	}()
	if err := checkAttach(t, p); err != nil {
		return nil, err
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(t.CgroupPath, &sfs); err != nil {
		return nil, fmt.Errorf("attach: cgroup %s: %w", t.CgroupPath, err)
	}
	if sfs.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, fmt.Errorf("attach: %s is not a cgroup v2 directory (on this host cgroup v2 is at /sys/fs/cgroup/unified)", t.CgroupPath)
	}
	var st unix.Stat_t
	if err := unix.Stat(t.CgroupPath, &st); err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	if t.CgroupID == 0 {
		t.CgroupID = st.Ino
	} else if t.CgroupID != st.Ino {
		return nil, fmt.Errorf("attach: CgroupID %d does not match %s (inode %d)", t.CgroupID, t.CgroupPath, st.Ino)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g.t, g.cgid = t, t.CgroupID
	g.det = newDetector(t.ContainerID, p, time.Now())
	// 3. Network programs on the container's own cgroup (nobody else
	// pays), attached while the fanotify marks are placed: neither needs
	// the other, and the container's map entry, which makes the programs
	// act, goes in only after both.
	linksDone := make(chan error, 1)
	var links []link.Link
	go func() { linksDone <- attachCgroupPrograms(g.set, t.CgroupPath, &links) }()
	joined := false
	var linksErr error
	joinLinks := func() error {
		if !joined {
			joined = true
			linksErr = <-linksDone
			g.links = links
		}
		return linksErr
	}
	defer func() {
		if !attached {
			joinLinks() // before the teardown deferred above closes them
		}
	}()

	var mono unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	g.monoOff = time.Now().UnixNano() - mono.Nano()

	// Anything whose ctime is at or after this instant was written after the
	// container was created: the coarse clock is what filesystems stamp
	// ctime with, so a file written a moment later cannot look older.
	var coarse unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &coarse)
	threshold := coarse.Nano()

	// 1. fanotify first: whether it works decides the BPF fallback flags.
	execDeny := p.Exec.Drift == ActionDeny
	fanExec := false
	var fileMask uint64
	switch p.Files.Action {
	case ActionDeny:
		fileMask = unix.FAN_OPEN_PERM
	default:
		fileMask = unix.FAN_OPEN
	}
	if len(p.Files.Sensitive) == 0 {
		fileMask = 0
	}
	if t.InitPID > 0 && (execDeny || fileMask != 0) {
		var ap *appraiser
		if execDeny && t.Executables != nil {
			ap = newAppraiser(t.Executables, p.Exec.Allow)
		}
		fg, notes, ferr := newFileGuard(fileGuardConfig{
			initPID: t.InitPID, threshold: threshold,
			execMarks: execDeny, execDeny: execDeny,
			sensitive: p.Files.Sensitive, fileMask: fileMask, rootfs: t.RootfsPath,
			appraise: ap,
		})
		switch {
		case ferr != nil:
			g.mech["files"] = "none: " + ferr.Error()
		default:
			g.files = fg
			fanExec = fg.execMarks > 0
			what := "FAN_OPEN (observe)"
			if fileMask == unix.FAN_OPEN_PERM {
				what = "FAN_OPEN_PERM (deny)"
			}
			g.mech["files"] = fmt.Sprintf("fanotify %s inode marks on %s of the %d listed sensitive files (the others are not in the container)", what, notes["files.marked"], len(p.Files.Sensitive))
			if n := notes["files.links"]; n != "" {
				g.mech["files"] += fmt.Sprintf(", and on %s other names (hard links) of them", n)
			}
			var problems []string
			for k, v := range notes {
				if strings.HasPrefix(k, "files:") && k != "files.links" {
					problems = append(problems, strings.TrimPrefix(k, "files:")+": "+v)
				}
			}
			if len(problems) > 0 {
				sort.Strings(problems)
				g.mech["files.unmarked"] = strings.Join(problems, "; ")
			}
			if execDeny {
				switch {
				case fanExec && ap != nil:
					g.mech["exec.drift"] = fmt.Sprintf("deny: exec appraisal, only the %d executables of the signed image (%s) and %d exec.allow entries run; fanotify FAN_OPEN_EXEC_PERM on %d container mounts, writable mounts noexec",
						len(t.Executables.Digests), t.Executables.Source, len(p.Exec.Allow), fg.execMarks)
				case fanExec:
					g.mech["exec.drift"] = fmt.Sprintf("deny: files created or changed after start (no verified image to appraise against); fanotify FAN_OPEN_EXEC_PERM on %d container mounts", fg.execMarks)
				}
				if n := notes["exec"]; n != "" {
					g.mech["exec.marks"] = n
				}
			}
		}
	} else if fileMask != 0 {
		g.mech["files"] = "none: no init pid given"
	}
	if p.Files.Action == ActionDeny && g.files == nil {
		return nil, fmt.Errorf("attach: profile %s denies sensitive-file opens but no mechanism can (%s)", p.Name, g.mech["files"])
	}

	var flags uint32
	if p.Network.Connect == ActionDeny {
		flags |= vbpf.CfDenyConnect
	}
	if p.Anomaly.SyscallCounting {
		flags |= vbpf.CfSyscount
	}
	if p.Exec.Fileless == ActionDeny {
		// Independent of fanotify and of the sysctl: belt and braces.
		flags |= vbpf.CfKillFileless
	}
	var driftAfter uint64
	if p.Exec.Drift != ActionAudit || execDeny {
		driftAfter = uint64(threshold)
	}
	switch {
	case execDeny && !fanExec:
		flags |= vbpf.CfKillDrift
		g.mech["exec.drift"] = "kill: bpf_send_signal(SIGKILL) from tp_btf/sched_process_exec (fanotify exec marks unavailable)"
	case p.Exec.Drift == ActionAlert:
		g.mech["exec.drift"] = "alert: ctime check in tp_btf/sched_process_exec"
	case p.Exec.Drift == ActionAudit:
		g.mech["exec.drift"] = "audit"
	}
	g.mech["exec"] = "observe: bpf tp_btf/sched_process_exec"
	g.mech["process"] = "observe: bpf tp_btf/sched_process_fork, sched_process_exit"

	if p.Exec.Fileless == ActionDeny {
		switch {
		case t.InitPID <= 0 || o.SysctlHelper == "":
			g.mech["exec.fileless"] = "none: no init pid or sysctl helper given"
		default:
			if err := SetPidnsSysctl(t.InitPID, "vm.memfd_noexec", "2", o.SysctlHelper, o.RunHelper); err != nil {
				g.mech["exec.fileless"] = "none: " + err.Error()
			} else {
				g.mech["exec.fileless"] = "deny: vm.memfd_noexec = 2 in the container's pid namespace (memfds are created non-executable; MFD_EXEC refused)"
			}
		}
		if reason, ok := strings.CutPrefix(g.mech["exec.fileless"], "none: "); ok {
			// The BPF exec hook still kills what runs from a file with
			// no name left, before its first instruction.
			g.mech["exec.fileless"] = "kill: bpf_send_signal(SIGKILL) from tp_btf/sched_process_exec for files with no link left (vm.memfd_noexec not set: " + reason + ")"
		} else {
			g.mech["exec.fileless"] += "; and SIGKILL from tp_btf/sched_process_exec for any exec of a file with no link left"
		}
	}

	// 2. The container's map entries, under the node lock.
	owner := os.Getpid()
	ownerStart, err := selfStart()
	if err != nil {
		return nil, fmt.Errorf("attach: read own start time: %w", err)
	}
	if err := joinLinks(); err != nil {
		return nil, err
	}
	set := g.set
	err = withLock(o.LockPath, func() error {
		// The set was chosen when the guard was prepared: it must still be
		// the node's pinned set. Maps of a set unloaded since (by hand, or
		// by a vordr of another version) would take the entry while no
		// exec, fork or exit program reads them.
		if !samePinnedMap(filepath.Join(set.dir, "map_"+vbpf.MapContainers), set.maps[vbpf.MapContainers]) {
			return fmt.Errorf("the program set %s was unloaded after this guard was prepared; create the container again", set.dir)
		}
		var existing vbpf.Container
		if set.maps[vbpf.MapContainers].Lookup(g.cgid, &existing) == nil {
			if ownerAlive(int(existing.OwnerPid), existing.OwnerStart) {
				return fmt.Errorf("cgroup %d (guard owned by pid %d): %w", g.cgid, existing.OwnerPid, ErrAlreadyGuarded)
			}
			// Left by a shim that died (since Prepare collected): its
			// flags and ring must not stay in force for this container.
			set.removeEntry(g.cgid)
		}
		for _, k := range allowKeys(g.cgid, p.allow) {
			if err := set.maps[vbpf.MapAllow].Update(k, uint8(1), ebpf.UpdateAny); err != nil {
				set.removeEntry(g.cgid)
				return fmt.Errorf("insert network allow-list (at most %d rules per node): %w", set.maps[vbpf.MapAllow].MaxEntries(), err)
			}
		}
		if flags&vbpf.CfSyscount != 0 {
			zeros := make([]uint64, ebpf.MustPossibleCPU())
			if err := set.maps[vbpf.MapSyscounts].Update(g.cgid, zeros, ebpf.UpdateAny); err != nil {
				set.removeEntry(g.cgid)
				return fmt.Errorf("insert syscall counter: %w", err)
			}
		}
		c := vbpf.Container{DriftAfterNs: driftAfter, Flags: flags, OwnerPid: uint32(owner), OwnerStart: ownerStart, RingSlot: g.slot}
		if err := set.maps[vbpf.MapContainers].Update(g.cgid, c, ebpf.UpdateNoExist); err != nil {
			set.removeEntry(g.cgid)
			return fmt.Errorf("insert container (at most %d per node): %w", set.maps[vbpf.MapContainers].MaxEntries(), err)
		}
		g.inserted = true
		if err := set.reconcileSyscount(); err != nil {
			set.removeEntry(g.cgid)
			return err
		}
		return nil
	})
	if err != nil {
		// teardown (deferred) unloads the set if this was its only user.
		return nil, fmt.Errorf("attach %s: %w", t.ContainerID, err)
	}

	if p.Network.Connect == ActionDeny {
		g.mech["network.connect"] = fmt.Sprintf("deny unless allow-listed (%d rules): bpf cgroup/connect4, connect6, sendmsg4, sendmsg6 on the container cgroup", len(p.allow))
	} else {
		g.mech["network.connect"] = "observe: bpf cgroup/connect4, connect6, bind4, bind6 on the container cgroup"
	}
	shaped := p.Seccomp.Mode == "default-plus" || p.Seccomp.Mode == "recompute"
	switch {
	case shaped && o.Seccomp != nil:
		g.mech["syscalls"] = fmt.Sprintf("deny %d syscalls (module, bpf, ptrace, …): seccomp SCMP_ACT_NOTIFY answered EPERM by the vordr agent, each attempt reported", len(p.Seccomp.Deny))
	case shaped:
		g.mech["syscalls"] = fmt.Sprintf("deny %d syscalls (module, bpf, ptrace, …): seccomp in the OCI spec, EPERM; attempts are not reported (no seccomp agent)", len(p.Seccomp.Deny))
	default:
		g.mech["syscalls"] = "seccomp as given in the spec"
	}
	if p.Anomaly.SyscallCounting {
		g.mech["syscall_counting"] = "on: bpf raw_tp/sys_enter (opt-in; slows every syscall on the host while on)"
	}
	g.mech["lsm"] = "BPF-LSM not used (refused by this kernel class; see vordr doctor)"

	// 4. Readers (the ring's was opened by Prepare).
	g.send(Event{Time: time.Now(), Kind: KindGuard, ContainerID: t.ContainerID, CgroupID: g.cgid,
		Mechanisms: g.Mechanisms(), Message: "guard attached (profile " + p.Name + ")",
		AttachSeconds: time.Since(attachStart).Seconds()}, true)
	// The detector's first sample is the attach itself (counters zero).
	g.det.samples[0].t = time.Now()
	g.wg.Add(1)
	go g.readRing()
	g.pollWG.Add(1)
	g.polling = true
	go g.poll()
	if g.files != nil {
		g.files.start(g.fileEvent)
	}
	if o.Seccomp != nil {
		o.Seccomp.subscribe(t.ContainerID, func(e Event) { g.deliver(e, false) })
	}
	attached = true
	return g, nil
}

// cgroupPrograms are attached to each container's cgroup. They are the only
// programs a shim opens: the tracepoints' links are pinned with the set.
var cgroupPrograms = []struct {
	prog string
	at   ebpf.AttachType
}{
	{"vordr_connect4", ebpf.AttachCGroupInet4Connect},
	{"vordr_connect6", ebpf.AttachCGroupInet6Connect},
	{"vordr_sendmsg4", ebpf.AttachCGroupUDP4Sendmsg},
	{"vordr_sendmsg6", ebpf.AttachCGroupUDP6Sendmsg},
	{"vordr_bind4", ebpf.AttachCGroupInet4Bind},
	{"vordr_bind6", ebpf.AttachCGroupInet6Bind},
}

func cgroupProgramNames() []string {
	names := make([]string, len(cgroupPrograms))
	for i, a := range cgroupPrograms {
		names[i] = a.prog
	}
	return names
}

// attachCgroupPrograms attaches the network programs to the container's
// cgroup, appending each link to links as it is made.
func attachCgroupPrograms(set *nodeSet, cgroup string, links *[]link.Link) error {
	for _, a := range cgroupPrograms {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: a.at, Program: set.progs[a.prog]})
		if err != nil {
			return fmt.Errorf("attach %s to %s: %w", a.prog, cgroup, err)
		}
		*links = append(*links, l)
	}
	return nil
}

// allowKeys expands the allow rules into the kernel's exact-match keys: a
// rule without protocol is two keys, an IPv4 address also matches as an
// IPv4-mapped IPv6 destination, and "any address" exists per family.
func allowKeys(cgid uint64, rules []allowRule) []vbpf.AllowKey {
	var keys []vbpf.AllowKey
	for _, r := range rules {
		protos := []uint8{r.proto}
		if r.proto == 0 {
			protos = []uint8{6, 17}
		}
		type fa struct {
			family uint8
			addr   [16]byte
		}
		var addrs []fa
		switch {
		case !r.addr.IsValid():
			addrs = []fa{{unix.AF_INET, [16]byte{}}, {unix.AF_INET6, [16]byte{}}}
		case r.addr.Is4():
			var a4 [16]byte
			v4 := r.addr.As4()
			copy(a4[:], v4[:])
			addrs = []fa{{unix.AF_INET, a4}, {unix.AF_INET6, netip.AddrFrom16(r.addr.As16()).As16()}}
		default:
			addrs = []fa{{unix.AF_INET6, r.addr.As16()}}
		}
		for _, pr := range protos {
			for _, a := range addrs {
				keys = append(keys, vbpf.AllowKey{CgroupId: cgid, Addr: a.addr, Port: r.port, Family: a.family, Proto: pr})
			}
		}
	}
	return keys
}

// Events delivers the container's events and alerts. It is closed after
// Close, once the events still in the ring buffer were delivered. Reading
// slowly makes the kernel drop events (counted in Stats().Dropped) rather
// than slow the container down.
func (g *Guard) Events() <-chan Event { return g.events }

// Mechanisms says which mechanism guards what for this container.
func (g *Guard) Mechanisms() map[string]string {
	m := make(map[string]string, len(g.mech))
	for k, v := range g.mech {
		m[k] = v
	}
	return m
}

// CgroupID is the cgroup id the guard is keyed by.
func (g *Guard) CgroupID() uint64 { return g.cgid }

// Stats reads the container's counters.
func (g *Guard) Stats() Stats {
	c := g.counters()
	s := Stats{
		Seen: c.seen, Dropped: c.dropped, Execs: c.execs, Forks: c.forks, Exits: c.exits,
		Connects: c.connects, Denied: c.denied, Killed: c.killed, Syscalls: c.syscalls,
		Delivered: g.delivered.Load(), Lost: g.lost.Load(), Alerts: g.alerts.Load(),
	}
	if g.files != nil {
		s.FileEvents = g.files.events.Load()
	}
	return s
}

type fullCounters struct {
	counters
	seen, connects, denied, killed uint64
}

func (g *Guard) counters() fullCounters {
	c, _ := g.liveCounters()
	return c
}

// liveCounters reads the counters; false when the entry is not (or no
// longer) in the map.
func (g *Guard) liveCounters() (fullCounters, bool) {
	var c vbpf.Container
	var out fullCounters
	if g.set == nil || g.set.maps[vbpf.MapContainers].Lookup(g.cgid, &c) != nil {
		return out, false
	}
	out.execs, out.forks, out.exits, out.dropped = c.Execs, c.Forks, c.Exits, c.Dropped
	out.seen, out.connects, out.denied, out.killed = c.Seen, c.Connects, c.Denied, c.Killed
	if c.Flags&vbpf.CfSyscount != 0 {
		var per []uint64
		if g.set.maps[vbpf.MapSyscounts].Lookup(g.cgid, &per) == nil {
			for _, n := range per {
				out.syscalls += n
			}
		}
	}
	return out, true
}

// send hands an event to the consumer. Blocking sends apply back-pressure
// to the ring-buffer reader (the kernel then counts drops); permission
// decisions never block on the consumer.
func (g *Guard) send(e Event, block bool) {
	g.sendMu.RLock()
	defer g.sendMu.RUnlock()
	if g.closed {
		g.lost.Add(1)
		return
	}
	select {
	case g.events <- e:
		g.delivered.Add(1)
		return
	default:
	}
	if !block {
		g.lost.Add(1)
		return
	}
	select {
	case g.events <- e:
		g.delivered.Add(1)
	case <-g.closing:
		g.lost.Add(1)
	}
}

// observe gives an event that will be delivered aggregated to the detector
// (it judges every single one), and sends its alerts.
func (g *Guard) observe(e *Event) {
	e.ContainerID = g.t.ContainerID
	e.CgroupID = g.cgid
	select {
	case g.activity <- struct{}{}: // wake an idle poller
	default:
	}
	g.detMu.Lock()
	alerts := g.det.onEvent(e)
	g.detMu.Unlock()
	g.sendAlerts(e.Time, alerts, true)
	g.afterEvent(e)
}

func (g *Guard) deliver(e Event, block bool) {
	e.ContainerID = g.t.ContainerID
	e.CgroupID = g.cgid
	select {
	case g.activity <- struct{}{}: // wake an idle poller
	default:
	}
	if e.Kind == KindExec && (e.Drift || e.Fileless) && e.Digest == "" && e.Verdict == Allowed && e.PID > 0 {
		// An exec the profile lets run but reports (balanced): say what
		// ran, by content, while the process is there to be read.
		if d, err := g.exeDigest(e.PID, e.Path, e.Inode, e.FileCtime.UnixNano()); err == nil {
			e.Digest = d
			e.Appraisal = "not in the image: created or changed after the container started"
			if e.Fileless {
				e.Appraisal = "fileless: the file has no name"
			}
		}
	}
	g.detMu.Lock()
	alerts := g.det.onEvent(&e)
	g.detMu.Unlock()
	g.send(e, block)
	g.sendAlerts(e.Time, alerts, block)
	g.afterEvent(&e)
}

func (g *Guard) afterEvent(e *Event) {
	if e.Kind == KindExit && g.t.InitPID > 0 && e.PID == g.t.InitPID {
		// The container is over: judge the counters now, so a burst
		// shorter than one poll interval just before the exit is seen.
		g.evaluate(time.Now())
	}
}

// exeDigest hashes the executable of a running process, if it is still the
// file the event names (same inode). Bounded: reports never hash more than
// 256 MiB.
func (g *Guard) exeDigest(pid int, path string, ino uint64, ctime int64) (string, error) {
	k := [2]uint64{ino, uint64(ctime)}
	if d, ok := g.digests[k]; ok && ino != 0 {
		return d, nil // a drift storm of one file hashes it once
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil && g.t.InitPID > 0 && path != "" {
		// The process is gone; the file may still be there.
		f, err = os.Open(fmt.Sprintf("/proc/%d/root%s", g.t.InitPID, path))
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	if ino != 0 && st.Ino != ino {
		return "", errors.New("the process runs another file now")
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, 256<<20)); err != nil {
		return "", err
	}
	d := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if len(g.digests) > 1024 {
		clear(g.digests)
	}
	g.digests[k] = d
	return d, nil
}

// evaluate runs the detector's rate rules on the current counters.
func (g *Guard) evaluate(now time.Time) {
	c, ok := g.liveCounters()
	if !ok {
		return // entry gone: nothing to judge, and zeros must not look like a wrap
	}
	g.detMu.Lock()
	alerts := g.det.onTick(now, c.counters)
	g.detMu.Unlock()
	g.sendAlerts(now, alerts, true)
}

func (g *Guard) sendAlerts(t time.Time, alerts []Alert, block bool) {
	for i := range alerts {
		g.alerts.Add(1)
		g.send(Event{Time: t, Kind: KindAlert, ContainerID: g.t.ContainerID, CgroupID: g.cgid, Alert: &alerts[i]}, block)
	}
}

func (g *Guard) fileEvent(e Event, perm bool) {
	g.deliver(e, !perm)
}

var shortEvent = int(unsafe.Offsetof(vbpf.Event{}.Filename))

func (g *Guard) readRing() {
	defer g.wg.Done()
	var rec ringbuf.Record
	agg := newAggregator()
	for {
		if err := g.rd.ReadInto(&rec); err != nil {
			agg.flush(g)
			if errors.Is(err, ringbuf.ErrFlushed) {
				select {
				case <-g.closing:
					return // Close flushed what was left
				default:
					continue
				}
			}
			return
		}
		var raw vbpf.Event
		if len(rec.RawSample) < shortEvent {
			continue
		}
		// The record is the C struct verbatim (same host layout, bpfel);
		// short records end before the file name.
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&raw)), unsafe.Sizeof(raw)), rec.RawSample)
		if raw.CgroupId != g.cgid {
			// A pooled ring's earlier owner (a killed shim leaves its
			// unread events, and a program that looked its entry up just
			// before the removal may still write one): not ours.
			continue
		}
		e := g.decode(&raw)
		if key, ok := aggregateKey(&e); ok {
			g.observe(&e)
			agg.add(key, &e)
		} else {
			agg.flush(g) // keep the ring's order
			g.deliver(e, true)
		}
		if rec.Remaining == 0 || agg.full() {
			// The batch the kernel had is read: hand it on.
			agg.flush(g)
		}
	}
}

// Per network event type, without a map or a string built per event: a
// connect storm decodes tens of thousands a second.
var (
	netKinds      = map[uint32]Kind{vbpf.EvConnect: KindConnect, vbpf.EvBind: KindBind, vbpf.EvSendmsg: KindSend}
	netMechanisms = map[uint32][2]string{
		vbpf.EvConnect: {"bpf:cgroup/connect4", "bpf:cgroup/connect6"},
		vbpf.EvBind:    {"bpf:cgroup/bind4", "bpf:cgroup/bind6"},
		vbpf.EvSendmsg: {"bpf:cgroup/sendmsg4", "bpf:cgroup/sendmsg6"},
	}
)

// aggKey is what makes two audit-level events identical (aggregateKey): a
// comparable value, so keying a connect allocates nothing.
type aggKey struct {
	kind Kind
	s    string // exec: path and arguments; exit: comm; network: protocol
	n    int    // exit status
	addr netip.Addr
	port uint16
}

// aggregator collects the audit-level events of one batch read from the
// ring, identical ones counted into one (Event.Count).
type aggregator struct {
	order []aggKey
	byKey map[aggKey]*Event
}

func newAggregator() *aggregator { return &aggregator{byKey: map[aggKey]*Event{}} }

// add counts e into its key's event; only the first of a key is copied.
func (a *aggregator) add(key aggKey, e *Event) {
	if prev := a.byKey[key]; prev != nil {
		prev.Count++
		prev.Last = e.Time
		return
	}
	c := *e
	c.Count = 1
	a.byKey[key] = &c
	a.order = append(a.order, key)
}

// full bounds what a batch holds, so a storm of distinct events is passed
// on in pieces.
func (a *aggregator) full() bool { return len(a.order) >= 256 }

func (a *aggregator) flush(g *Guard) {
	for _, k := range a.order {
		e := a.byKey[k]
		if e.Count == 1 {
			e.Count = 0 // a single event looks like one
		}
		g.send(*e, true)
	}
	a.order = a.order[:0]
	clear(a.byKey)
}

// aggregateKey says whether e is an audit-level event that may be counted
// into an identical one, and by what it is identical: the program and its
// arguments for an exec, the program and status for an exit, the
// destination for a connect. Anything denied, killed or flagged stays an
// event of its own.
func aggregateKey(e *Event) (aggKey, bool) {
	if e.Verdict != Allowed || e.Drift || e.Fileless || e.SetID || e.Digest != "" || e.Alert != nil {
		return aggKey{}, false
	}
	switch e.Kind {
	case KindExec:
		return aggKey{kind: e.Kind, s: e.Path + "\x00" + strings.Join(e.Args, "\x00")}, true
	case KindExit:
		return aggKey{kind: e.Kind, s: e.Comm, n: e.ExitStatus}, true
	case KindConnect, KindBind, KindSend:
		return aggKey{kind: e.Kind, s: e.Protocol, addr: e.Addr, port: e.Port}, true
	}
	return aggKey{}, false
}

// idleAfter and idleInterval make the counter poller sleep while the
// container is quiet: after idleAfter polls without any change it polls
// every idleInterval. The first event after a quiet quarter second wakes
// the ring reader (submit in vordr.c), which brings the poller back at
// once; the idle tick is a safety net for activity that writes no event
// (processes forked that neither exec nor exit). Each tick of a Go program
// costs a burst of ~25 context switches (the runtime's sysmon), so an idle
// shim ticks twice a minute.
const (
	idleAfter    = 8
	idleInterval = 30 * time.Second
)

func (g *Guard) poll() {
	defer g.pollWG.Done()
	t := time.NewTicker(g.o.PollInterval)
	defer t.Stop()
	var last counters
	var lastSeen uint64
	quiet := 0
	for {
		select {
		case <-g.stopPoll:
			return
		case <-g.activity:
			if quiet >= idleAfter {
				t.Reset(g.o.PollInterval)
			}
			quiet = 0
		case now := <-t.C:
			c, ok := g.liveCounters()
			if ok && c.seen != lastSeen {
				// Audit-level events do not wake the reader (see
				// submit in vordr.c): have it read what came.
				lastSeen = c.seen
				g.rd.Flush()
			}
			if ok && c.counters == last {
				if quiet++; quiet == idleAfter {
					t.Reset(idleInterval)
				}
			} else if quiet >= idleAfter {
				t.Reset(g.o.PollInterval)
				quiet = 0
			}
			last = c.counters
			g.evaluate(now)
		}
	}
}

// Close detaches the guard and removes every trace of it: cgroup links,
// fanotify marks, map entries; the last guard on the node unloads the
// pinned program set. The Events channel is closed after the events still
// buffered were delivered. Safe to call more than once.
func (g *Guard) Close() error {
	g.closeOnce.Do(func() { g.closeErr = g.teardown() })
	return g.closeErr
}

func (g *Guard) teardown() error {
	var errs []error
	if g.o.Seccomp != nil {
		g.o.Seccomp.unsubscribe(g.t.ContainerID)
	}
	if g.polling {
		// Stop the poller and judge the final counters while the entry
		// still exists (a burst just before exit is alerted; a removed
		// entry is never read as zeros).
		close(g.stopPoll)
		g.pollWG.Wait()
		g.evaluate(time.Now())
	}
	for _, l := range g.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach cgroup program: %w", err))
		}
	}
	g.links = nil
	if g.files != nil {
		g.files.close()
	}
	if g.set != nil {
		err := withLock(g.o.LockPath, func() error {
			var c vbpf.Container
			if g.inserted && g.set.maps[vbpf.MapContainers].Lookup(g.cgid, &c) == nil && c.OwnerPid == uint32(os.Getpid()) {
				g.set.removeEntry(g.cgid)
			}
			g.set.gcEntries()
			if err := g.set.reconcileSyscount(); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	close(g.closing)
	if g.rd != nil {
		// Flush wakes the reader with what is left; then stop it.
		g.rd.Flush()
		g.wg.Wait()
		g.rd.Close()
	} else {
		g.wg.Wait()
	}
	if g.ring != nil {
		g.ring.Close()
	}
	if g.set != nil {
		// Only now, with the reader gone, may another container take the
		// slot: two readers of one ring would steal each other's events.
		// A claimed ring counts as use, so the set is idle only after.
		err := withLock(g.o.LockPath, func() error {
			if g.ring != nil {
				if err := g.set.releaseRing(g.slot, uint32(os.Getpid())); err != nil {
					return err
				}
			}
			if !g.o.UnloadWhenIdle {
				return nil
			}
			return g.set.unloadIfIdle()
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if g.set != nil {
		releaseSet(g.set)
	}
	g.sendMu.Lock()
	g.closed = true
	close(g.events)
	g.sendMu.Unlock()
	return errors.Join(errs...)
}

func (g *Guard) decode(r *vbpf.Event) Event {
	e := Event{
		Time: time.Unix(0, int64(r.KtimeNs)+g.monoOff),
		PID:  int(r.Pid), TID: int(r.Tid), PPID: int(r.Ppid),
		UID: r.Uid, EUID: r.Euid, GID: r.Gid, EGID: r.Egid,
		Comm:    cstr(r.Comm[:]),
		Verdict: Allowed,
	}
	if r.Flags&vbpf.EvfDenied != 0 {
		e.Verdict = Denied
	}
	if r.Flags&vbpf.EvfKilled != 0 {
		e.Verdict = Killed
	}
	switch r.Type {
	case vbpf.EvExec:
		e.Kind = KindExec
		e.Mechanism = "bpf:tp_btf/sched_process_exec"
		if e.Verdict == Killed {
			e.Mechanism = "bpf:bpf_send_signal(SIGKILL)"
		}
		e.Path = cstr(r.Filename[:])
		e.Drift = r.Flags&vbpf.EvfDrift != 0
		e.Fileless = r.Flags&vbpf.EvfFileless != 0
		e.SetID = r.Flags&vbpf.EvfSetID != 0
		e.CapEffective = r.CapEffective
		e.FileCtime = time.Unix(0, int64(r.CtimeNs))
		e.Inode = r.Ino
		e.ArgsTruncated = r.Flags&vbpf.EvfTrunc != 0
		if n := int(r.ArgsLen); n > 0 && n <= len(r.Args) {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(r.Args[i])
			}
			b = bytes.TrimRight(b, "\x00")
			e.Args = strings.Split(string(b), "\x00")
		}
	case vbpf.EvExit:
		e.Kind = KindExit
		e.ExitStatus = int(r.Code)
		e.Mechanism = "bpf:tp_btf/sched_process_exit"
	case vbpf.EvConnect, vbpf.EvBind, vbpf.EvSendmsg:
		e.Kind = netKinds[r.Type]
		e.Port = r.Port
		switch r.Family {
		case unix.AF_INET:
			e.Addr = netip.AddrFrom4([4]byte(r.Addr[:4]))
		case unix.AF_INET6:
			e.Addr = netip.AddrFrom16(r.Addr)
		}
		switch r.Proto {
		case 6:
			e.Protocol = "tcp"
		case 17:
			e.Protocol = "udp"
		default:
			e.Protocol = fmt.Sprint(r.Proto)
		}
		family := 0
		if r.Family == unix.AF_INET6 {
			family = 1
		}
		e.Mechanism = netMechanisms[r.Type][family]
	}
	return e
}

func cstr(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

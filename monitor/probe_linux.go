//go:build linux

package monitor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"

	vbpf "github.com/vordr-project/vordr/bpf"
)

// Probe tries every mechanism vordr may use and reports what works and which
// mechanism would guard what. It loads programs but attaches nothing and
// pins nothing, so it is safe to run on a busy node (vordr doctor).
func Probe() Capabilities {
	var c Capabilities
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		c.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	c.Root = os.Geteuid() == 0
	add := func(name string, err error, okDetail string) bool {
		ch := Check{Name: name, OK: err == nil, Detail: okDetail}
		if err != nil {
			ch.Detail = err.Error()
		}
		c.Checks = append(c.Checks, ch)
		return err == nil
	}

	_, err := os.Stat("/sys/kernel/btf/vmlinux")
	add("btf", err, "/sys/kernel/btf/vmlinux")

	var sfs unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &sfs); err == nil && uint32(sfs.Type) == bpffsMagic {
		add("bpffs", nil, "mounted at /sys/fs/bpf")
	} else {
		add("bpffs", nil, "not mounted; the first guard mounts it at /sys/fs/bpf")
	}

	setErr := func() error {
		spec, err := loadSpec()
		if err != nil {
			return err
		}
		coll, err := ebpf.NewCollection(spec)
		if err != nil {
			return err
		}
		coll.Close()
		return nil
	}()
	setOK := add("program-set", setErr, "tp_btf sched_process_exec/exit/fork, cgroup sock_addr, raw_tp sys_enter load")
	c.Checks = append(c.Checks, Check{Name: "node-set", OK: true, Detail: NodeSetStatus(Options{})})

	cgOK := add("cgroup-sock-addr", features.HaveProgramType(ebpf.CGroupSockAddr), "cgroup/connect4/6, sendmsg4/6, bind4/6")
	lsmErr := features.HaveProgramType(ebpf.LSM)
	add("bpf-lsm", lsmErr, "loads (not used by this version of vordr)")
	add("fentry", features.HaveProgramType(ebpf.Tracing), "trampolines load")
	add("kprobe", kprobeAvailable(), "kprobes available")
	add("send-signal", features.HaveProgramHelper(ebpf.TracePoint, asm.FnSendSignal), "bpf_send_signal")

	fanErr := func() error {
		fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC, unix.O_RDONLY)
		if err != nil {
			return fmt.Errorf("fanotify_init(FAN_CLASS_CONTENT): %w", err)
		}
		unix.Close(fd)
		return nil
	}()
	fanOK := add("fanotify-perm", fanErr, "FAN_OPEN_PERM, FAN_OPEN_EXEC_PERM")

	actions, err := os.ReadFile("/proc/sys/kernel/seccomp/actions_avail")
	add("seccomp", err, "filters in the OCI spec (runc must be built with the seccomp tag)")
	notifyErr := err
	if err == nil && !strings.Contains(string(actions), "user_notif") {
		notifyErr = errors.New("the kernel lacks SECCOMP_RET_USER_NOTIF (actions_avail: " + strings.TrimSpace(string(actions)) + ")")
	}
	notifyOK := add("seccomp-notify", notifyErr, "SCMP_ACT_NOTIFY: the shim's agent answers each denied call EPERM and reports it")

	if abi, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */); e == 0 {
		add("landlock", nil, fmt.Sprintf("ABI %d (not used by this version of vordr)", abi))
	} else {
		add("landlock", e, "")
	}

	g := func(action, mech string) { c.Guards = append(c.Guards, Guarding{action, mech}) }
	if setOK {
		g("exec, exit, fork (observe)", "bpf tp_btf/sched_process_exec, sched_process_exit, sched_process_fork (node-wide, one hash lookup per exec/fork/exit for other processes)")
	} else {
		g("exec, exit, fork (observe)", "none: the program set does not load")
	}
	switch {
	case fanOK:
		g("exec of files not in the image (deny)", "fanotify FAN_OPEN_EXEC_PERM on the container's mounts (EPERM before the exec)")
	case setOK:
		g("exec of files not in the image (deny)", "bpf_send_signal(SIGKILL) from sched_process_exec (the process dies before the new image runs)")
	default:
		g("exec of files not in the image (deny)", "none")
	}
	if fanOK {
		g("sensitive files (deny/observe)", "fanotify FAN_OPEN_PERM / FAN_OPEN inode marks on the container's copies")
	} else {
		g("sensitive files (deny/observe)", "none: fanotify permission events unavailable")
	}
	if cgOK && setOK {
		g("network connect/sendmsg/bind (deny/observe)", "bpf cgroup sock_addr programs on the container's cgroup (EPERM)")
	} else {
		g("network connect/sendmsg/bind (deny/observe)", "none")
	}
	if notifyOK {
		g("kernel modules, bpf(), ptrace, mount, … (deny)", "seccomp in the OCI spec: SCMP_ACT_NOTIFY answered EPERM by the shim's agent, each attempt reported (forbidden-syscall)")
	} else {
		g("kernel modules, bpf(), ptrace, mount, … (deny)", "seccomp in the OCI spec (EPERM); attempts are not reported (no user notification on this kernel)")
	}
	if lsmErr != nil {
		g("BPF-LSM", "not used: "+shortErr(lsmErr))
	} else {
		g("BPF-LSM", "loads here but this version of vordr does not use it yet")
	}
	g("syscall counting (opt-in)", "bpf raw_tp/sys_enter while an opted-in container runs; slows every syscall on the host")
	return c
}

func kprobeAvailable() error {
	if _, err := os.Stat("/sys/kernel/tracing/kprobe_events"); err == nil {
		return nil
	}
	if _, err := os.Stat("/sys/kernel/debug/tracing/kprobe_events"); err == nil {
		return nil
	}
	return errors.New("no kprobe_events in tracefs (CONFIG_KPROBES off, or tracefs not mounted)")
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 60 {
		return s[i+2:]
	}
	return s
}

// NodeSetStatus says whether the node's program set is pinned, how many
// containers it guards and how many ring buffers its pool holds. An idle set
// stays pinned by design (docs/monitoring.md): loading it again costs the
// next container's start the verifier's time.
func NodeSetStatus(o Options) string {
	o.defaults()
	dir := filepath.Join(o.PinDir, vbpf.Version())
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err != nil {
		return "not loaded (the first guarded container loads and pins it)"
	}
	counters, rings, err := NodeCounters(o)
	if err != nil {
		return "pinned at " + dir + ", but unreadable: " + err.Error()
	}
	var guarded, stale int
	for _, c := range counters {
		if c.OwnerAlive {
			guarded++
		} else {
			stale++
		}
	}
	s := fmt.Sprintf("pinned at %s: %d guarded containers, %d ring buffers (%d KiB) in the pool", dir, guarded, rings, rings*vbpf.RingSize/1024)
	if stale > 0 {
		s += fmt.Sprintf(", %d entries of dead shims (collected at the next attach)", stale)
	}
	if guarded == 0 {
		s += "; idle, and kept loaded so the next container does not pay the verifier (remove it with `rm -r " + dir + "` when no vordr container runs)"
	}
	return s
}

// ContainerCounters are the kernel counters of one guarded container, as
// its entry in the node's containers map holds them.
type ContainerCounters struct {
	CgroupID                           uint64
	OwnerPid                           uint32
	OwnerAlive                         bool
	Seen, Dropped, Execs, Forks, Exits uint64
	Connects, Denied, Killed           uint64
}

// NodeCounters reads every guarded container's counters and the size of the
// ring pool from the pinned set, without loading anything (nil and 0 when
// no set is pinned). A metrics exporter calls it; the shims are not asked.
func NodeCounters(o Options) ([]ContainerCounters, int, error) {
	o.defaults()
	dir := filepath.Join(o.PinDir, vbpf.Version())
	if _, err := os.Stat(filepath.Join(dir, completeMarker)); err != nil {
		return nil, 0, nil
	}
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_"+vbpf.MapContainers), &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("open pinned containers map: %w", err)
	}
	defer m.Close()
	var (
		out []ContainerCounters
		k   uint64
		v   vbpf.Container
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		out = append(out, ContainerCounters{
			CgroupID: k, OwnerPid: v.OwnerPid, OwnerAlive: ownerAlive(int(v.OwnerPid), v.OwnerStart),
			Seen: v.Seen, Dropped: v.Dropped, Execs: v.Execs, Forks: v.Forks, Exits: v.Exits,
			Connects: v.Connects, Denied: v.Denied, Killed: v.Killed,
		})
	}
	if err := it.Err(); err != nil {
		return out, 0, err
	}
	rings := 0
	if om, err := ebpf.LoadPinnedMap(filepath.Join(dir, "map_"+vbpf.MapRingOwners), &ebpf.LoadPinOptions{ReadOnly: true}); err == nil {
		for slot := uint32(0); slot < om.MaxEntries(); slot++ {
			var ow vbpf.RingOwner
			if om.Lookup(slot, &ow) != nil || ow.RingSize == 0 {
				break // filled slots are a prefix
			}
			rings++
		}
		om.Close()
	}
	return out, rings, nil
}

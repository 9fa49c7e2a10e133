//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// vordr's node-wide eBPF program set. One copy is loaded per node and pinned
// under /sys/fs/bpf/vordr/<version>/; every monitored container is an entry in
// the `containers` map keyed by its cgroup v2 id, with its own ring buffer in
// the `rings` map-of-maps so each shim reads only its own containers' events.
// Rings are a pool: a container takes a free slot (ring_owners) and keeps its
// index in its containers entry, so attach and detach do not update the
// map-of-maps (each update waits for an RCU grace period, milliseconds).
//
// Cost rule (docs/monitoring.md): nothing here hooks a syscall by default. The
// sched tracepoints fire on exec/fork/exit only, and a process outside every
// monitored cgroup pays one hash lookup there. The cgroup sock_addr programs
// are attached to each container's own cgroup, so other processes pay nothing.
// The raw sys_enter counter is opt-in (it slows every syscall on the host) and
// is attached only while some container asked for it.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define AF_INET 2
#define AF_INET6 10
#define SIGKILL 9

// Nested cgroups inside a container (systemd, docker-in-docker) are found by
// walking at most this many ancestors; deeper nesting is attributed to nobody.
#define MAX_NEST 8

// Size of each container's ring buffer (bpf/types.go RingSize).
#define VORDR_RING_BYTES (256 * 1024)

// Event types. Keep in sync with bpf/types.go.
enum vordr_event_type {
	VORDR_EV_EXEC = 1,
	VORDR_EV_EXIT = 2,
	VORDR_EV_CONNECT = 3,
	VORDR_EV_BIND = 4,
	VORDR_EV_SENDMSG = 5,
};

// Per-event flags.
enum vordr_event_flag {
	VORDR_EVF_DENIED = 1 << 0,  // the kernel refused the operation (EPERM)
	VORDR_EVF_KILLED = 1 << 1,  // the task was sent SIGKILL before it ran
	VORDR_EVF_DRIFT = 1 << 2,   // executed file changed after the guard attached
	VORDR_EVF_SETID = 1 << 3,   // euid != uid or egid != gid after exec
	VORDR_EVF_TRUNC = 1 << 4,   // arguments were truncated
	VORDR_EVF_FILELESS = 1 << 5, // executed file has no name left (memfd, O_TMPFILE, deleted)
};

// Per-container policy flags, set by the guard at attach time.
enum vordr_container_flag {
	VORDR_CF_DENY_CONNECT = 1 << 0, // deny connect/sendmsg not in allow
	VORDR_CF_KILL_DRIFT = 1 << 1,   // SIGKILL exec of drifted files (fallback)
	VORDR_CF_SYSCOUNT = 1 << 2,     // count syscalls (opt-in)
	VORDR_CF_DENY_BIND = 1 << 3,    // deny bind() (not used by built-ins)
	VORDR_CF_KILL_FILELESS = 1 << 4, // SIGKILL exec of files with no name (memfd, O_TMPFILE)
};

// Value of the containers map: policy written once at attach, counters updated
// atomically by the programs and read by the guard.
struct vordr_container {
	__u64 drift_after_ns; // realtime ns; exec of a file with ctime >= this is drift (0: off)
	__u64 owner_start;    // start time (clock ticks) of the owning shim, for garbage collection
	__u32 flags;
	__u32 owner_pid;
	__u64 seen;     // events written to the ring buffer
	__u64 dropped;  // events lost because the ring buffer was full
	__u64 execs;
	__u64 forks;    // processes (not threads) created
	__u64 exits;    // processes (thread-group leaders) exited
	__u64 connects; // connect/sendmsg/bind decisions taken
	__u64 denied;
	__u64 killed;
	__u32 ring_slot; // index into rings (the slot this container owns)
	__u32 pad2;
	__u64 last_wake_ns; // when an event last woke the shim (see submit)
};

// Value of ring_owners: who holds a ring slot. Written and read only by
// userspace, under the node lock; a slot whose owner is 0 or dead is free.
struct vordr_ring_owner {
	__u64 owner_start;
	__u32 owner_pid;
	__u32 ring_size;
};

struct vordr_event {
	__u64 ktime_ns;  // CLOCK_MONOTONIC
	__u64 cgroup_id;
	__u64 cap_effective;
	__u64 ino;
	__u64 ctime_ns;
	__u32 type;
	__u32 flags;
	__u32 pid;  // thread group id (what userspace calls a pid)
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 euid;
	__u32 gid;
	__u32 egid;
	__s32 code; // exit status (wait(2) encoding) for exits
	__u16 family;
	__u16 port; // host byte order
	__u8 proto;
	__u8 pad[3];
	__u32 args_len;
	__u8 addr[16];
	char comm[16];
	char filename[256];
	char args[256];
};

// Allow-list key for network rules. Wildcards are encoded as zero address
// (any address) or zero port (any port); the program tries the exact key and
// the two wildcard forms.
struct vordr_allow_key {
	__u64 cgroup_id;
	__u8 addr[16];
	__u16 port;
	__u8 family;
	__u8 proto;
	__u32 pad;
};

// Kept in the object so bpf2go -type can generate the Go twins.
const struct vordr_event *unused_event __attribute__((unused));
const struct vordr_allow_key *unused_allow_key __attribute__((unused));
const struct vordr_ring_owner *unused_ring_owner __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct vordr_container);
} containers SEC(".maps");

struct ring_inner {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, VORDR_RING_BYTES);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__array(values, struct ring_inner);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct vordr_ring_owner);
} ring_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct vordr_allow_key);
	__type(value, __u8);
} allow SEC(".maps");

// Opt-in syscall counters, per CPU so a busy container does not bounce one
// cache line between CPUs on every syscall.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u64);
} syscounts SEC(".maps");

// lookup_container finds the monitored container the current task belongs
// to: its own cgroup first (one lookup, the common and the host case), then
// its ancestors when the task sits in a nested cgroup below a container.
static __always_inline struct vordr_container *lookup_container(__u64 *cgid)
{
	__u64 id = bpf_get_current_cgroup_id();
	struct vordr_container *c = bpf_map_lookup_elem(&containers, &id);
	if (c) {
		*cgid = id;
		return c;
	}
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	int level = BPF_CORE_READ(t, cgroups, dfl_cgrp, level);
	// Host processes sit at level 0 or 1: stop here, they paid one lookup.
	if (level <= 1)
		return NULL;
#pragma unroll
	for (int i = 1; i <= MAX_NEST; i++) {
		int l = level - i;
		if (l < 1)
			break;
		id = bpf_get_current_ancestor_cgroup_id(l);
		c = bpf_map_lookup_elem(&containers, &id);
		if (c) {
			*cgid = id;
			return c;
		}
	}
	return NULL;
}

// Exit and network events carry no file name or arguments: they are written
// short (the fixed header only), so the ring holds ~5x more of them.
#define VORDR_EVENT_SHORT __builtin_offsetof(struct vordr_event, filename)

// Wake the shim only for what it must act on now (a denial, a kill, drift,
// set-id, fileless execution), when the ring is a quarter full, or for the
// first event after a quiet quarter second. Anything else is read in
// batches: the shim drains the ring while the container's counters move. A
// wakeup per exec or connect costs an IPI and two thread switches in the
// shim, more than the exec's own bookkeeping; and an idle container's shim
// needs no timer to notice that its container woke up.
#define VORDR_WAKE_GAP_NS (250ULL * 1000 * 1000)
#define VORDR_URGENT (VORDR_EVF_DENIED | VORDR_EVF_KILLED | VORDR_EVF_DRIFT | VORDR_EVF_SETID | VORDR_EVF_FILELESS)

static __always_inline void submit(struct vordr_container *c, void *rb, struct vordr_event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 now = e->ktime_ns;
	if ((e->flags & VORDR_URGENT) || now - c->last_wake_ns > VORDR_WAKE_GAP_NS ||
	    bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA) > VORDR_RING_BYTES / 4) {
		flags = BPF_RB_FORCE_WAKEUP;
		c->last_wake_ns = now; // racy between CPUs: at worst one wakeup more
	}
	bpf_ringbuf_submit(e, flags);
}

// reserve returns an event in the container's ring, and the ring in *rbp
// for submit (one lookup per event).
static __always_inline struct vordr_event *reserve(struct vordr_container *c, __u64 cgid, __u32 type, const __u64 size, void **rbp)
{
	void *rb = bpf_map_lookup_elem(&rings, &c->ring_slot);
	*rbp = rb;
	if (!rb) {
		__sync_fetch_and_add(&c->dropped, 1);
		return NULL;
	}
	struct vordr_event *e = bpf_ringbuf_reserve(rb, size, 0);
	if (!e) {
		__sync_fetch_and_add(&c->dropped, 1);
		return NULL;
	}
	__sync_fetch_and_add(&c->seen, 1);
	// Ring buffer memory is not zeroed: never leak a previous event's bytes.
	if (size == sizeof(*e))
		__builtin_memset(e, 0, sizeof(*e));
	else
		__builtin_memset(e, 0, VORDR_EVENT_SHORT);
	e->type = type;
	e->cgroup_id = cgid;
	e->ktime_ns = bpf_ktime_get_ns();
	__u64 pt = bpf_get_current_pid_tgid();
	e->pid = pt >> 32;
	e->tid = (__u32)pt;
	__u64 ug = bpf_get_current_uid_gid();
	e->uid = (__u32)ug;
	e->gid = ug >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	return e;
}

// inode ctime moved from i_ctime (timespec64) to __i_ctime (6.6) to
// i_ctime_sec/i_ctime_nsec (6.11); CO-RE picks whichever this kernel has.
struct inode___v66 {
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

struct inode___old {
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

static __always_inline __u64 inode_ctime_ns(struct inode *ino)
{
	__s64 sec = 0;
	__s64 nsec = 0;
	if (bpf_core_field_exists(ino->i_ctime_sec)) {
		sec = BPF_CORE_READ(ino, i_ctime_sec);
		// Multigrain timestamps keep a "queried" flag in bit 31 of
		// i_ctime_nsec; nanoseconds never need more than 30 bits.
		nsec = BPF_CORE_READ(ino, i_ctime_nsec) & ((1U << 30) - 1);
	} else if (bpf_core_field_exists(((struct inode___v66 *)ino)->__i_ctime)) {
		struct inode___v66 *i = (void *)ino;
		sec = BPF_CORE_READ(i, __i_ctime.tv_sec);
		nsec = BPF_CORE_READ(i, __i_ctime.tv_nsec);
	} else {
		struct inode___old *i = (void *)ino;
		sec = BPF_CORE_READ(i, i_ctime.tv_sec);
		nsec = BPF_CORE_READ(i, i_ctime.tv_nsec);
	}
	return (__u64)sec * 1000000000ULL + (__u64)nsec;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(vordr_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 cgid = 0;
	struct vordr_container *c = lookup_container(&cgid);
	if (!c)
		return 0;
	__sync_fetch_and_add(&c->execs, 1);

	struct inode *ino = BPF_CORE_READ(bprm, file, f_inode);
	__u64 ctime = inode_ctime_ns(ino);
	__u32 flags = 0;
	// A file with no link left was never part of any image: a memfd, an
	// O_TMPFILE, or a file deleted after it was opened. Independent of
	// fanotify, which never sees these (their filesystems carry no marks).
	if (BPF_CORE_READ(ino, i_nlink) == 0) {
		flags |= VORDR_EVF_FILELESS;
		if (c->flags & VORDR_CF_KILL_FILELESS) {
			bpf_send_signal(SIGKILL);
			flags |= VORDR_EVF_KILLED;
			__sync_fetch_and_add(&c->killed, 1);
		}
	}
	if (c->drift_after_ns && ctime >= c->drift_after_ns) {
		flags |= VORDR_EVF_DRIFT;
		// Last resort when no exec permission hook guards this container:
		// the new image is mapped but not one instruction of it has run.
		if (c->flags & VORDR_CF_KILL_DRIFT) {
			bpf_send_signal(SIGKILL);
			flags |= VORDR_EVF_KILLED;
			__sync_fetch_and_add(&c->killed, 1);
		}
	}

	void *rb;
	struct vordr_event *e = reserve(c, cgid, VORDR_EV_EXEC, sizeof(struct vordr_event), &rb);
	if (!e)
		return 0;
	e->ino = BPF_CORE_READ(ino, i_ino);
	e->ctime_ns = ctime;
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	const struct cred *cred = BPF_CORE_READ(p, cred);
	e->euid = BPF_CORE_READ(cred, euid.val);
	e->egid = BPF_CORE_READ(cred, egid.val);
	BPF_CORE_READ_INTO(&e->cap_effective, cred, cap_effective);
	if (e->euid != e->uid || e->egid != e->gid)
		flags |= VORDR_EVF_SETID;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));

	// argv of the new image, NUL-separated, as the kernel just wrote it.
	struct mm_struct *mm = BPF_CORE_READ(p, mm);
	unsigned long as = BPF_CORE_READ(mm, arg_start);
	unsigned long ae = BPF_CORE_READ(mm, arg_end);
	unsigned long n = ae - as;
	if (n > sizeof(e->args)) {
		n = sizeof(e->args);
		flags |= VORDR_EVF_TRUNC;
	}
	if (n > 0 && n <= sizeof(e->args) && bpf_probe_read_user(e->args, n, (void *)as) == 0)
		e->args_len = n;
	e->flags = flags;
	submit(c, rb, e);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(vordr_exit, struct task_struct *p)
{
	// Threads are not processes: only the thread-group leader's exit counts.
	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return 0;
	__u64 cgid = 0;
	struct vordr_container *c = lookup_container(&cgid);
	if (!c)
		return 0;
	__sync_fetch_and_add(&c->exits, 1);
	void *rb;
	struct vordr_event *e = reserve(c, cgid, VORDR_EV_EXIT, VORDR_EVENT_SHORT, &rb);
	if (!e)
		return 0;
	e->code = BPF_CORE_READ(p, exit_code);
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	submit(c, rb, e);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(vordr_fork, struct task_struct *parent, struct task_struct *child)
{
	// Counted, never emitted: a fork bomb must not also flood the ring.
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	__u64 cgid = 0;
	struct vordr_container *c = lookup_container(&cgid);
	if (!c)
		return 0;
	__sync_fetch_and_add(&c->forks, 1);
	return 0;
}

// Opt-in only (see the header comment): attached while a container has
// VORDR_CF_SYSCOUNT. Host processes miss the per-CPU hash and return.
SEC("raw_tp/sys_enter")
int vordr_sys_enter(void *ctx)
{
	__u64 id = bpf_get_current_cgroup_id();
	__u64 *n = bpf_map_lookup_elem(&syscounts, &id);
	if (n)
		*n += 1;
	return 0;
}

// sock_addr_container is lookup_container for cgroup programs, which may not
// read the task struct: it walks down from the root level instead.
static __always_inline struct vordr_container *sock_addr_container(__u64 *cgid)
{
	__u64 id = bpf_get_current_cgroup_id();
	struct vordr_container *c = bpf_map_lookup_elem(&containers, &id);
	if (c) {
		*cgid = id;
		return c;
	}
#pragma unroll
	for (int l = 1; l <= MAX_NEST; l++) {
		id = bpf_get_current_ancestor_cgroup_id(l);
		if (id == 0)
			break;
		c = bpf_map_lookup_elem(&containers, &id);
		if (c) {
			*cgid = id;
			return c;
		}
	}
	return NULL;
}

static __always_inline int allowed(__u64 cgid, __u8 family, __u8 proto, __u8 *addr, __u16 port)
{
	struct vordr_allow_key k = {};
	k.cgroup_id = cgid;
	k.family = family;
	k.proto = proto;
	__builtin_memcpy(k.addr, addr, 16);
	k.port = port;
	if (bpf_map_lookup_elem(&allow, &k))
		return 1;
	k.port = 0;
	if (bpf_map_lookup_elem(&allow, &k))
		return 1;
	__builtin_memset(k.addr, 0, 16);
	k.port = port;
	if (bpf_map_lookup_elem(&allow, &k))
		return 1;
	k.port = 0;
	return bpf_map_lookup_elem(&allow, &k) != NULL;
}

static __always_inline int sock_addr(struct bpf_sock_addr *ctx, __u32 type, int v6)
{
	__u64 cgid = 0;
	struct vordr_container *c = sock_addr_container(&cgid);
	if (!c)
		return 1;
	__u8 addr[16] = {};
	__u8 family;
	if (v6) {
		family = AF_INET6;
		__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
		__builtin_memcpy(&addr[0], &a0, 4);
		__builtin_memcpy(&addr[4], &a1, 4);
		__builtin_memcpy(&addr[8], &a2, 4);
		__builtin_memcpy(&addr[12], &a3, 4);
	} else {
		family = AF_INET;
		__u32 a = ctx->user_ip4;
		__builtin_memcpy(&addr[0], &a, 4);
	}
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 proto = (__u8)ctx->protocol;

	int ok = 1;
	__u32 deny_flag = (type == VORDR_EV_BIND) ? VORDR_CF_DENY_BIND : VORDR_CF_DENY_CONNECT;
	if (c->flags & deny_flag)
		ok = allowed(cgid, family, proto, addr, port);
	__sync_fetch_and_add(&c->connects, 1);
	if (!ok)
		__sync_fetch_and_add(&c->denied, 1);

	// Unconnected UDP sends would be one event per syscall: report only the
	// denied ones. connect and bind are per connection, so always reported.
	if (type == VORDR_EV_SENDMSG && ok)
		return 1;
	void *rb;
	struct vordr_event *e = reserve(c, cgid, type, VORDR_EVENT_SHORT, &rb);
	if (e) {
		e->family = family;
		e->proto = proto;
		e->port = port;
		__builtin_memcpy(e->addr, addr, 16);
		if (!ok)
			e->flags |= VORDR_EVF_DENIED;
		submit(c, rb, e);
	}
	return ok;
}

SEC("cgroup/connect4")
int vordr_connect4(struct bpf_sock_addr *ctx) { return sock_addr(ctx, VORDR_EV_CONNECT, 0); }

SEC("cgroup/connect6")
int vordr_connect6(struct bpf_sock_addr *ctx) { return sock_addr(ctx, VORDR_EV_CONNECT, 1); }

SEC("cgroup/sendmsg4")
int vordr_sendmsg4(struct bpf_sock_addr *ctx) { return sock_addr(ctx, VORDR_EV_SENDMSG, 0); }

SEC("cgroup/sendmsg6")
int vordr_sendmsg6(struct bpf_sock_addr *ctx) { return sock_addr(ctx, VORDR_EV_SENDMSG, 1); }

SEC("cgroup/bind4")
int vordr_bind4(struct bpf_sock_addr *ctx) { return sock_addr(ctx, VORDR_EV_BIND, 0); }

SEC("cgroup/bind6")
int vordr_bind6(struct bpf_sock_addr *ctx) { return sock_addr(ctx, VORDR_EV_BIND, 1); }

package monitor

import (
	"fmt"
	"net/netip"
	"time"
)

// Kind is the type of an Event.
type Kind string

const (
	// KindGuard is the first event of every guard: which mechanism guards
	// what for this container (Event.Mechanisms), and later guard problems.
	KindGuard   Kind = "guard"
	KindExec    Kind = "exec"
	KindExit    Kind = "exit"
	KindConnect Kind = "connect"
	KindBind    Kind = "bind"
	KindSend    Kind = "sendmsg" // only denied UDP sends are reported
	KindOpen    Kind = "open"    // a sensitive file was opened (fanotify)
	KindSyscall Kind = "syscall" // a syscall the profile denies was attempted (seccomp agent)
	KindAlert   Kind = "alert"   // Event.Alert is set
)

// Verdict is what happened to the operation.
type Verdict string

const (
	// Allowed: the operation went ahead (it may still have raised an alert).
	Allowed Verdict = "allowed"
	// Denied: the kernel refused it; the process saw an error (EPERM/EACCES).
	Denied Verdict = "denied"
	// Killed: the process was sent SIGKILL before the new image ran.
	Killed Verdict = "killed"
)

// Event is one decoded observation about one container. Fields that do not
// apply to a Kind are zero. Events of one guard are delivered in the order
// they were read; exec/exit/connect events come from one per-container ring
// buffer and are in kernel order, open/exec-permission events come from
// fanotify and may interleave with them.
type Event struct {
	Time        time.Time `json:"time"`
	Kind        Kind      `json:"kind"`
	ContainerID string    `json:"container_id"`
	CgroupID    uint64    `json:"cgroup_id"`
	PID         int       `json:"pid,omitempty"`
	TID         int       `json:"tid,omitempty"`
	PPID        int       `json:"ppid,omitempty"`
	UID         uint32    `json:"uid"`
	EUID        uint32    `json:"euid"`
	GID         uint32    `json:"gid"`
	EGID        uint32    `json:"egid"`
	Comm        string    `json:"comm,omitempty"`
	// Path is the executed file (exec) or opened file (open).
	Path string   `json:"path,omitempty"`
	Args []string `json:"args,omitempty"`
	// ArgsTruncated: the kernel copied at most 256 bytes of argv.
	ArgsTruncated bool `json:"args_truncated,omitempty"`
	// Drift: the executed file was created or changed after the guard
	// attached, i.e. it is not part of the image.
	Drift bool `json:"drift,omitempty"`
	// Fileless: the executed file had no name left (memfd_create,
	// O_TMPFILE, or deleted after it was opened): it was never part of any
	// image.
	Fileless bool `json:"fileless,omitempty"`
	// SetID: after exec, effective uid/gid differ from the real ones
	// (a set-uid/set-gid binary ran).
	SetID bool `json:"setid,omitempty"`
	// FileCtime and Inode identify the executed file's state at exec: the
	// evidence behind Drift.
	FileCtime time.Time `json:"file_ctime,omitzero"`
	Inode     uint64    `json:"inode,omitempty"`
	// Digest is the sha256 of an appraised executable ("sha256:…"), and
	// Appraisal says what it was judged against (exec appraisal, strict).
	Digest       string `json:"digest,omitempty"`
	Appraisal    string `json:"appraisal,omitempty"`
	CapEffective uint64 `json:"cap_effective,omitempty"`
	// ExitStatus is the wait(2) status of an exit (code<<8 | signal).
	ExitStatus int `json:"exit_status,omitempty"`

	// Network destination (connect, sendmsg) or local address (bind).
	Addr     netip.Addr `json:"addr,omitzero"`
	Port     uint16     `json:"port,omitempty"`
	Protocol string     `json:"protocol,omitempty"`

	// Syscall names the denied syscall of a KindSyscall event.
	Syscall string `json:"syscall,omitempty"`

	// Count is how many identical audit-level events this one stands for
	// (same kind, program and arguments, or same destination), seen from
	// Time to Last: storms are logged as one line with a count rather than
	// a line per exec or connect. Zero or one: a single event. Events that
	// are denied, killed, drifted, set-id, fileless or alerted are never
	// aggregated.
	Count int       `json:"count,omitempty"`
	Last  time.Time `json:"last,omitzero"`

	Verdict Verdict `json:"verdict,omitempty"`
	// Mechanism names what observed or enforced this event, e.g.
	// "bpf:tp_btf/sched_process_exec", "bpf:cgroup/connect4",
	// "fanotify:FAN_OPEN_PERM".
	Mechanism string `json:"mechanism,omitempty"`

	// Mechanisms is set on the KindGuard event: action → mechanism in force
	// for this container (or "none: reason").
	Mechanisms map[string]string `json:"mechanisms,omitempty"`
	// Message is set on KindGuard events that report a problem.
	Message string `json:"message,omitempty"`
	// AttachSeconds is set on the first KindGuard event: how long the
	// guard took to attach (it runs inside Create).
	AttachSeconds float64 `json:"attach_seconds,omitempty"`

	Alert *Alert `json:"alert,omitempty"`
}

// Severity orders alerts: low < medium < high < critical.
type Severity int

const (
	SevLow Severity = iota + 1
	SevMedium
	SevHigh
	SevCritical
)

func (s Severity) String() string {
	switch s {
	case SevLow:
		return "low"
	case SevMedium:
		return "medium"
	case SevHigh:
		return "high"
	case SevCritical:
		return "critical"
	}
	return "unknown"
}

// MarshalText makes severities readable in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity written by MarshalText, so event logs and
// bus payloads decode back into Alerts.
func (s *Severity) UnmarshalText(b []byte) error {
	for v := SevLow; v <= SevCritical; v++ {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("unknown severity %q (want low, medium, high or critical)", b)
}

// Alert is a rule firing. Evidence holds the facts that made it fire.
type Alert struct {
	Rule        string            `json:"rule"`
	Severity    Severity          `json:"severity"`
	ContainerID string            `json:"container_id"`
	Message     string            `json:"message"`
	Evidence    map[string]string `json:"evidence,omitempty"`
}

// Rule names (stable: users filter and route on them).
const (
	RuleExecBurst        = "exec-burst"
	RuleForkBomb         = "fork-bomb"
	RuleSyscallSpike     = "syscall-spike"
	RuleConnectFanout    = "connect-fanout"
	RuleConnectDenied    = "connect-denied"
	RuleConnectUnlisted  = "connect-unlisted"
	RuleSensitiveFile    = "sensitive-file"
	RulePrivilegeChange  = "privilege-change"
	RuleExecDrift        = "exec-not-in-image"
	RuleForbiddenSyscall = "forbidden-syscall"
	RuleEventLoss        = "event-loss"
	RuleGuardDegraded    = "guard-degraded"
	RuleFilelessExec     = "fileless-exec"
)

// Stats are a guard's counters. Seen/Dropped are counted in the kernel
// (events written to / lost at the per-container ring buffer); Lost counts
// events the guard could not hand to a slow consumer.
type Stats struct {
	Seen      uint64 `json:"seen"`
	Dropped   uint64 `json:"dropped"`
	Delivered uint64 `json:"delivered"`
	Lost      uint64 `json:"lost"`
	Execs     uint64 `json:"execs"`
	Forks     uint64 `json:"forks"`
	Exits     uint64 `json:"exits"`
	Connects  uint64 `json:"connects"`
	Denied    uint64 `json:"denied"`
	Killed    uint64 `json:"killed"`
	// FileEvents counts fanotify decisions (sensitive opens, exec checks).
	FileEvents uint64 `json:"file_events"`
	// Syscalls is only counted when the profile opted in.
	Syscalls uint64 `json:"syscalls,omitempty"`
	Alerts   uint64 `json:"alerts"`
}

package monitor

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// detector is the anomaly detector of one container. It sees every decoded
// event (onEvent) and the kernel counters at a fixed interval (onTick), and
// returns alerts. It is not safe for concurrent use: the guard serialises
// calls.
type detector struct {
	id      string
	p       *Profile
	cfg     AnomalyConfig
	samples []sample // counter history, last ~1 s
	dests   map[string]time.Time
	pruned  time.Time
	last    map[string]time.Time // rule/key → last alert, for cooldown
	uid     map[int]uint32       // pid → uid seen at its last exec
	base    float64              // learned syscalls/s (EWMA)
	ticks   int
	dropped uint64
}

type sample struct {
	t                      time.Time
	execs, forks, syscalls uint64
}

// counters are the kernel counters the detector reads.
type counters struct {
	execs, forks, exits, dropped, syscalls uint64
}

const (
	cooldown      = 10 * time.Second
	fanoutWindow  = 10 * time.Second
	baselineTicks = 20 // ticks of learning before syscall spikes are judged
	spikeFloor    = 1000
)

// newDetector starts a detector whose counters were zero at attached: the
// kernel counters start at zero when the container's map entry is inserted,
// so rates are measured from there and a burst in the first tick is seen.
func newDetector(id string, p *Profile, attached time.Time) *detector {
	return &detector{id: id, p: p, cfg: p.Anomaly, dests: map[string]time.Time{}, last: map[string]time.Time{}, uid: map[int]uint32{},
		samples: []sample{{t: attached}}}
}

// sub is a - b, or 0 when the counter went backwards (an entry removed and
// re-read as zeros must never turn into a huge unsigned rate).
func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func (d *detector) alert(now time.Time, key, rule string, sev Severity, msg string, ev map[string]string) []Alert {
	if t, ok := d.last[key]; ok && now.Sub(t) < cooldown {
		return nil
	}
	d.last[key] = now
	return []Alert{{Rule: rule, Severity: sev, ContainerID: d.id, Message: msg, Evidence: ev}}
}

func (d *detector) onEvent(e *Event) []Alert {
	now := e.Time
	var out []Alert
	switch e.Kind {
	case KindExec:
		if e.Fileless {
			msg := "exec of a file with no name (memfd, O_TMPFILE or deleted): fileless execution"
			if e.Verdict == Killed {
				msg += "; process killed before it ran"
			}
			out = append(out, d.alert(now, "fileless:"+itoa(e.PID), RuleFilelessExec, SevCritical, msg,
				map[string]string{"path": e.Path, "pid": itoa(e.PID), "verdict": string(e.Verdict), "mechanism": e.Mechanism, "args": fmt.Sprint(e.Args)})...)
		}
		if e.Drift {
			switch {
			case e.Verdict == Denied:
				ev := map[string]string{"path": e.Path, "pid": itoa(e.PID), "mechanism": e.Mechanism}
				if e.Digest != "" {
					ev["digest"], ev["appraisal"] = e.Digest, e.Appraisal
				}
				out = append(out, d.alert(now, "drift:"+e.Path, RuleExecDrift, SevCritical,
					"exec of a file not in the image was denied", ev)...)
			case e.Verdict == Killed:
				out = append(out, d.alert(now, "drift:"+e.Path, RuleExecDrift, SevCritical,
					"exec of a file not in the image: process killed before it ran", map[string]string{"path": e.Path, "pid": itoa(e.PID), "mechanism": e.Mechanism})...)
			case d.p.Exec.Drift != ActionAudit && e.Mechanism != "fanotify:FAN_OPEN_EXEC_PERM":
				// The BPF event reports it; the fanotify twin would be a duplicate.
				ev := map[string]string{"path": e.Path, "pid": itoa(e.PID), "args": fmt.Sprint(e.Args)}
				if e.Digest != "" {
					ev["digest"], ev["appraisal"] = e.Digest, e.Appraisal
				}
				out = append(out, d.alert(now, "drift:"+e.Path, RuleExecDrift, SevHigh,
					"exec of a file not in the image (created or changed after start)", ev)...)
			}
		}
		if e.Mechanism == "fanotify:FAN_OPEN_EXEC_PERM" {
			break // not a completed exec: no credentials to judge
		}
		if e.SetID {
			out = append(out, d.alert(now, "setid:"+e.Path, RulePrivilegeChange, SevHigh,
				"set-uid/set-gid program executed", map[string]string{"path": e.Path, "pid": itoa(e.PID), "uid": u32(e.UID), "euid": u32(e.EUID), "gid": u32(e.GID), "egid": u32(e.EGID)})...)
		} else if puid, ok := d.uid[e.PPID]; ok && puid != 0 && e.UID == 0 {
			out = append(out, d.alert(now, "uid0:"+itoa(e.PID), RulePrivilegeChange, SevHigh,
				"process gained uid 0 from a non-root parent", map[string]string{"path": e.Path, "pid": itoa(e.PID), "parent_uid": u32(puid)})...)
		}
		if len(d.uid) > 4096 {
			clear(d.uid) // bounded memory; losing history only delays a verdict
		}
		d.uid[e.PID] = e.UID
	case KindExit:
		delete(d.uid, e.PID)
	case KindConnect, KindSend:
		dst := netip.AddrPortFrom(e.Addr, e.Port).String()
		if e.Verdict == Denied {
			out = append(out, d.alert(now, "denied:"+dst, RuleConnectDenied, SevMedium,
				"connection to a destination not allow-listed was denied", map[string]string{"destination": dst, "protocol": e.Protocol, "pid": itoa(e.PID), "comm": e.Comm})...)
		} else if d.p.Network.Connect == ActionAlert && !d.p.allowed(e.Addr, e.Port, e.Protocol) {
			out = append(out, d.alert(now, "unlisted:"+dst, RuleConnectUnlisted, SevLow,
				"connection to a destination not allow-listed", map[string]string{"destination": dst, "protocol": e.Protocol, "pid": itoa(e.PID), "comm": e.Comm})...)
		}
		if d.cfg.ConnectFanout > 0 {
			d.dests[dst] = now
			// Prune at most once a second: per-event pruning would make a
			// scan quadratic in the number of destinations.
			if now.Sub(d.pruned) > time.Second {
				d.pruned = now
				for k, t := range d.dests {
					if now.Sub(t) > fanoutWindow {
						delete(d.dests, k)
					}
				}
			}
			if len(d.dests) > d.cfg.ConnectFanout {
				out = append(out, d.alert(now, "fanout", RuleConnectFanout, SevMedium,
					fmt.Sprintf("connections to %d distinct destinations within %s (scan?)", len(d.dests), fanoutWindow),
					map[string]string{"destinations": itoa(len(d.dests)), "threshold": itoa(d.cfg.ConnectFanout), "last": dst})...)
			}
		}
	case KindSyscall:
		sev := SevHigh
		switch e.Syscall {
		case "init_module", "finit_module", "delete_module", "create_module", "kexec_load", "kexec_file_load", "bpf", "perf_event_open", "reboot":
			sev = SevCritical
		}
		out = append(out, d.alert(now, "syscall:"+e.Syscall+":"+itoa(e.PID), RuleForbiddenSyscall, sev,
			"forbidden syscall "+e.Syscall+" denied",
			map[string]string{"syscall": e.Syscall, "pid": itoa(e.PID), "comm": e.Comm, "mechanism": e.Mechanism})...)
	case KindOpen:
		if d.p.Files.Action != ActionAudit {
			sev, msg := SevHigh, "sensitive file opened"
			if e.Verdict == Denied {
				msg = "open of a sensitive file was denied"
			}
			out = append(out, d.alert(now, "file:"+e.Path+":"+itoa(e.PID), RuleSensitiveFile, sev, msg,
				map[string]string{"path": e.Path, "pid": itoa(e.PID), "verdict": string(e.Verdict), "mechanism": e.Mechanism})...)
		}
	}
	return out
}

func (d *detector) onTick(now time.Time, c counters) []Alert {
	var out []Alert
	d.samples = append(d.samples, sample{now, c.execs, c.forks, c.syscalls})
	// Keep the newest sample older than 1 s as the window's base.
	for len(d.samples) > 2 && now.Sub(d.samples[1].t) >= time.Second {
		d.samples = d.samples[1:]
	}
	first := d.samples[0]
	// Rates are counts in the window divided by at least one second: a
	// short window (the first tick, or the final evaluation of a container
	// that lived 50 ms) is judged by its count, never inflated.
	span := now.Sub(first.t).Seconds()
	execs, forks := sub(c.execs, first.execs), sub(c.forks, first.forks)
	execRate := float64(execs) / max(span, 1)
	forkRate := float64(forks) / max(span, 1)
	if d.cfg.ExecBurst > 0 && execRate > float64(d.cfg.ExecBurst) {
		out = append(out, d.alert(now, "execburst", RuleExecBurst, SevMedium,
			fmt.Sprintf("%.0f execs/s (threshold %d)", execRate, d.cfg.ExecBurst),
			map[string]string{"execs": strconv.FormatUint(execs, 10), "window": fmt.Sprintf("%.2fs", span)})...)
	}
	if d.cfg.ForkRate > 0 && forkRate > float64(d.cfg.ForkRate) {
		out = append(out, d.alert(now, "forkrate", RuleForkBomb, SevHigh,
			fmt.Sprintf("%.0f new processes/s (threshold %d)", forkRate, d.cfg.ForkRate),
			map[string]string{"forks": strconv.FormatUint(forks, 10), "window": fmt.Sprintf("%.2fs", span)})...)
	}
	if live := int64(sub(c.forks, c.exits)); d.cfg.MaxProcesses > 0 && live > int64(d.cfg.MaxProcesses) {
		out = append(out, d.alert(now, "maxproc", RuleForkBomb, SevHigh,
			fmt.Sprintf("%d live processes (threshold %d)", live, d.cfg.MaxProcesses),
			map[string]string{"processes": strconv.FormatInt(live, 10)})...)
	}
	if c.dropped > d.dropped {
		out = append(out, d.alert(now, "loss", RuleEventLoss, SevLow,
			fmt.Sprintf("%d events lost: ring buffer full", c.dropped-d.dropped),
			map[string]string{"dropped_total": strconv.FormatUint(c.dropped, 10)})...)
		d.dropped = c.dropped
	}
	if d.cfg.SyscallCounting && len(d.samples) >= 2 {
		prev := d.samples[len(d.samples)-2]
		dt := now.Sub(prev.t).Seconds()
		if dt > 0 {
			rate := float64(sub(c.syscalls, prev.syscalls)) / dt
			d.ticks++
			switch {
			case d.ticks <= baselineTicks:
				d.base = ewma(d.base, rate, d.ticks)
			case rate > spikeFloor && rate > d.cfg.SyscallSpike*d.base:
				out = append(out, d.alert(now, "spike", RuleSyscallSpike, SevMedium,
					fmt.Sprintf("%.0f syscalls/s, %.1f× the learned baseline %.0f/s", rate, rate/max(d.base, 1), d.base),
					map[string]string{"rate": fmt.Sprintf("%.0f", rate), "baseline": fmt.Sprintf("%.0f", d.base)})...)
			default:
				d.base = ewma(d.base, rate, baselineTicks)
			}
		}
	}
	return out
}

func ewma(old, x float64, n int) float64 {
	if n <= 1 {
		return x
	}
	a := 1 / float64(n)
	return old*(1-a) + x*a
}

// allowed mirrors the kernel allow-list for user-space (alert mode) checks.
func (p *Profile) allowed(a netip.Addr, port uint16, proto string) bool {
	var pr uint8
	switch proto {
	case "tcp":
		pr = 6
	case "udp":
		pr = 17
	}
	for _, r := range p.allow {
		if (!r.addr.IsValid() || r.addr == a.Unmap()) && (r.port == 0 || r.port == port) && (r.proto == 0 || r.proto == pr) {
			return true
		}
	}
	return false
}

func itoa(i int) string   { return strconv.Itoa(i) }
func u32(u uint32) string { return strconv.FormatUint(uint64(u), 10) }

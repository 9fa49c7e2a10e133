package monitor

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestBuiltinProfilesParse(t *testing.T) {
	if got := BuiltinProfiles(); !slices.Equal(got, []string{"balanced", "dev", "hardened", "strict"}) {
		t.Fatalf("BuiltinProfiles() = %v", got)
	}
	for _, n := range BuiltinProfiles() {
		p, err := LoadProfile(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if p.Name != n {
			t.Errorf("profile %s is named %q", n, p.Name)
		}
		// TOML round trip: what `vordr profile show` prints parses back.
		b, err := p.TOML()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseProfile(b); err != nil {
			t.Errorf("%s does not round-trip: %v\n%s", n, err, b)
		}
	}
	def, _ := LoadProfile("")
	if def.Name != DefaultProfile {
		t.Errorf("default profile %s", def.Name)
	}
	strict, _ := LoadProfile("strict")
	if !strict.Required || strict.Exec.Drift != ActionDeny || strict.Files.Action != ActionDeny || strict.Network.Connect != ActionDeny {
		t.Errorf("strict does not deny: %+v", strict)
	}
	dev, _ := LoadProfile("dev")
	if dev.Required {
		t.Error("dev must fail open")
	}
}

func TestLoadProfileSources(t *testing.T) {
	f := filepath.Join(t.TempDir(), "custom.toml")
	os.WriteFile(f, []byte("name = \"custom\"\n[network]\nconnect = \"deny\"\nallow = [\"10.0.0.1:443/tcp\", \"*:53/udp\", \"[::1]:*\"]\n"), 0o644)
	p, err := LoadProfile(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.allow) != 3 || p.allow[0].port != 443 || p.allow[0].proto != 6 || p.allow[1].addr.IsValid() || p.allow[2].port != 0 {
		t.Errorf("allow rules %+v", p.allow)
	}
	if !p.allowed(netip.MustParseAddr("10.0.0.1"), 443, "tcp") || p.allowed(netip.MustParseAddr("10.0.0.1"), 80, "tcp") || !p.allowed(netip.MustParseAddr("8.8.8.8"), 53, "udp") {
		t.Error("allowed() disagrees with the rules")
	}
	if _, err := LoadProfile("name = \"inline\""); err != nil {
		t.Errorf("inline TOML: %v", err)
	}
	if _, err := LoadProfile("nosuch"); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("unknown name: %v", err)
	}
	for _, bad := range []string{
		"name = \"x\"\nno_new_privilege = true\n",          // typo: unknown key
		"name = \"x\"\n[exec]\ndrift = \"block\"\n",        // unknown action
		"name = \"x\"\n[network]\nallow = [\"1.2.3.4\"]\n", // no port
		"name = \"x\"\n[files]\nsensitive = [\"etc/shadow\"]\n",
		"[exec]\ndrift = \"deny\"\n", // no name
	} {
		if _, err := ParseProfile([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestApplySpec(t *testing.T) {
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}
	newSpec := func() *specs.Spec {
		return &specs.Spec{
			Root: &specs.Root{Path: "rootfs"},
			Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
				Bounding: slices.Clone(caps), Effective: slices.Clone(caps), Permitted: slices.Clone(caps),
			}},
			Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			}},
		}
	}

	s := newSpec()
	dev, _ := LoadProfile("dev")
	if err := dev.ApplySpec(s); err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp != nil || len(s.Process.Capabilities.Bounding) != len(caps) || s.Process.NoNewPrivileges {
		t.Error("dev changed the spec")
	}

	// balanced is transparent: the spec runc.v2 would run.
	s = newSpec()
	balanced, _ := LoadProfile("balanced")
	before, _ := json.Marshal(s)
	if err := balanced.ApplySpec(s); err != nil {
		t.Fatal(err)
	}
	if after, _ := json.Marshal(s); string(after) != string(before) {
		t.Errorf("balanced changed the spec:\n%s\n%s", before, after)
	}

	s = newSpec()
	bal, _ := LoadProfile("hardened")
	bal.ApplySpec(s)
	want := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID", "CAP_NET_BIND_SERVICE"}
	if !slices.Equal(s.Process.Capabilities.Bounding, want) || !slices.Equal(s.Process.Capabilities.Effective, want) {
		t.Errorf("hardened caps %v", s.Process.Capabilities.Bounding)
	}
	if !s.Process.NoNewPrivileges || s.Root.Readonly {
		t.Error("hardened: want no_new_privileges, rootfs as given")
	}
	sc := s.Linux.Seccomp
	if sc == nil || sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) < 2 {
		t.Fatalf("hardened without a spec profile must start from containerd's default: %+v", sc)
	}
	ours := sc.Syscalls[len(sc.Syscalls)-1]
	if ours.Action != specs.ActErrno || !slices.Contains(ours.Names, "init_module") || !slices.Contains(ours.Names, "bpf") || slices.Contains(ours.Names, "ptrace") {
		t.Errorf("hardened deny rule %+v", ours)
	}
	for _, r := range sc.Syscalls[:len(sc.Syscalls)-1] {
		if r.Action == specs.ActAllow && slices.Contains(r.Names, "clock_adjtime") {
			t.Errorf("a denied syscall is still allowed by the default profile: %v", r.Names)
		}
	}
	n := len(sc.Syscalls)
	bal.ApplySpec(s) // idempotent
	if len(s.Linux.Seccomp.Syscalls) != n {
		t.Errorf("ApplySpec twice: %d rules, then %d", n, len(s.Linux.Seccomp.Syscalls))
	}

	// strict recomputes: a spec profile computed for more capabilities (or
	// one that allows mount) is replaced by containerd's default for the
	// effective capabilities, plus strict's denials.
	s = newSpec()
	s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"read", "write", "ptrace"}, Action: specs.ActAllow},
		{Names: []string{"mount", "unshare", "setns", "clone3"}, Action: specs.ActAllow},
	}}
	strict, _ := LoadProfile("strict")
	if err := strict.ApplySpec(s); err != nil {
		t.Fatal(err)
	}
	sc = s.Linux.Seccomp
	if sc.DefaultAction != specs.ActErrno {
		t.Errorf("strict default action %v", sc.DefaultAction)
	}
	for _, r := range sc.Syscalls[:len(sc.Syscalls)-1] {
		if r.Action == specs.ActAllow && len(r.Args) == 0 && slices.ContainsFunc(r.Names, func(n string) bool {
			return n == "mount" || n == "unshare" || n == "setns" || n == "clone3" || n == "ptrace"
		}) {
			t.Errorf("strict still allows %v", r.Names)
		}
	}
	if last := sc.Syscalls[len(sc.Syscalls)-1]; !slices.Contains(last.Names, "ptrace") || !slices.Contains(last.Names, "mount") || !slices.Contains(last.Names, "unshare") || *last.ErrnoRet != 1 {
		t.Errorf("strict deny rule %+v", last)
	}
	if !s.Root.Readonly || !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("strict: readonly=%v caps=%v", s.Root.Readonly, s.Process.Capabilities.Bounding)
	}

	// A profile never adds a capability the spec lacks.
	s = newSpec()
	s.Process.Capabilities.Bounding = []string{"CAP_KILL"}
	bal.ApplySpec(s)
	if len(s.Process.Capabilities.Bounding) != 0 {
		t.Errorf("capabilities added: %v", s.Process.Capabilities.Bounding)
	}
}

func TestDetectorRules(t *testing.T) {
	p, _ := LoadProfile("balanced")
	t0 := time.Unix(1000, 0)
	d := newDetector("c1", p, t0)
	rules := func(as []Alert) (r []string) {
		for _, a := range as {
			r = append(r, a.Rule)
		}
		return
	}
	// 60 execs within 1 s > exec_burst 50.
	d.onTick(t0, counters{})
	if got := rules(d.onTick(t0.Add(time.Second), counters{execs: 60, forks: 60, exits: 60})); !slices.Contains(got, RuleExecBurst) {
		t.Errorf("exec burst not raised: %v", got)
	}
	// Cooldown: the same burst right after is not repeated.
	if got := rules(d.onTick(t0.Add(1250*time.Millisecond), counters{execs: 120, forks: 120, exits: 120})); slices.Contains(got, RuleExecBurst) {
		t.Errorf("alert repeated within cooldown: %v", got)
	}
	// Fork bomb: live processes above max_processes.
	if got := rules(d.onTick(t0.Add(20*time.Second), counters{execs: 120, forks: 5000, exits: 120})); !slices.Contains(got, RuleForkBomb) {
		t.Errorf("fork bomb not raised: %v", got)
	}
	// Event loss is reported.
	if got := rules(d.onTick(t0.Add(40*time.Second), counters{execs: 120, forks: 5000, exits: 5000, dropped: 3})); !slices.Contains(got, RuleEventLoss) {
		t.Errorf("loss not raised: %v", got)
	}
	// Connect fan-out: 33 destinations > 32.
	var got []string
	for i := 0; i < 33; i++ {
		got = append(got, rules(d.onEvent(&Event{Time: t0, Kind: KindConnect, Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Port: 80}))...)
	}
	if !slices.Contains(got, RuleConnectFanout) {
		t.Errorf("fan-out not raised: %v", got)
	}
	// Privilege change: set-uid exec; uid 0 from a non-root parent.
	if got := rules(d.onEvent(&Event{Time: t0, Kind: KindExec, Path: "/usr/bin/passwd", SetID: true, UID: 1000, EUID: 0})); !slices.Contains(got, RulePrivilegeChange) {
		t.Errorf("setid not raised: %v", got)
	}
	d.onEvent(&Event{Time: t0, Kind: KindExec, PID: 10, UID: 1000})
	if got := rules(d.onEvent(&Event{Time: t0, Kind: KindExec, PID: 11, PPID: 10, UID: 0})); !slices.Contains(got, RulePrivilegeChange) {
		t.Errorf("uid gain not raised: %v", got)
	}
	// Drift is alerted under balanced, not under dev.
	if got := rules(d.onEvent(&Event{Time: t0, Kind: KindExec, Path: "/tmp/x", Drift: true, Verdict: Allowed})); !slices.Contains(got, RuleExecDrift) {
		t.Errorf("drift not raised: %v", got)
	}
	devp, _ := LoadProfile("dev")
	if got := rules(newDetector("c", devp, t0).onEvent(&Event{Time: t0, Kind: KindExec, Path: "/tmp/x", Drift: true})); len(got) != 0 {
		t.Errorf("dev alerted on drift: %v", got)
	}
}

// TestDetectorNoBlindWindows: rates count from zero at attach, a window
// shorter than a second is judged by its count, and counters that go
// backwards (an entry read after removal) never raise an alert.
func TestDetectorNoBlindWindows(t *testing.T) {
	p, _ := LoadProfile("balanced")
	t0 := time.Unix(1000, 0)
	has := func(as []Alert, rule string) bool {
		return slices.ContainsFunc(as, func(a Alert) bool { return a.Rule == rule })
	}
	// A 400-process burst before the first tick: the first tick sees it.
	d := newDetector("c", p, t0)
	if got := d.onTick(t0.Add(250*time.Millisecond), counters{execs: 400, forks: 400, exits: 0}); !has(got, RuleExecBurst) || !has(got, RuleForkBomb) {
		t.Errorf("burst in the first tick not alerted: %v", got)
	}
	// A container that lives 50 ms: the final evaluation judges it.
	d = newDetector("c", p, t0)
	if got := d.onTick(t0.Add(50*time.Millisecond), counters{execs: 60, forks: 60, exits: 60}); !has(got, RuleExecBurst) {
		t.Errorf("short-lived burst not alerted: %v", got)
	}
	// Few execs over a short window are not a burst (no inflation).
	d = newDetector("c", p, t0)
	if got := d.onTick(t0.Add(10*time.Millisecond), counters{execs: 5, forks: 5, exits: 5}); len(got) != 0 {
		t.Errorf("5 execs in 10 ms alerted: %v", got)
	}
	// Counters read as zero after some activity: no wrap-around alert.
	d = newDetector("c", p, t0)
	d.onTick(t0.Add(250*time.Millisecond), counters{execs: 10, forks: 12, exits: 3})
	if got := d.onTick(t0.Add(500*time.Millisecond), counters{}); len(got) != 0 {
		t.Errorf("counters going backwards raised %v", got)
	}
}

func TestDetectorSyscallSpike(t *testing.T) {
	p, err := ParseProfile([]byte("name = \"s\"\n[anomaly]\nsyscall_counting = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(0, 0)
	d := newDetector("c", p, t0)
	var n uint64
	var raised bool
	for i := 0; i < 40; i++ {
		rate := uint64(10000) // per 250 ms tick
		if i == 35 {
			rate = 200000
		}
		n += rate
		for _, a := range d.onTick(t0.Add(time.Duration(i)*250*time.Millisecond), counters{syscalls: n}) {
			if a.Rule == RuleSyscallSpike {
				if i != 35 {
					t.Errorf("spike raised at tick %d", i)
				}
				raised = true
			}
		}
	}
	if !raised {
		t.Error("a 20× spike after learning was not raised")
	}
}

func TestEventJSONRoundTrip(t *testing.T) {
	in := Event{Time: time.Unix(1, 2).UTC(), Kind: KindConnect, ContainerID: "c", CgroupID: 7, PID: 3,
		Addr: netip.MustParseAddr("::1"), Port: 80, Protocol: "tcp", Verdict: Denied, Mechanism: "bpf:cgroup/connect6",
		Alert: &Alert{Rule: RuleConnectDenied, Severity: SevCritical, ContainerID: "c", Evidence: map[string]string{"a": "b"}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"severity":"critical"`)) {
		t.Errorf("severity not readable: %s", b)
	}
	var out Event
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n%+v\n%+v", in, out)
	}
}

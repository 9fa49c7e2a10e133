//go:build linux

package task

import (
	"context"
	"encoding/json"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vordr-project/vordr/config"
)

// warmCodecs encodes and decodes a typical OCI spec once, off the request
// path: encoding/json builds its codec for each type on first use, which for
// the spec's ~60 types costs a cold shim 2-4 ms, and the first Create would
// pay it while containerd waits. The shim starts this when it starts; Create
// comes several milliseconds later.
func warmCodecs() {
	ctx := namespaces.WithNamespace(context.Background(), "vordr-warm")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "vordr-warm"})
	if err != nil {
		return
	}
	one := int64(1)
	s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1, Soft: 1}}
	s.Process.User.AdditionalGids = []uint32{1}
	s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"x"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo}}}}}
	s.Linux.Resources = &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Memory:  &specs.LinuxMemory{Limit: &one}, CPU: &specs.LinuxCPU{Shares: new(uint64)},
		Pids: &specs.LinuxPids{Limit: &one}, BlockIO: &specs.LinuxBlockIO{Weight: new(uint16)},
	}
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1, Size: 1}}
	s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "c"}}
	s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/x"}}}
	data, err := json.Marshal(s)
	if err != nil {
		return
	}
	var back specs.Spec
	_ = json.Unmarshal(data, &back)
	var p specs.Process // Exec's process spec
	if pd, err := json.Marshal(s.Process); err == nil {
		_ = json.Unmarshal(pd, &p)
	}
	// The runtime config's TOML decoder, and the built-in profiles (parsed
	// on first use): the same first-use cost, paid here.
	if cfg, err := config.Parse([]byte(warmConfig), "warm-up"); err == nil {
		_, _ = cfg.Select(nil)
	}
}

// warmConfig touches every section of the runtime config.
const warmConfig = `profile = "balanced"
[runc]
Root = "/run/vordr-warm"
[events]
dir = "/run/vordr-warm"
[gate]
cache_dir = "/run/vordr-warm"
[annotations]
profiles = ["strict"]
[trust]
runtime_options = "operator"
`

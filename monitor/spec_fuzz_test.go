package monitor

import (
	"encoding/json"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The profile code runs in the shim on whatever a client sends: valid OCI
// with fields left out, and worse. No input may panic it (a panic in the shim
// is every task of the pod gone). The seeds run in `make test`; `go test
// -fuzz FuzzApplySpec ./monitor` searches further.

func builtinProfiles(t testing.TB) []*Profile {
	var ps []*Profile
	for _, name := range BuiltinProfiles() {
		p, err := LoadProfile(name)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

var processSeeds = []string{
	`{}`,
	`{"args":[]}`,
	`{"args":null,"env":null,"cwd":""}`,
	`{"capabilities":{}}`,
	`{"capabilities":null,"rlimits":null}`,
	`{"capabilities":{"bounding":["CAP_SYS_ADMIN","CAP_NOT_A_CAP",""],"effective":[],"permitted":null}}`,
	`{"user":{}}`,
	`{"user":{"uid":4294967295,"gid":4294967295,"additionalGids":[0,0,0]}}`,
	`{"noNewPrivileges":true,"oomScoreAdj":-1000}`,
	`{"rlimits":[{"type":"RLIMIT_NOFILE","hard":0,"soft":18446744073709551615},{"type":""}]}`,
	`{"apparmorProfile":"unconfined","selinuxLabel":"x","terminal":true,"consoleSize":{}}`,
	`{"ioPriority":{"class":"IOPRIO_CLASS_RT","priority":-1},"scheduler":{"policy":"SCHED_DEADLINE"}}`,
	`{"execCPUAffinity":{"initial":"0-1023"}}`,
	`{"env":["` + strings.Repeat("A", 1<<16) + `=x"]}`,
}

var specSeeds = []string{
	`{}`,
	`{"process":{}}`,
	`{"process":{},"linux":{}}`,
	`{"process":{"capabilities":null},"linux":{"seccomp":{}}}`,
	`{"process":{},"linux":{"seccomp":{"defaultAction":"","syscalls":[{"names":[],"action":""}]}}}`,
	`{"process":{},"linux":{"resources":{"devices":null,"pids":{"limit":0},"memory":{}}}}`,
	`{"process":{},"linux":{"namespaces":[{"type":""},{"type":"network","path":"/proc/1/ns/net"}]}}`,
	`{"process":{},"linux":{"maskedPaths":null,"readonlyPaths":null,"devices":[{"path":"","type":""}]}}`,
	`{"process":{},"mounts":[{}, {"destination":"/x","type":"bind","source":"","options":null}, {"type":"rbind","source":"/","destination":"/h"}]}`,
	`{"process":{},"mounts":[{"destination":"/proc","type":"proc","options":["rw","exec","suid","dev"]}]}`,
	`{"process":{},"hooks":{"prestart":[{}],"createRuntime":[{"path":""}]}}`,
	`{"process":{},"annotations":{"vordr.io/profile":"strict"},"root":{}}`,
	`{"process":{},"linux":{"uidMappings":[{"containerID":0,"hostID":0,"size":0}],"sysctl":{"":""}}}`,
}

func FuzzApplyProcess(f *testing.F) {
	for _, s := range processSeeds {
		f.Add([]byte(s))
	}
	profiles := builtinProfiles(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range profiles {
			var proc specs.Process
			if json.Unmarshal(data, &proc) != nil {
				return
			}
			p.ApplyProcess(&proc)
		}
	})
}

func FuzzApplySpec(f *testing.F) {
	for _, s := range specSeeds {
		f.Add([]byte(s))
	}
	for _, s := range processSeeds {
		f.Add([]byte(`{"process":` + s + `,"linux":{}}`))
	}
	profiles := builtinProfiles(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range profiles {
			var s specs.Spec
			if json.Unmarshal(data, &s) != nil {
				return
			}
			_ = p.ApplySpec(&s) // refusing is fine; panicking is not
			if s.Linux != nil && s.Linux.Resources != nil {
				_ = p.ApplyUpdate(s.Linux.Resources)
			}
		}
	})
}

func FuzzApplyUpdate(f *testing.F) {
	for _, s := range []string{`{}`, `{"devices":null}`, `{"pids":{}}`, `{"pids":{"limit":-1}}`, `{"memory":{"limit":0,"swap":-1}}`, `{"devices":[{"allow":true}]}`, `{"unified":{"":""}}`} {
		f.Add([]byte(s))
	}
	profiles := builtinProfiles(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range profiles {
			var r specs.LinuxResources
			if json.Unmarshal(data, &r) != nil {
				return
			}
			_ = p.ApplyUpdate(&r)
		}
	})
}

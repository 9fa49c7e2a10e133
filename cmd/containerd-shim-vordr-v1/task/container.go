//go:build linux

package task

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vordr-project/vordr/config"
)

// Container is what the shim knows of one container (a task's init process
// and its bundle). Fields after Pid are set once runc create has returned.
type Container struct {
	ID        string
	Namespace string
	Bundle    string
	// Rootfs is the container's root filesystem as mounted in the bundle.
	Rootfs string
	// Mounts are the rootfs mounts the Create request carries: what the
	// shim mounts at Rootfs. The gate proves they are the verified content.
	Mounts []*types.Mount
	Spec   *specs.Spec
	Config *config.Config
	// Selection is the profile and policy the container runs under, decided
	// once (config.Select) for every hook.
	Selection *config.Selection
	// ImageExecutables are the sha256 (hex) of the verified image's
	// executable files, set by the gate when the image verified and the
	// profile appraises execs; the guard allows only these to run.
	ImageExecutables map[string]struct{}
	// VerifiedImage names the image the gate verified ("name@digest").
	VerifiedImage string
	// GateRecord is the gate's decision as an event log line, for the guard
	// to write first in the container's log (nil: no policy, no decision).
	GateRecord any

	// Pid is the init process, waiting in runc init until Start.
	Pid int
	// CgroupPath is the init process's cgroup v2 path, relative to the
	// cgroup2 mount ("/default/web" for runc's default layout).
	CgroupPath string
	// CgroupDir is the absolute directory of that cgroup.
	CgroupDir string
	// CgroupID is the cgroup's inode number: what bpf_get_current_cgroup_id()
	// returns for the container's processes. Zero where there is no cgroup v2.
	CgroupID uint64
	// InitGone: the init process had exited when Create finished (see
	// service.createdDead); no hook guards the container, and none runs at
	// Start, which runc refuses anyway.
	InitGone bool

	mu sync.Mutex // serialises hook calls for this container
}

// readSpec reads the bundle's config.json with the errors a user can act on.
func readSpec(bundle string) (*specs.Spec, []byte, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err == nil {
		if s := earlySpec.take(bundle, data); s != nil {
			return s, data, nil
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("bundle %s has no config.json; the client must write an OCI runtime spec into the bundle: %w", bundle, errdefs.ErrInvalidArgument)
		}
		return nil, nil, fmt.Errorf("read OCI spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: config.json is not a valid OCI runtime spec: %v: %w", bundle, err, errdefs.ErrInvalidArgument)
	}
	if s.Linux == nil {
		return nil, nil, fmt.Errorf("bundle %s: the OCI spec has no linux section; io.containerd.vordr.v1 runs Linux containers only: %w", bundle, errdefs.ErrInvalidArgument)
	}
	if s.Process == nil {
		return nil, nil, fmt.Errorf("bundle %s: the OCI spec has no process to run: %w", bundle, errdefs.ErrInvalidArgument)
	}
	return &s, data, nil
}

// earlySpec is the OCI spec of the bundle the shim was started in, decoded
// while the shim waits for containerd's Create: decoding the spec in a
// fresh process is a cold path (encoding/json builds its decoders for the
// spec's types) that would otherwise lie between Create and runc create.
// Create uses it only for that bundle and only if config.json still holds
// the bytes decoded.
var earlySpec preSpec

type preSpec struct {
	mu     sync.Mutex
	done   chan struct{}
	bundle string
	data   []byte
	spec   *specs.Spec
}

// start decodes bundle's config.json in the background.
func (p *preSpec) start(bundle string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bundle, p.done = bundle, make(chan struct{})
	go func() {
		defer close(p.done)
		data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
		if err != nil {
			return
		}
		var s specs.Spec
		if json.Unmarshal(data, &s) != nil || s.Linux == nil || s.Process == nil {
			return // Create decodes it again and says what is wrong
		}
		p.data, p.spec = data, &s
	}()
}

// take returns the early spec if it was decoded from data in bundle, once.
func (p *preSpec) take(bundle string, data []byte) *specs.Spec {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil || p.bundle != bundle {
		return nil
	}
	<-p.done // started earlier than a decode here would
	s := p.spec
	if s == nil || !bytes.Equal(p.data, data) {
		s = nil
	}
	p.done, p.data, p.spec = nil, nil, nil // the spec is the caller's to change
	return s
}

// writeSpec replaces config.json atomically, so runc never reads half a spec.
func writeSpec(bundle string, s *specs.Spec) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode OCI spec: %w", err)
	}
	path := filepath.Join(bundle, "config.json")
	tmp := path + ".vordr.tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write OCI spec: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write OCI spec: %w", err)
	}
	return nil
}

var (
	cgroup2Once  sync.Once
	cgroup2Mount string
)

// Cgroup2Mount returns where the cgroup v2 hierarchy is mounted:
// /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones, ""
// when there is none.
func Cgroup2Mount() string {
	cgroup2Once.Do(func() {
		data, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			// id parent major:minor root mountpoint opts... - fstype source superopts
			line := sc.Text()
			sep := strings.Index(line, " - ")
			if sep < 0 {
				continue
			}
			post := strings.Fields(line[sep+3:])
			pre := strings.Fields(line[:sep])
			if len(post) > 0 && post[0] == "cgroup2" && len(pre) >= 5 {
				cgroup2Mount = pre[4]
				return
			}
		}
	})
	return cgroup2Mount
}

// learnCgroup fills the cgroup fields from /proc/<pid>/cgroup.
func (c *Container) learnCgroup() error {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.Pid))
	if err != nil {
		return fmt.Errorf("read cgroup of init process %d: %w", c.Pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			c.CgroupPath = rest
			break
		}
	}
	mnt := Cgroup2Mount()
	if c.CgroupPath == "" || mnt == "" {
		// A cgroup v1-only host: nothing to key eBPF state on. Hooks that need
		// a cgroup id report it.
		return nil
	}
	c.CgroupDir = filepath.Join(mnt, c.CgroupPath)
	var st unix.Stat_t
	if err := unix.Stat(c.CgroupDir, &st); err != nil {
		return fmt.Errorf("stat cgroup %s of init process %d: %w", c.CgroupDir, c.Pid, err)
	}
	c.CgroupID = st.Ino
	return nil
}

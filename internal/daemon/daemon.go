//go:build linux

// Package daemon starts a private containerd for tests, the demo and
// benchmarks: every path (root, state, sockets, runc root, FIFOs, shim
// sockets) lives under one directory, nothing is written under /run/containerd
// or /etc/containerd, and Stop leaves no process, mount or cgroup behind.
package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"
)

// Options configure a private containerd.
type Options struct {
	// Dir holds everything; a new directory under /tmp when empty. Keep it
	// short: unix socket paths are limited to 108 bytes.
	Dir string
	// BinDirs are put first on containerd's PATH (the vordr shim's directory,
	// the pinned toolchain); containerd finds shims and runc there.
	BinDirs []string
	// CRI keeps containerd's CRI plugins enabled (with offline-friendly
	// settings); otherwise they are disabled.
	CRI bool
	// ExtraConfig is appended to config.toml (runtime entries, proxy plugins…).
	ExtraConfig string
	// Imports are config drop-ins containerd merges into config.toml
	// (its imports key), as it does /etc/containerd/conf.d/*.toml.
	Imports []string
	// Env is added to containerd's environment (and so to every shim's).
	Env []string
	// LogLevel of containerd; "debug" when empty, so shim logs are kept.
	LogLevel string
}

// Daemon is a running private containerd.
type Daemon struct {
	Dir       string
	Address   string
	Namespace string // a namespace unique to this daemon, so cgroups never collide
	RuncRoot  string
	FifoDir   string
	LogPath   string
	// VordrConfig is the vordr runtime config containerd's shims read when a
	// client sends no runtime options (VORDR_CONFIG).
	VordrConfig string
	// EventsDir holds the vordr shims' per-container event logs.
	EventsDir string
	opts      Options
	cmd       *exec.Cmd
	exited    chan struct{}
	bin       string
}

// ToolchainDir is where hack/deps.sh installs containerd, ctr and runc.
func ToolchainDir() string {
	if d := os.Getenv("VORDR_BIN_DIR"); d != "" {
		return d
	}
	cache := os.Getenv("VORDR_CACHE")
	if cache == "" {
		cache = "/var/cache/vordr"
	}
	return filepath.Join(cache, "bin")
}

// Binary finds one of the toolchain's binaries: in ToolchainDir, else on PATH.
func Binary(name string) (string, error) {
	p := filepath.Join(ToolchainDir(), name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in %s or PATH: run `make deps` (hack/deps.sh) to install the pinned toolchain", name, ToolchainDir())
}

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Start starts containerd and waits until it serves.
func Start(ctx context.Context, opts Options) (*Daemon, error) {
	bin, err := Binary("containerd")
	if err != nil {
		return nil, err
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "vordr-ctrd-"); err != nil {
			return nil, err
		}
	}
	d := &Daemon{
		Dir:       dir,
		Address:   filepath.Join(dir, "c.sock"),
		Namespace: "vt-" + randomID(),
		RuncRoot:  filepath.Join(dir, "runc"),
		FifoDir:   filepath.Join(dir, "fifo"),
		LogPath:   filepath.Join(dir, "containerd.log"),
		opts:      opts,
		bin:       bin,
	}
	for _, sub := range []string{"root", "state", "runc", "fifo", "opt", "s", "nri", "cdi", "cni/bin", "cni/conf"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o711); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(d.config()), 0o600); err != nil {
		return nil, err
	}
	// The vordr runtime's default config, used whenever a client sends no
	// runtime options (ctr's --runc-root only applies to runc.v2): keep runc's
	// state private too. Callers may point VORDR_CONFIG elsewhere via Env.
	d.VordrConfig = filepath.Join(dir, "vordr.toml")
	d.EventsDir = filepath.Join(dir, "events")
	if err := os.WriteFile(d.VordrConfig, []byte(d.VordrTOML("")), 0o600); err != nil {
		return nil, err
	}
	if err := d.start(ctx); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

// VordrTOML is a vordr runtime config that keeps runc state and event logs
// under the daemon's directory, with extra appended (e.g. `profile = "strict"`).
// extra's top-level keys must come first in a TOML document, so it is put
// before the tables.
func (d *Daemon) VordrTOML(extra string) string {
	return fmt.Sprintf("%s\n[runc]\nRoot = %q\n[events]\ndir = %q\n[gate]\ncache_dir = %q\n", extra, d.RuncRoot, d.EventsDir, filepath.Join(d.Dir, "gate-cache"))
}

func (d *Daemon) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 3\nroot = %q\nstate = %q\n", filepath.Join(d.Dir, "root"), filepath.Join(d.Dir, "state"))
	if len(d.opts.Imports) > 0 {
		q := make([]string, len(d.opts.Imports))
		for i, p := range d.opts.Imports {
			q[i] = fmt.Sprintf("%q", p)
		}
		fmt.Fprintf(&b, "imports = [%s]\n", strings.Join(q, ", "))
	}
	if !d.opts.CRI {
		b.WriteString(`disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", "io.containerd.podsandbox.controller.v1.podsandbox"]` + "\n")
	}
	fmt.Fprintf(&b, "[grpc]\n  address = %q\n[ttrpc]\n  address = %q\n", d.Address, d.Address+".ttrpc")
	fmt.Fprintf(&b, "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = %q\n", filepath.Join(d.Dir, "opt"))
	fmt.Fprintf(&b, "[plugins.\"io.containerd.shim.v1.manager\"]\n  socket_dir = %q\n", filepath.Join(d.Dir, "s"))
	fmt.Fprintf(&b, "[plugins.\"io.containerd.nri.v1.nri\"]\n  disable = true\n  socket_path = %q\n  plugin_path = %q\n  plugin_config_path = %q\n",
		filepath.Join(d.Dir, "nri", "nri.sock"), filepath.Join(d.Dir, "nri", "plugins"), filepath.Join(d.Dir, "nri", "conf"))
	if d.opts.CRI {
		fmt.Fprintf(&b, "[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_tcp_service = true\n  stream_server_address = \"127.0.0.1\"\n")
		fmt.Fprintf(&b, "[plugins.\"io.containerd.cri.v1.images\"]\n  snapshotter = \"overlayfs\"\n")
		fmt.Fprintf(&b, "[plugins.\"io.containerd.cri.v1.runtime\"]\n  restrict_oom_score_adj = true\n  netns_mounts_under_state_dir = true\n  cdi_spec_dirs = [%q]\n", filepath.Join(d.Dir, "cdi"))
		fmt.Fprintf(&b, "[plugins.\"io.containerd.cri.v1.runtime\".cni]\n  bin_dirs = [%q]\n  conf_dir = %q\n", filepath.Join(d.Dir, "cni", "bin"), filepath.Join(d.Dir, "cni", "conf"))
	}
	b.WriteString(d.opts.ExtraConfig)
	return b.String()
}

func (d *Daemon) start(ctx context.Context) error {
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	level := d.opts.LogLevel
	if level == "" {
		level = "debug"
	}
	cmd := exec.Command(d.bin, "--config", filepath.Join(d.Dir, "config.toml"), "--log-level", level)
	path := strings.Join(append(append([]string{}, d.opts.BinDirs...), ToolchainDir(), os.Getenv("PATH")), ":")
	cmd.Env = append(os.Environ(), "PATH="+path, "VORDR_CONFIG="+d.VordrConfig)
	cmd.Env = append(cmd.Env, d.opts.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a test's Ctrl-C reaches the test, which
	// then stops containerd in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start containerd: %w", err)
	}
	logf.Close()
	d.cmd = cmd
	d.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(d.exited) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("containerd exited at start; log %s:\n%s", d.LogPath, d.LogTail(30))
		default:
		}
		if c, err := containerd.New(d.Address, containerd.WithTimeout(time.Second)); err == nil {
			ok, serr := c.IsServing(ctx)
			c.Close()
			if serr == nil && ok {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not serve on %s within 20s; log %s:\n%s", d.Address, d.LogPath, d.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LogTail returns the last n lines of containerd's log.
func (d *Daemon) LogTail(n int) string {
	data, _ := os.ReadFile(d.LogPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Log returns containerd's whole log (shim logs included).
func (d *Daemon) Log() string {
	data, _ := os.ReadFile(d.LogPath)
	return string(data)
}

// Client returns a client of this daemon; Context gives a context in its namespace.
func (d *Daemon) Client() (*containerd.Client, error) {
	return containerd.New(d.Address, containerd.WithDefaultNamespace(d.Namespace), containerd.WithTimeout(10*time.Second))
}

// Context returns ctx in the daemon's namespace.
func (d *Daemon) Context(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, d.Namespace)
}

// Pid of containerd.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Restart stops containerd (SIGTERM: shims and containers keep running) and
// starts it again on the same state.
func (d *Daemon) Restart(ctx context.Context) error {
	if err := d.terminate(); err != nil {
		return err
	}
	return d.start(ctx)
}

func (d *Daemon) terminate() error {
	if d.cmd == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
	return nil
}

// Stop removes every container the daemon knows of, stops containerd, kills
// any shim it started that is still alive, unmounts what is left under Dir,
// removes the namespace's cgroups and deletes Dir. It returns what it had to
// clean by force, so tests can assert that nothing leaked.
func (d *Daemon) Stop() (leaks []string) {
	if d.cmd != nil {
		leaks = append(leaks, d.removeAll()...)
	}
	_ = d.terminate()
	for _, pid := range d.ShimPids() {
		leaks = append(leaks, fmt.Sprintf("shim process %d still running", pid))
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	// Give killed shims a moment to exit before unmounting under them.
	time.Sleep(100 * time.Millisecond)
	for _, m := range MountsUnder(d.Dir) {
		leaks = append(leaks, "mount "+m)
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
	leaks = append(leaks, RemoveCgroups(d.Namespace)...)
	_ = os.RemoveAll(d.Dir)
	return leaks
}

// removeAll kills and deletes every task and container in every namespace.
func (d *Daemon) removeAll() (leaks []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := containerd.New(d.Address, containerd.WithTimeout(5*time.Second))
	if err != nil {
		return []string{"connect for cleanup: " + err.Error()}
	}
	defer c.Close()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return []string{"list namespaces: " + err.Error()}
	}
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		cs, err := c.Containers(nctx)
		if err != nil {
			continue
		}
		for _, ctr := range cs {
			if t, err := ctr.Task(nctx, nil); err == nil {
				leaks = append(leaks, fmt.Sprintf("task %s/%s", ns, ctr.ID()))
				_, _ = t.Delete(nctx, containerd.WithProcessKill)
			}
			_ = ctr.Delete(nctx, containerd.WithSnapshotCleanup)
		}
	}
	return leaks
}

// ShimPids lists live shim processes started for this daemon (their command
// line names its address).
func (d *Daemon) ShimPids() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		if len(args) == 0 || !bytes.Contains(args[0], []byte("containerd-shim")) {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if string(args[i]) == "-address" && string(args[i+1]) == d.Address {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// MountsUnder lists mount points below dir, deepest first.
func MountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// CgroupRoots are the hierarchies where runc creates a container's cgroups.
func CgroupRoots() []string {
	var roots []string
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range ents {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			roots = append(roots, p)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		roots = append(roots, "/sys/fs/cgroup")
	}
	return roots
}

// RemoveCgroups removes the cgroup directories named parent in every
// hierarchy (containerd's default cgroup parent is the namespace). Children
// still present are leaks: reported and removed when empty.
func RemoveCgroups(parent string) (leaks []string) {
	for _, root := range CgroupRoots() {
		dir := filepath.Join(root, parent)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		_ = filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() && p != dir && filepath.Dir(p) == dir {
				leaks = append(leaks, "cgroup "+p)
			}
			return nil
		})
		// Deepest first.
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				leaks = append(leaks, fmt.Sprintf("cgroup %s not removable: %v", dirs[i], err))
			}
		}
	}
	return leaks
}

//go:build linux

package testimage

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// DefaultPauseName is the name Pause gives the image when Options.Name is
// empty.
const DefaultPauseName = "docker.io/vordr/pause:test"

//go:embed pause/main.go
var pauseSource []byte

// pauseGoMod makes the embedded source a module of its own, so building it
// needs neither this repository nor the module proxy.
const pauseGoMod = "module vordr.dev/testimage/pause\n\ngo 1.22\n"

// Pause builds a Kubernetes pause image: /pause as the entrypoint, run as
// 65535:65535 like registry.k8s.io/pause. Defaults: name DefaultPauseName.
//
// Unless opts.PauseBinary names a prebuilt binary, Pause compiles the pause
// program (source in pause/main.go, embedded in this package) with the Go
// toolchain: static (CGO_ENABLED=0), -trimpath, stripped, without VCS
// stamps, so the same toolchain gives the same bytes.
func Pause(ctx context.Context, opts Options) (*Image, error) {
	arch := opts.Architecture
	if arch == "" {
		arch = runtime.GOARCH
	}
	var (
		bin []byte
		err error
	)
	if opts.PauseBinary != "" {
		bin, err = os.ReadFile(opts.PauseBinary)
		if err != nil {
			return nil, fmt.Errorf("read pause binary: %w", err)
		}
	} else {
		bin, err = BuildPause(ctx, opts.GoTool, arch)
		if err != nil {
			return nil, err
		}
	}

	r := rootfs{}
	base := []File{
		{Path: "/pause", Mode: 0o755, Content: bin},
		// Mount points runc would otherwise create in the rootfs.
		{Path: "/proc", Mode: fs.ModeDir | 0o555},
		{Path: "/sys", Mode: fs.ModeDir | 0o555},
		{Path: "/dev", Mode: fs.ModeDir | 0o755},
		{Path: "/etc", Mode: fs.ModeDir | 0o755},
	}
	for _, f := range base {
		if err := r.add(f); err != nil {
			return nil, err
		}
	}
	if opts.Name == "" {
		opts.Name = DefaultPauseName
	}
	if opts.Entrypoint == nil && opts.Cmd == nil {
		opts.Entrypoint = []string{"/pause"}
	}
	if opts.User == "" {
		opts.User = "65535:65535"
	}
	opts.Architecture = arch
	return build(r, opts)
}

// BuildPause compiles the pause program for linux/arch and returns the
// binary. goTool is the go command; "go" from PATH when empty.
func BuildPause(ctx context.Context, goTool, arch string) ([]byte, error) {
	if goTool == "" {
		p, err := exec.LookPath("go")
		if err != nil {
			return nil, fmt.Errorf("build pause: the Go toolchain is needed to compile it: %w; put go on PATH or set Options.GoTool (or Options.PauseBinary)", err)
		}
		goTool = p
	}
	dir, err := os.MkdirTemp("", "vordr-pause-")
	if err != nil {
		return nil, fmt.Errorf("build pause: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), pauseSource, 0o644); err != nil {
		return nil, fmt.Errorf("build pause: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(pauseGoMod), 0o644); err != nil {
		return nil, fmt.Errorf("build pause: %w", err)
	}

	out := filepath.Join(dir, "pause")
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch,
		// The caller's module settings must not leak into this standalone
		// build, nor may it download a different toolchain.
		"GOFLAGS=", "GOWORK=off", "GO111MODULE=on", "GOTOOLCHAIN=local",
	)
	if os.Getenv("GOCACHE") == "" && os.Getenv("HOME") == "" && os.Getenv("XDG_CACHE_HOME") == "" {
		// go refuses to build without a cache, and daemons often run
		// without HOME.
		cmd.Env = append(cmd.Env, "GOCACHE="+filepath.Join(dir, "cache"))
	}
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build pause with %s: %w: %s", goTool, err, bytes.TrimSpace(output.Bytes()))
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("build pause: %w", err)
	}
	return bin, nil
}

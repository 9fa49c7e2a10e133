//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/internal/helper"
	"github.com/vordr-project/vordr/monitor"
	"github.com/vordr-project/vordr/plugin/verifier"
)

// installCheck is one check of the node's installation. Required ones make
// doctor exit 1 when they fail; the others are advice.
type installCheck struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Required bool   `json:"required"`
	Detail   string `json:"detail"`
}

// checkInstall checks what the runtime needs beyond the kernel: the
// binaries containerd runs, their versions, the runtime config and the
// policies it names, containerd's configuration for vordr, the verifier's.
func checkInstall(confD string) []installCheck {
	var out []installCheck
	add := func(name string, required bool, err error, ok string) {
		c := installCheck{Name: name, OK: err == nil, Required: required, Detail: ok}
		if err != nil {
			c.Detail = err.Error()
		}
		out = append(out, c)
	}
	run := func(bin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return strings.TrimSpace(string(b)), err
	}

	shim, err := exec.LookPath("containerd-shim-vordr-v1")
	if err != nil {
		err = fmt.Errorf("containerd-shim-vordr-v1 is not on PATH: containerd cannot start io.containerd.vordr.v1 (make install, or vordr-node.sh)")
	}
	add("shim", true, err, shim)
	helperPath := helper.Find(shim)
	helperErr := error(nil)
	if helperPath == "" {
		helperErr = fmt.Errorf("vordr-verifier is neither beside the shim, nor in ../libexec/vordr/image-verifier, nor on PATH: the gate refuses sigstore evidence and alert webhooks are dropped (make install puts it in PREFIX/libexec/vordr/image-verifier)")
	}
	// Needed for sure when the runtime config posts alerts.
	webhook := false
	if c, err := config.Default(); err == nil && c.Events.Webhook != "" {
		webhook = true
	}
	add("shim-helper", webhook, helperErr, helperPath)

	if p, err := exec.LookPath("containerd"); err != nil {
		add("containerd", true, fmt.Errorf("containerd is not on PATH"), "")
	} else if v, err := run(p, "--version"); err != nil {
		add("containerd", true, fmt.Errorf("%s --version: %v", p, err), "")
	} else if m := regexp.MustCompile(`v?(\d+)\.(\d+)\.\d+`).FindStringSubmatch(v); m == nil || atoi(m[1]) < 2 {
		add("containerd", true, fmt.Errorf("%s: vordr needs containerd 2.x (1.x refuses shims built on the v2 API)", v), "")
	} else {
		add("containerd", true, nil, v)
	}

	if p, err := exec.LookPath("runc"); err != nil {
		add("runc", true, fmt.Errorf("runc is not on PATH (or set BinaryName in [runc] of the runtime config)"), "")
	} else if v, err := run(p, "--version"); err != nil {
		add("runc", true, fmt.Errorf("%s --version: %v", p, err), "")
	} else {
		first, _, _ := strings.Cut(v, "\n")
		if !strings.Contains(v, "seccomp") {
			add("runc", true, fmt.Errorf("%s: built without seccomp (strict and hardened need it)", first), "")
		} else {
			add("runc", true, nil, first)
		}
	}

	cfg, err := config.Default()
	if err != nil {
		add("runtime-config", true, err, "")
	} else {
		add("runtime-config", true, nil, fmt.Sprintf("%s: default profile %s, %d policies", cfg.Source, orBalanced(cfg.Profile), len(cfg.Policies)))
		for name, path := range cfg.Policies {
			if _, err := policy.Load(path); err != nil {
				add("policy "+name, true, err, "")
			} else {
				add("policy "+name, true, nil, path)
			}
		}
		if cfg.DefaultPolicy == "" && len(cfg.Policies) == 0 {
			where := cfg.Path
			if where == "" {
				where = config.DefaultPath
			}
			add("verification", false, fmt.Errorf("no verification policy: images run unverified (set default_policy and [policies] in %s)", where), "")
		}
	}

	// containerd's configuration for vordr: the drop-in, or the main file.
	found := ""
	for _, p := range append([]string{filepath.Join(confD, "vordr.toml")}, "/etc/containerd/config.toml") {
		if b, err := os.ReadFile(p); err == nil && (bytes.Contains(b, []byte("containerd-shim-vordr-v1")) || bytes.Contains(b, []byte("io.containerd.vordr.v1"))) {
			found = p
			break
		}
	}
	if found == "" {
		add("containerd-config", false, fmt.Errorf("no CRI handler for vordr in %s or /etc/containerd/config.toml (vordr config containerd --write %s); ctr and nerdctl still work", filepath.Join(confD, "vordr.toml"), filepath.Join(confD, "vordr.toml")), "")
	} else {
		add("containerd-config", false, nil, found)
	}

	vpath := os.Getenv(verifier.EnvConfig)
	if vpath == "" {
		vpath = verifier.DefaultConfigPath
	}
	if _, err := os.Stat(vpath); err == nil {
		if _, err := verifier.LoadConfig(vpath); err != nil {
			add("verifier-config", true, err, "")
		} else {
			add("verifier-config", true, nil, vpath)
		}
	}
	add("guard-set", false, nil, monitor.NodeSetStatus(monitor.Options{}))
	return out
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func orBalanced(p string) string {
	if p == "" {
		return "balanced"
	}
	return p
}

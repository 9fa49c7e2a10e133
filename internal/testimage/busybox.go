//go:build linux

package testimage

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultBusyboxPath is where Debian's busybox-static installs busybox.
const DefaultBusyboxPath = "/bin/busybox"

// DefaultBusyboxName is the name Busybox gives the image when
// Options.Name is empty.
const DefaultBusyboxName = "docker.io/vordr/busybox:test"

// Busybox users and groups: root and nobody, as tests need a privileged and
// an unprivileged identity.
const (
	busyboxPasswd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	busyboxGroup  = "root:x:0:\nnobody:x:65534:\n"
	// /etc/shadow exists so tests have a "sensitive file" to read.
	busyboxShadow = "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"
)

// Busybox builds a small image around a static busybox: /bin/busybox, a
// symlink for each applet (/bin/sh, /bin/ls, /usr/bin/wget, …) relative to
// /bin/busybox, /etc/passwd, /etc/group and /etc/shadow with root and nobody,
// /tmp (1777), /root, and /proc, /sys, /dev mount points. Defaults: name
// DefaultBusyboxName, Cmd ["/bin/sh"].
//
// The applet list is read from the binary itself (busybox --list-full), so
// the binary must run on this machine.
func Busybox(opts Options) (*Image, error) {
	bin := opts.BusyboxPath
	if bin == "" {
		bin = DefaultBusyboxPath
	}
	content, err := readStaticBinary(bin)
	if err != nil {
		return nil, err
	}
	applets, err := busyboxApplets(bin)
	if err != nil {
		return nil, err
	}

	r := rootfs{}
	base := []File{
		{Path: "/bin/busybox", Mode: 0o755, Content: content},
		{Path: "/etc/passwd", Mode: 0o644, Content: []byte(busyboxPasswd)},
		{Path: "/etc/group", Mode: 0o644, Content: []byte(busyboxGroup)},
		{Path: "/etc/shadow", Mode: 0o640, Content: []byte(busyboxShadow)},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "/root", Mode: fs.ModeDir | 0o700},
		{Path: "/proc", Mode: fs.ModeDir | 0o555},
		{Path: "/sys", Mode: fs.ModeDir | 0o555},
		{Path: "/dev", Mode: fs.ModeDir | 0o755},
	}
	for _, a := range applets {
		rel, err := filepath.Rel(path.Dir("/"+a), "/bin/busybox")
		if err != nil {
			return nil, err
		}
		base = append(base, File{Path: a, Mode: fs.ModeSymlink, Target: rel})
	}
	for _, f := range base {
		if err := r.add(f); err != nil {
			return nil, err
		}
	}

	if opts.Name == "" {
		opts.Name = DefaultBusyboxName
	}
	if opts.Cmd == nil && opts.Entrypoint == nil {
		opts.Cmd = []string{"/bin/sh"}
	}
	return build(r, opts)
}

// busyboxApplets returns the applet paths busybox installs, relative to /,
// without busybox itself.
func busyboxApplets(bin string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--list-full")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets (%s --list-full): %w: %s", bin, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var applets []string
	for _, line := range strings.Split(string(out), "\n") {
		a := strings.TrimPrefix(strings.TrimSpace(line), "/")
		// linuxrc is the initrd entry point and sits at the root; a container
		// has no use for it.
		if a == "" || a == "bin/busybox" || !strings.Contains(a, "/") {
			continue
		}
		applets = append(applets, a)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s --list-full listed no applets; is it busybox? Install Debian's busybox-static (make deps)", bin)
	}
	sort.Strings(applets)
	return applets, nil
}

// readStaticBinary reads a binary that must run without a dynamic loader: a
// test image has no libc, and a dynamic busybox fails there with a confusing
// "no such file or directory".
func readStaticBinary(bin string) ([]byte, error) {
	content, err := os.ReadFile(bin)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w; install Debian's busybox-static (make deps, or apt-get install -y busybox-static) or set Options.BusyboxPath", err)
	}
	f, err := elf.NewFile(bytes.NewReader(content))
	if err != nil {
		return nil, fmt.Errorf("%s is not an ELF binary: %w", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked and would not run in an image without libc; install Debian's busybox-static (make deps)", bin)
		}
	}
	return content, nil
}

//go:build linux

package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
)

func TestCheckUpper(t *testing.T) {
	allowed := []string{"/proc", "/dev", "/etc/resolv.conf", "/run/secrets/token", "/work"}
	for _, tc := range []struct {
		name  string
		setup func(dir string)
		want  string // "" = accepted
	}{
		{"empty", func(string) {}, ""},
		{"mount point dirs", func(d string) {
			os.MkdirAll(filepath.Join(d, "run/secrets/token"), 0o755)
			os.Mkdir(filepath.Join(d, "work"), 0o755)
		}, ""},
		{"mount point file", func(d string) {
			os.Mkdir(filepath.Join(d, "etc"), 0o755)
			os.WriteFile(filepath.Join(d, "etc/resolv.conf"), nil, 0o644)
		}, ""},
		{"planted file", func(d string) {
			os.Mkdir(filepath.Join(d, "etc"), 0o755)
			os.WriteFile(filepath.Join(d, "etc/passwd"), []byte("x"), 0o644)
		}, "/etc/passwd"},
		{"non-empty mount point file", func(d string) {
			os.Mkdir(filepath.Join(d, "etc"), 0o755)
			os.WriteFile(filepath.Join(d, "etc/resolv.conf"), []byte("x"), 0o644)
		}, "/etc/resolv.conf"},
		{"planted in a mount point dir", func(d string) {
			os.MkdirAll(filepath.Join(d, "work"), 0o755)
			os.WriteFile(filepath.Join(d, "work/x"), nil, 0o755)
		}, "/work/x"},
		{"symlink at a mount point", func(d string) { os.Symlink("/etc/shadow", filepath.Join(d, "work")) }, "/work"},
		{"copy-up of an image directory", func(d string) { os.Mkdir(filepath.Join(d, "bin"), 0o755) }, "/bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(dir)
			err := CheckUpper(dir, allowed)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckUpper = %v, want a refusal naming %s", err, tc.want)
			}
		})
	}
}

func TestParseMounts(t *testing.T) {
	for _, tc := range []struct {
		m      mount.Mount
		lowers int
		upper  bool
		want   string
	}{
		{mount.Mount{Type: "overlay", Options: []string{"index=off", "workdir=/w", "upperdir=/u", "lowerdir=/a:/b"}}, 2, true, ""},
		{mount.Mount{Type: "bind", Source: "/l", Options: []string{"ro", "rbind"}}, 1, false, ""},
		{mount.Mount{Type: "bind", Source: "/l", Options: []string{"rw", "rbind"}}, 0, false, "writable bind"},
		{mount.Mount{Type: "overlay", Options: []string{"upperdir=/u"}}, 0, false, "no lowerdir"},
		{mount.Mount{Type: "overlay", Options: []string{"lowerdir=/a", "uidmap=0:1000:1"}}, 0, false, "remaps"},
		{mount.Mount{Type: "overlay", Options: []string{"lowerdir=/a", "frobnicate"}}, 0, false, "does not know"},
		{mount.Mount{Type: "overlay", Options: []string{"lowerdir=rel"}}, 0, false, "relative"},
		{mount.Mount{Type: "ext4", Source: "/dev/sda"}, 0, false, `"ext4" mount`},
		{mount.Mount{Type: "overlay", Options: []string{"lowerdir=/a", "index=off,lowerdir=/forged"}}, 0, false, "separator"},
		{mount.Mount{Type: "overlay", Options: []string{"lowerdir=/a", "lowerdir=/forged"}}, 0, false, "twice"},
		{mount.Mount{Type: "overlay", Options: []string{"lowerdir=/a", "userxattr"}}, 0, false, "userxattr"},
		{mount.Mount{Type: "overlay", Options: []string{"lowerdir=/a", "redirect_dir=on"}}, 0, false, "redirect_dir"},
		{mount.Mount{Type: "overlay", Options: []string{"lowerdir=/a", "metacopy=on"}}, 0, false, "metacopy"},
		{mount.Mount{Type: "bind", Source: "/l", Options: []string{"ro", "rbind", "rw"}}, 0, false, "writable bind"},
		{mount.Mount{Type: "overlay", Options: []string{`lowerdir=/a\:/b`}}, 0, false, "separator"},
	} {
		r, err := parse(tc.m)
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parse(%+v) = %v, want %q", tc.m, err, tc.want)
			}
			continue
		}
		if err != nil || len(r.Lowers) != tc.lowers || (r.Upper != "") != tc.upper {
			t.Errorf("parse(%+v) = %+v, %v", tc.m, r, err)
		}
	}
}

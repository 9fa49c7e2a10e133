//go:build linux

package monitor

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// sameNamespace reports whether two namespace files are the same namespace.
// An unreadable path counts as the host's: refusing is the safe answer.
func sameNamespace(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return true
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

func isSocket(p string) bool {
	var st unix.Stat_t
	return unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK
}

func isDevice(p string) bool {
	var st unix.Stat_t
	if unix.Stat(p, &st) != nil {
		return false
	}
	t := st.Mode & unix.S_IFMT
	return t == unix.S_IFCHR || t == unix.S_IFBLK
}

func evalSymlinks(p string) (string, error) { return filepath.EvalSymlinks(p) }

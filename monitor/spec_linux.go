//go:build linux

package monitor

import (
	"fmt"
	"path/filepath"
	"strings"

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

// pinSource records the inode of a bind source, reached without following
// any symlink (the caller resolved them already; one appearing now is a
// swap).
func pinSource(src, dst string) (PinnedSource, error) {
	resolved, err := filepath.EvalSymlinks(src)
	if err != nil {
		return PinnedSource{}, err
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, resolved, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return PinnedSource{}, fmt.Errorf("open the bind source without following symlinks: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return PinnedSource{}, err
	}
	return PinnedSource{Destination: dst, Source: resolved, Dev: st.Dev, Ino: st.Ino}, nil
}

// VerifyPinned checks, through the container's root (its init is stopped
// in runc init), that each bind mount shows the inode that was checked.
func VerifyPinned(initPID int, pins []PinnedSource) error {
	if len(pins) == 0 {
		return nil
	}
	root, err := unix.Open(fmt.Sprintf("/proc/%d/root", initPID), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the container's root: %w", err)
	}
	defer unix.Close(root)
	for _, p := range pins {
		fd, err := unix.Openat2(root, strings.TrimPrefix(filepath.Clean(p.Destination), "/"), &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != nil {
			return fmt.Errorf("bind mount at %s: %w", p.Destination, err)
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err != nil {
			return err
		}
		if st.Dev != p.Dev || st.Ino != p.Ino {
			return fmt.Errorf("the bind mount at %s is not the source %s that was checked (swapped between the check and the mount): %w", p.Destination, p.Source, ErrSpecRefused)
		}
	}
	return nil
}

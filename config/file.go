package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/containerd/errdefs"
)

// MaxFileSize bounds every file the operator's configuration names
// (runtime config, profiles, policies): the shim runs as root and must not
// be made to read without end.
const MaxFileSize = 1 << 20

// ReadFile reads a file named by the operator's configuration. It opens
// regular files only: a FIFO would hang the shim (so the open never blocks),
// a device like /dev/zero would grow it without bound, and a file that group
// or others may write is not the operator's alone, so its content cannot be
// trusted to decide a container's guard (docs/threat-model.md). Symlinks are
// followed (Kubernetes ConfigMap volumes are symlinks), but the file they
// lead to must pass the same checks.
func ReadFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s); vordr reads its configuration only from regular files: %w", path, fi.Mode().Type(), errdefs.ErrInvalidArgument)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s is writable by group or others (mode %04o); only the node operator may write vordr's configuration: chmod go-w %s: %w", path, fi.Mode().Perm(), path, errdefs.ErrPermissionDenied)
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d a vordr configuration file may have: %w", path, fi.Size(), MaxFileSize, errdefs.ErrInvalidArgument)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s grew past %d bytes while being read: %w", path, MaxFileSize, errdefs.ErrInvalidArgument)
	}
	return data, nil
}

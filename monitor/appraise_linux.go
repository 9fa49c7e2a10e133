//go:build linux

package monitor

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	pathpkg "path"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ImageExecutables is the exec appraisal set of a container: the sha256 of
// every executable file of its signed image (hex, no prefix). Under a
// profile that denies drift, an exec is allowed only when the file's bytes
// are one of these (or the profile's exec.allow names them).
type ImageExecutables struct {
	// Digests are hex sha256 values.
	Digests map[string]struct{}
	// Source says what the set was derived from, for events.
	Source string
}

// appraiser judges execs by content, caching verdicts by the file's
// identity and change state so a repeated exec costs a stat.
type appraiser struct {
	set   *ImageExecutables
	allow []string
	mu    sync.Mutex
	cache map[fileState]appraisal
	buf   []byte
}

// fileState identifies a file's bytes as far as the kernel can tell without
// reading them: any write, truncate, chmod or rename changes ctime.
type fileState struct {
	dev, ino    uint64
	ctime, mtim int64
	size        int64
}

type appraisal struct {
	digest  string
	inImage bool
	allowed bool // by the image or by the profile's exec.allow
}

const appraiseCacheMax = 4096

func newAppraiser(set *ImageExecutables, allow []string) *appraiser {
	return &appraiser{set: set, allow: allow, cache: map[fileState]appraisal{}, buf: make([]byte, 1<<20)}
}

// judge appraises the file open on fd; path gives its path in the container
// (the key of path allowances), read only when the file is not cached.
func (a *appraiser) judge(fd int, st *unix.Stat_t, path func() string) (appraisal, error) {
	k := fileState{st.Dev, st.Ino, st.Ctim.Nano(), st.Mtim.Nano(), st.Size}
	a.mu.Lock()
	defer a.mu.Unlock()
	if v, ok := a.cache[k]; ok {
		return v, nil
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(fdReaderAt(fd), 0, st.Size), a.buf); err != nil {
		return appraisal{}, err
	}
	d := hex.EncodeToString(h.Sum(nil))
	_, in := a.set.Digests[d]
	v := appraisal{digest: "sha256:" + d, inImage: in, allowed: in || a.allowed("sha256:"+d, path())}
	if len(a.cache) >= appraiseCacheMax {
		clear(a.cache) // bounded; a miss only costs a hash
	}
	a.cache[k] = v
	return v, nil
}

func (a *appraiser) allowed(digest, p string) bool {
	for _, x := range a.allow {
		switch {
		case x == digest, x == p:
			return true
		case strings.HasSuffix(x, "/*") && pathpkg.Dir(p) == strings.TrimSuffix(x, "/*"):
			return true
		}
	}
	return false
}

// fdReaderAt reads a file descriptor with pread, leaving its offset alone.
type fdReaderAt int

func (f fdReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := unix.Pread(int(f), b, off)
	if err != nil {
		return 0, err
	}
	if n == 0 && len(b) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

//go:build linux

package monitor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fileGuard enforces and observes file operations with fanotify, the
// strongest file hook this machine kind offers (no BPF-LSM, no fentry):
//
//   - exec of a file not in the image: FAN_OPEN_EXEC_PERM marks on every
//     mount of the container's own mount namespace. The kernel holds the
//     execve until we answer; a file whose ctime is at or after the attach
//     time was created or changed after the container started, so it is
//     not part of the image and is denied (EPERM) or allowed and reported.
//   - sensitive files: inode marks on the container's copies of them
//     (FAN_OPEN_PERM to deny, FAN_OPEN to observe). Inode marks are
//     only placed on files that are not the host's own file at the same
//     path, so the host is never affected.
//
// Marks live as long as the fanotify descriptor: closing it removes all of
// them, and the kernel allows any open still waiting for an answer.
type fileGuard struct {
	f         *os.File
	threshold int64 // ns since epoch; exec of files with ctime >= this is drift
	execDeny  bool
	execMarks int
	files     map[devIno]string   // marked sensitive file → its path in the container
	paths     map[string]struct{} // every marked name
	fileDeny  bool
	emit      func(Event, bool) // (event, is-permission-decision)
	appraise  *appraiser        // nil: the ctime drift rule
	prefixes  []string          // host paths of the container root, stripped from evidence
	events    atomic.Uint64
	wg        sync.WaitGroup
}

type devIno struct{ dev, ino uint64 }

type fileGuardConfig struct {
	initPID   int
	threshold int64
	execMarks bool // place exec permission marks (deny or report drift)
	execDeny  bool
	sensitive []string
	fileMask  uint64 // FAN_OPEN or FAN_OPEN_PERM; 0: none
	rootfs    string
	appraise  *appraiser
}

// newFileGuard sets up the fanotify group and its marks. It returns a guard
// even when some marks could not be placed; notes says what is in force.
func newFileGuard(c fileGuardConfig) (*fileGuard, map[string]string, error) {
	notes := map[string]string{}
	// FAN_UNLIMITED_QUEUE: a permission event that cannot be queued is
	// allowed by the kernel, so a bounded queue is a bypass (block enough
	// tasks, then exec).
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|unix.FAN_UNLIMITED_QUEUE, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("fanotify_init (needs CAP_SYS_ADMIN and CONFIG_FANOTIFY_ACCESS_PERMISSIONS): %w", err)
	}
	g := &fileGuard{
		f:         os.NewFile(uintptr(fd), "fanotify"),
		threshold: c.threshold,
		execDeny:  c.execDeny,
		files:     map[devIno]string{},
		paths:     map[string]struct{}{},
		fileDeny:  c.fileMask == unix.FAN_OPEN_PERM,
		appraise:  c.appraise,
	}
	root := "/proc/" + strconv.Itoa(c.initPID) + "/root"
	if r, err := os.Readlink(root); err == nil && r != "/" {
		g.prefixes = append(g.prefixes, r)
	}
	if c.rootfs != "" && c.rootfs != "/" {
		g.prefixes = append(g.prefixes, filepath.Clean(c.rootfs))
	}
	if c.execMarks {
		n, err := g.markMounts(c.initPID, root)
		g.execMarks = n
		if err != nil {
			notes["exec"] = err.Error()
		}
	}
	if c.fileMask != 0 {
		present := 0
		var linked []devIno
		for _, p := range c.sensitive {
			ok, st, err := g.markFile(root, p, c.fileMask)
			if err != nil {
				notes["files:"+p] = err.Error()
			}
			if ok {
				present++
				if st.Nlink > 1 {
					linked = append(linked, devIno{st.Dev, st.Ino})
				}
			}
		}
		notes["files.marked"] = strconv.Itoa(present)
		if len(linked) > 0 {
			// Other names of a protected inode (hard links shipped in the
			// image): overlayfs gives each name of a lower-layer file its
			// own inode, so each needs its own mark.
			n, err := g.markOtherNames(root, linked, c.fileMask)
			notes["files.links"] = strconv.Itoa(n)
			if err != nil {
				notes["files:links"] = err.Error()
			}
		}
	}
	return g, notes, nil
}

// markMounts places FAN_OPEN_EXEC_PERM on every mount of the container's
// mount namespace. A mount mark covers only that mount, and these mounts
// exist only in the container's namespace, so nobody else is affected; it
// refuses outright when the process shares our mount namespace.
func (g *fileGuard) markMounts(pid int, root string) (int, error) {
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	theirs, err2 := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read mount namespaces: %v %v", err1, err2)
	}
	if self == theirs {
		return 0, errors.New("the container shares the host's mount namespace: exec marks would affect the host")
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		return 0, fmt.Errorf("read container mounts: %w", err)
	}
	defer f.Close()
	var (
		n     int
		fails []string
		sc    = bufio.NewScanner(f)
	)
	// The mount holding the root directory first: mountinfo omits it when
	// the root is a subdirectory of a mount (chroot) rather than its root.
	if err := fanotifyMark(int(g.f.Fd()), unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, unix.FAN_OPEN_EXEC_PERM, unix.AT_FDCWD, root); err == nil {
		n++
	} else {
		fails = append(fails, "/: "+err.Error())
	}
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == "/" {
			continue // marked above
		}
		err := fanotifyMark(int(g.f.Fd()), unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, unix.FAN_OPEN_EXEC_PERM, unix.AT_FDCWD, filepath.Join(root, mp))
		if err != nil {
			fails = append(fails, mp+": "+err.Error())
			continue
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("no mount could be marked: %s", strings.Join(fails, "; "))
	}
	if len(fails) > 0 {
		return n, fmt.Errorf("unmarked mounts: %s", strings.Join(fails, "; "))
	}
	return n, nil
}

// markOtherNames walks the container's root filesystem (not the mounts on
// it) for other names of the given inodes and marks them. It runs only
// when a protected file has more than one link, so ordinary images pay
// nothing.
func (g *fileGuard) markOtherNames(root string, ids []devIno, mask uint64) (int, error) {
	want := map[devIno]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var rootSt unix.Stat_t
	if err := unix.Stat(root+"/", &rootSt); err != nil {
		return 0, err
	}
	const maxEntries = 500000 // bound the walk on huge images
	n, seen := 0, 0
	var errs []string
	err := filepath.WalkDir(root+"/", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable corners: keep going
		}
		if seen++; seen > maxEntries {
			return fmt.Errorf("stopped after %d entries", maxEntries)
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		if d.IsDir() {
			if st.Dev != rootSt.Dev {
				return filepath.SkipDir // another mount (/proc, /sys, volumes)
			}
			return nil
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink < 2 || !want[devIno{st.Dev, st.Ino}] {
			return nil
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		if _, known := g.paths[rel]; known {
			return nil
		}
		ok, _, err := g.markFile(root, rel, mask)
		if err != nil {
			errs = append(errs, rel+": "+err.Error())
		}
		if ok {
			n++
		}
		return nil
	})
	if err == nil && len(errs) > 0 {
		err = errors.New(strings.Join(errs, "; "))
	}
	return n, err
}

// markFile places an inode mark on the container's copy of path, resolved
// inside the container's root (symlinks cannot point the mark at a host
// file). It reports false when the file does not exist in the container,
// and the file's stat (its link count says whether it has other names).
func (g *fileGuard) markFile(root, path string, mask uint64) (bool, unix.Stat_t, error) {
	var st unix.Stat_t
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, st, fmt.Errorf("open container root: %w", err)
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, strings.TrimPrefix(path, "/"), &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return false, st, nil
		}
		return false, st, err
	}
	defer unix.Close(fd)
	var host unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, st, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, st, nil // masked paths (/dev/null binds), directories: not ours to mark
	}
	if unix.Stat(path, &host) == nil && host.Dev == st.Dev && host.Ino == st.Ino {
		return false, st, errors.New("is the host's own file (rootfs shared with the host): not marked")
	}
	// fanotify_mark does not take O_PATH descriptors; the magic link of
	// the already-resolved descriptor names the same inode.
	if err := fanotifyMark(int(g.f.Fd()), unix.FAN_MARK_ADD, mask, unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd)); err != nil {
		return false, st, fmt.Errorf("fanotify_mark: %w", err)
	}
	if _, ok := g.files[devIno{st.Dev, st.Ino}]; !ok {
		g.files[devIno{st.Dev, st.Ino}] = path
	}
	g.paths[path] = struct{}{}
	return true, st, nil
}

// fanotifyMark is fanotify_mark(2) with a NULL pathname when path is ""
// (mark dirfd itself), which x/sys/unix cannot express.
func fanotifyMark(fd int, flags uint, mask uint64, dirfd int, path string) error {
	var p *byte
	if path != "" {
		var err error
		if p, err = unix.BytePtrFromString(path); err != nil {
			return err
		}
	}
	_, _, e := unix.Syscall6(unix.SYS_FANOTIFY_MARK, uintptr(fd), uintptr(flags), uintptr(mask), uintptr(dirfd), uintptr(unsafe.Pointer(p)), 0)
	if e != 0 {
		return e
	}
	return nil
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (g *fileGuard) start(emit func(Event, bool)) {
	g.emit = emit
	g.wg.Add(1)
	go g.loop()
}

// close removes every mark (by closing the group) and waits for the loop.
func (g *fileGuard) close() {
	g.f.Close()
	g.wg.Wait()
}

func (g *fileGuard) loop() {
	defer g.wg.Done()
	buf := make([]byte, 16*1024)
	for {
		n, err := g.f.Read(buf)
		if err != nil {
			return // closed
		}
		for off := 0; off+int(unsafe.Sizeof(unix.FanotifyEventMetadata{})) <= n; {
			md := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
			if md.Event_len < uint32(unsafe.Sizeof(unix.FanotifyEventMetadata{})) || off+int(md.Event_len) > n {
				break
			}
			off += int(md.Event_len)
			if md.Vers != unix.FANOTIFY_METADATA_VERSION || md.Fd < 0 {
				continue // FAN_Q_OVERFLOW has no fd
			}
			g.handle(md)
		}
	}
}

func (g *fileGuard) handle(md *unix.FanotifyEventMetadata) {
	fd := int(md.Fd)
	defer unix.Close(fd)
	g.events.Add(1)
	var st unix.Stat_t
	statErr := unix.Fstat(fd, &st)
	var p string
	path := func() string {
		if p == "" {
			p, _ = os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		}
		return p
	}
	ev := Event{Time: time.Now(), PID: int(md.Pid), Mechanism: "fanotify"}
	switch {
	case md.Mask&unix.FAN_OPEN_EXEC_PERM != 0 && g.appraise != nil:
		// Exec appraisal: the bytes must be an executable of the signed
		// image, whatever the path (bind mounts, volumes, planted files).
		// The hot path (a cached, in-image file) is one fstat and a map
		// lookup; the path is read only when it matters.
		var v appraisal
		err := statErr
		if err == nil {
			v, err = g.appraise.judge(fd, &st, func() string { return g.containerPath(path()) })
		}
		allow := (err == nil && v.allowed) || !g.execDeny
		g.respond(fd, allow)
		if err == nil && v.inImage {
			return // the BPF exec event reports it
		}
		cp := g.containerPath(path())
		ev.Kind, ev.Path, ev.Drift = KindExec, cp, !v.allowed
		ev.FileCtime, ev.Inode = time.Unix(0, st.Ctim.Nano()), st.Ino
		ev.Mechanism = "fanotify:FAN_OPEN_EXEC_PERM"
		ev.Digest = v.digest
		switch {
		case err != nil:
			ev.Appraisal = "could not be read to appraise: " + err.Error()
		case v.allowed:
			ev.Appraisal = "not in the signed image; allowed by the profile's exec.allow"
		default:
			ev.Appraisal = "not an executable of the signed image (" + g.appraise.set.Source + ")"
		}
		ev.Verdict = Allowed
		if !allow {
			ev.Verdict = Denied
		}
		g.emit(ev, true)
	case md.Mask&unix.FAN_OPEN_EXEC_PERM != 0:
		ctime := st.Ctim.Nano()
		drift := statErr != nil || ctime >= g.threshold
		allow := !(drift && g.execDeny)
		g.respond(fd, allow)
		if !drift {
			return // in the image: the BPF exec event reports it
		}
		ev.Kind, ev.Path, ev.Drift = KindExec, g.containerPath(path()), true
		ev.FileCtime, ev.Inode = time.Unix(0, ctime), st.Ino
		ev.Mechanism = "fanotify:FAN_OPEN_EXEC_PERM"
		ev.Verdict = Allowed
		if !allow {
			ev.Verdict = Denied
		}
		g.emit(ev, true)
	case md.Mask&(unix.FAN_OPEN_PERM|unix.FAN_OPEN) != 0:
		perm := md.Mask&unix.FAN_OPEN_PERM != 0
		if perm {
			g.respond(fd, !g.fileDeny)
		}
		ev.Kind, ev.Verdict = KindOpen, Allowed
		// The name opened, when it is one we marked (a hard link of a
		// protected file shares its identity), else the protected name.
		ev.Path = g.containerPath(path())
		if _, ok := g.paths[ev.Path]; !ok {
			if name := g.files[devIno{st.Dev, st.Ino}]; name != "" {
				ev.Path = name
			}
		}
		ev.Mechanism = "fanotify:FAN_OPEN"
		if perm {
			ev.Mechanism = "fanotify:FAN_OPEN_PERM"
			if g.fileDeny {
				ev.Verdict = Denied
			}
		}
		g.emit(ev, perm)
	default:
		if md.Mask&unix.FAN_ALL_PERM_EVENTS != 0 {
			g.respond(fd, true)
		}
	}
}

func (g *fileGuard) respond(fd int, allow bool) {
	r := unix.FanotifyResponse{Fd: int32(fd), Response: unix.FAN_ALLOW}
	if !allow {
		r.Response = unix.FAN_DENY
	}
	b := (*[unsafe.Sizeof(r)]byte)(unsafe.Pointer(&r))[:]
	for {
		_, err := g.f.Write(b)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// containerPath turns what readlink shows of an event's file into the path
// the container sees where it can; it is evidence, not an identity.
func (g *fileGuard) containerPath(p string) string {
	p = strings.TrimSuffix(p, " (deleted)")
	for _, pre := range g.prefixes {
		if rest, ok := strings.CutPrefix(p, pre); ok && strings.HasPrefix(rest, "/") {
			return rest
		}
	}
	return p
}

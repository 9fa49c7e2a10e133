//go:build linux

package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SeccompAgent makes seccomp denials visible. With it, ApplySpec turns the
// profile's denied syscalls into SCMP_ACT_NOTIFY and points runc at the
// agent's socket (linux.seccomp.listenerPath); runc hands the agent each
// container's notification descriptor at create. The agent answers every
// notification EPERM — the same result SCMP_ACT_ERRNO would give — and
// reports it to the container's guard as a KindSyscall event. Nothing but
// the denied syscalls reaches it, so it costs nothing otherwise.
//
// If the agent goes away the kernel fails those syscalls with ENOSYS: still
// denied. One agent serves every container of a shim; start it before runc
// create and close it after the last container is deleted.
type SeccompAgent struct {
	path  string
	ln    *net.UnixListener
	mu    sync.Mutex
	sinks map[string]func(Event)
	fds   map[int]string // notification descriptor → container id
	wg    sync.WaitGroup
	done  chan struct{}
	// stopR/stopW: a pipe whose write end Close closes, waking every
	// serve loop.
	stopR, stopW int

	unrouted atomic.Uint64
}

// StartSeccompAgent listens on path (a filesystem path or "@name" for an
// abstract socket). Only root peers are served.
func StartSeccompAgent(path string) (*SeccompAgent, error) {
	if path == "" {
		return nil, errors.New("seccomp agent: empty socket path")
	}
	if path[0] != '@' {
		os.Remove(path) // a leftover of a previous shim
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("seccomp agent: listen on %s: %w", path, err)
	}
	if path[0] != '@' {
		os.Chmod(path, 0o600)
	}
	a := &SeccompAgent{path: path, ln: ln, sinks: map[string]func(Event){}, fds: map[int]string{}, done: make(chan struct{})}
	// Close closes the pipe's write end: every serve loop, blocked in poll
	// with no timeout, sees its read end hang up and returns. No timer
	// wakes an idle shim.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		ln.Close()
		return nil, fmt.Errorf("seccomp agent: %w", err)
	}
	a.stopR, a.stopW = p[0], p[1]
	a.wg.Add(1)
	go a.accept()
	return a, nil
}

// Path is the socket path to put in linux.seccomp.listenerPath.
func (a *SeccompAgent) Path() string { return a.path }

// Close stops the agent and closes every notification descriptor.
func (a *SeccompAgent) Close() error {
	select {
	case <-a.done:
		return nil
	default:
	}
	close(a.done)
	err := a.ln.Close()
	// Each serve loop wakes on the pipe's hang-up and closes its own
	// descriptor (closing it here could race with a poll on a reused
	// descriptor number).
	unix.Close(a.stopW)
	a.wg.Wait()
	unix.Close(a.stopR)
	if a.path[0] != '@' {
		os.Remove(a.path)
	}
	return err
}

func (a *SeccompAgent) subscribe(id string, sink func(Event)) {
	a.mu.Lock()
	a.sinks[id] = sink
	a.mu.Unlock()
}

func (a *SeccompAgent) unsubscribe(id string) {
	a.mu.Lock()
	delete(a.sinks, id)
	a.mu.Unlock()
}

func (a *SeccompAgent) accept() {
	defer a.wg.Done()
	for {
		c, err := a.ln.AcceptUnix()
		if err != nil {
			return
		}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			defer c.Close()
			if err := a.receive(c); err != nil {
				a.unrouted.Add(1)
			}
		}()
	}
}

// receive reads runc's ContainerProcessState and the descriptor sent with it.
func (a *SeccompAgent) receive(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err != nil || cred.Uid != 0 {
		return errors.New("seccomp agent: peer is not root")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64*1024)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return err
	}
	var fds []int
	for _, m := range msgs {
		if f, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	var st specs.ContainerProcessState
	if err := json.Unmarshal(buf[:n], &st); err != nil || len(fds) == 0 {
		for _, f := range fds {
			unix.Close(f)
		}
		return fmt.Errorf("seccomp agent: bad message from runc: %v", err)
	}
	notifyFD := -1
	for i, name := range st.Fds {
		if name == specs.SeccompFdName && i < len(fds) {
			notifyFD = fds[i]
		} else if i < len(fds) {
			unix.Close(fds[i])
		}
	}
	if notifyFD < 0 {
		return errors.New("seccomp agent: no seccompFd in runc's message")
	}
	id := st.State.ID
	// runc exec brings another filter (and descriptor) for the same
	// container: each is served until its processes are gone.
	a.mu.Lock()
	a.fds[notifyFD] = id
	a.mu.Unlock()
	a.wg.Add(1)
	go a.serve(id, notifyFD)
	return nil
}

// Kernel ABI (include/uapi/linux/seccomp.h).
type seccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

func (a *SeccompAgent) serve(id string, fd int) {
	defer a.wg.Done()
	defer func() {
		a.mu.Lock()
		if _, ok := a.fds[fd]; ok {
			delete(a.fds, fd)
			unix.Close(fd)
		}
		a.mu.Unlock()
	}()
	for {
		select {
		case <-a.done:
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(a.stopR), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, -1)
		if err != nil && err != unix.EINTR {
			return
		}
		if n == 0 || pfd[1].Revents != 0 {
			continue // interrupted, or Close: done is closed, checked above
		}
		if pfd[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 && pfd[0].Revents&unix.POLLIN == 0 {
			return // every process of the filter is gone
		}
		var req seccompNotif
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); e != 0 {
			if e == unix.EINTR || e == unix.ENOENT {
				continue // the caller was interrupted or died meanwhile
			}
			return
		}
		resp := seccompNotifResp{ID: req.ID, Error: -int32(unix.EPERM)}
		unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
		a.report(id, &req)
	}
}

func (a *SeccompAgent) report(id string, req *seccompNotif) {
	name := syscallName(req.Data.Nr)
	e := Event{
		Time: time.Now(), Kind: KindSyscall, PID: int(req.Pid), Syscall: name,
		Verdict: Denied, Mechanism: "seccomp:SCMP_ACT_NOTIFY",
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(int(req.Pid)) + "/comm"); err == nil {
		e.Comm = string(b[:max(len(b)-1, 0)])
	}
	a.mu.Lock()
	sink := a.sinks[id]
	a.mu.Unlock()
	if sink == nil {
		a.unrouted.Add(1)
		return
	}
	sink(e)
}

// WithSeccompAgent makes ApplySpec use SCMP_ACT_NOTIFY for the profile's
// denied syscalls and point runc at the agent, so each denial is reported.
func WithSeccompAgent(a *SeccompAgent) SpecOption {
	return func(c *specConfig) {
		if a != nil {
			c.listener = a.path
		}
	}
}

func syscallName(nr int32) string {
	if n, ok := syscallNames[nr]; ok {
		return n
	}
	return "syscall#" + strconv.Itoa(int(nr))
}

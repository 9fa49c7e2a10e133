//go:build linux

package monitor

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PidnsSysctlArg is the first argument of the helper process that
// SetPidnsSysctl starts: a binary that embeds this package (the shim) must
// call PidnsSysctlMain when it sees it, before anything else.
const PidnsSysctlArg = "vordr-pidns-sysctl"

// pidnsSysctls are the sysctls that are per pid namespace and that a guard
// may set; vm.memfd_noexec (Linux ≥ 6.3) is the only one so far.
var pidnsSysctls = map[string]bool{"vm/memfd_noexec": true}

// SetPidnsSysctl sets a pid-namespaced sysctl in the pid namespace of pid.
// Such a sysctl applies to the namespace of the *writing* process, and a
// process never changes its own pid namespace, so a helper (helper, run
// with PidnsSysctlArg) is started inside the namespace and writes it. A
// pid namespace cannot lower what its parent set, and the workload lacks
// CAP_SYS_ADMIN in the host user namespace, so it cannot undo it.
//
// run starts and waits for the helper; nil means cmd.Run. A process that
// reaps every child (containerd's shims are subreapers with a reaper of
// their own) must pass its reaper's start-and-wait here.
func SetPidnsSysctl(pid int, name, value, helper string, run func(*exec.Cmd) error) error {
	if run == nil {
		run = (*exec.Cmd).Run
	}
	key := strings.ReplaceAll(name, ".", "/")
	if !pidnsSysctls[key] {
		return fmt.Errorf("%s is not a pid-namespaced sysctl vordr sets", name)
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return fmt.Errorf("open pid namespace of %d: %w", pid, err)
	}
	defer ns.Close()
	// Never the host's: the setting would apply to every process on it.
	// The caller (the shim) runs in the host's pid namespace.
	var theirs, self unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &theirs); err != nil {
		return err
	}
	if err := unix.Stat("/proc/self/ns/pid", &self); err != nil {
		return err
	}
	if theirs.Dev == self.Dev && theirs.Ino == self.Ino {
		return fmt.Errorf("process %d shares the host's pid namespace: %s would apply to the whole host", pid, name)
	}
	errc := make(chan error, 1)
	go func() {
		// setns(CLONE_NEWPID) changes the namespace this thread's children
		// are born in. The thread is never unlocked, so the Go runtime
		// retires it when this goroutine ends instead of reusing it.
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWPID); err != nil {
			errc <- fmt.Errorf("setns pid: %w", err)
			return
		}
		var out strings.Builder
		cmd := exec.Command(helper, PidnsSysctlArg, key, value)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := run(cmd)
		if err != nil {
			err = fmt.Errorf("%s %s: %w: %s", filepath.Base(helper), PidnsSysctlArg, err, strings.TrimSpace(out.String()))
		}
		errc <- err
	}()
	return <-errc
}

// PidnsSysctlMain is the helper's main: args are the sysctl (as a path under
// /proc/sys) and its value. It returns the exit code.
func PidnsSysctlMain(args []string) int {
	if len(args) != 2 || !pidnsSysctls[args[0]] {
		fmt.Fprintln(os.Stderr, "usage:", PidnsSysctlArg, "vm/memfd_noexec VALUE")
		return 2
	}
	if _, err := strconv.Atoi(args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "value must be a number")
		return 2
	}
	if err := os.WriteFile(filepath.Join("/proc/sys", args[0]), []byte(args[1]), 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

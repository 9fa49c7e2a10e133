//go:build linux

// Command attack is a workload that tries, from inside a container, what an
// attacker would: each subcommand prints one word on success (the tests look
// for it) or the error and exits 1. It is built static and shipped in the
// integration tests' busybox image as /bin/vordr-attack, so it is part of the
// image itself: what it does is what any code in the image could do.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: vordr-attack mmapexec FILE | memfd-exec | execveat FILE | unshare | open-write FILE | connect-abstract NAME | procmem PID"))
	}
	arg := func(i int) string {
		if len(os.Args) <= i {
			fail(fmt.Errorf("%s: missing argument", os.Args[1]))
		}
		return os.Args[i]
	}
	switch os.Args[1] {
	case "mmapexec":
		// What ld.so does with the program it loads: map it executable.
		f, err := os.Open(arg(2))
		check(err)
		_, err = unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
		check(err)
		ok("MAPPED")
	case "memfd-exec":
		// Fileless execution: copy a program into an anonymous file and
		// execute it through /proc/self/fd.
		fd, err := unix.MemfdCreate("x", 0)
		check(err)
		src, err := os.Open("/bin/busybox")
		check(err)
		_, err = io.Copy(os.NewFile(uintptr(fd), "memfd"), src)
		check(err)
		err = unix.Exec("/proc/self/fd/"+strconv.Itoa(fd), []string{"echo", "FILELESS"}, nil)
		check(err)
	case "execveat":
		fd, err := unix.Open(arg(2), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		check(err)
		check(execveat(fd, []string{"echo", "EXECVEAT"}))
	case "unshare":
		// A new user and mount namespace: root over a private mount table.
		check(unix.Unshare(unix.CLONE_NEWUSER | unix.CLONE_NEWNS))
		ok("UNSHARED")
	case "unshare-mount":
		check(unix.Unshare(unix.CLONE_NEWNS))
		ok("UNSHARED")
	case "open-write":
		// Opening for writing is the test; nothing is written.
		f, err := os.OpenFile(arg(2), os.O_WRONLY, 0)
		check(err)
		f.Close()
		ok("OPENED")
	case "connect-abstract":
		c, err := net.Dial("unix", "@"+arg(2))
		check(err)
		c.Close()
		ok("CONNECTED")
	case "procmem":
		f, err := os.Open("/proc/" + arg(2) + "/mem")
		check(err)
		f.Close()
		ok("OPENED")
	case "noop":
		ok("NOOP")
	case "storm":
		// Benchmarks: fork+exec of a program n times; prints milliseconds.
		n, err := strconv.Atoi(arg(2))
		check(err)
		start := time.Now()
		for i := 0; i < n; i++ {
			check(exec.Command(arg(3), os.Args[4:]...).Run())
		}
		fmt.Printf("STORM %.3f\n", float64(time.Since(start).Microseconds())/1000)
	case "firstexec":
		// The first and the second exec of the same file, in microseconds.
		var d [2]time.Duration
		for i := range d {
			start := time.Now()
			_ = exec.Command(arg(2), "noop").Run()
			d[i] = time.Since(start)
		}
		fmt.Printf("FIRSTEXEC %d %d\n", d[0].Microseconds(), d[1].Microseconds())
	case "connstorm":
		// n TCP connects to a loopback listener (accepted and closed);
		// prints milliseconds.
		n, err := strconv.Atoi(arg(2))
		check(err)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		check(err)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		addr := ln.Addr().String()
		start := time.Now()
		for i := 0; i < n; i++ {
			c, err := net.Dial("tcp", addr)
			check(err)
			c.Close()
		}
		fmt.Printf("CONNSTORM %.3f\n", float64(time.Since(start).Microseconds())/1000)
	case "openstorm":
		n, err := strconv.Atoi(arg(2))
		check(err)
		start := time.Now()
		for i := 0; i < n; i++ {
			f, err := os.Open(arg(3))
			check(err)
			f.Close()
		}
		fmt.Printf("OPENSTORM %.3f\n", float64(time.Since(start).Microseconds())/1000)
	default:
		fail(fmt.Errorf("unknown subcommand %q", os.Args[1]))
	}
}

// execveat runs the file behind fd (AT_EMPTY_PATH): an exec with no path.
func execveat(fd int, argv []string) error {
	empty, err := unix.BytePtrFromString("")
	if err != nil {
		return err
	}
	args := make([]*byte, 0, len(argv)+1)
	for _, a := range argv {
		p, err := unix.BytePtrFromString(a)
		if err != nil {
			return err
		}
		args = append(args, p)
	}
	args = append(args, nil)
	env := []*byte{nil}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&args[0])), uintptr(unsafe.Pointer(&env[0])), unix.AT_EMPTY_PATH, 0)
	return errno
}

func ok(word string) {
	fmt.Println(word)
	os.Exit(0)
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Println("FAILED:", err)
	os.Exit(1)
}

//go:build linux

// Command pause is the sandbox process of a Kubernetes pod in vordr's test
// pause image, doing what Kubernetes' pause does: it holds the pod's
// namespaces, reaps zombies (as PID 1 of a shared PID namespace it inherits
// every orphan), and exits 0 on SIGINT or SIGTERM.
//
// It uses only the standard library: testimage.Pause compiles this file on
// its own, outside the vordr module.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (vordr test image)")
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "Warning: pause should be the first process")
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	// Children that exited before Notify took effect sent a SIGCHLD nobody
	// saw; reap them now.
	reap()
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "Shutting down, got signal: %v\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child. SIGCHLDs coalesce, so one signal may
// stand for many children: loop until none is left to wait for.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}

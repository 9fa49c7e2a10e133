// Command vordr packs, signs, verifies and imports .ctp bundles, and explains
// what the io.containerd.vordr.v1 runtime enforces.
package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/version"
)

// commands is filled by the init functions of the files next to this one, one
// file per command group (ctp.go, profile.go, …), so each group stays separate.
var commands []*cli.Command

func main() {
	app := newApp()
	if err := app.Run(interspersed(app, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "vordr:", err)
		os.Exit(3)
	}
}

func newApp() *cli.App {
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	return &cli.App{
		Name:     "vordr",
		Usage:    "verified workloads under per-container eBPF guard for containerd",
		Version:  version.Version,
		Commands: commands,
		// `vordr completion bash|zsh` scripts ask the program for words.
		EnableBashCompletion: true,
		// Commands choose their own exit codes through cli.Exit; a plain error is
		// a usage or I/O problem.
		ExitErrHandler: func(c *cli.Context, err error) {
			if err == nil {
				return
			}
			if ec, ok := err.(cli.ExitCoder); ok {
				if msg := ec.Error(); msg != "" {
					fmt.Fprintln(os.Stderr, "vordr:", msg)
				}
				os.Exit(ec.ExitCode())
			}
			fmt.Fprintln(os.Stderr, "vordr:", err)
			os.Exit(3)
		},
	}
}

//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/monitor"
)

func init() { commands = append(commands, doctorCommand) }

var doctorCommand = &cli.Command{
	Name:  "doctor",
	Usage: "probe this kernel and say which mechanism guards what (exit 1 if containers cannot be guarded)",
	Description: "Loads vordr's eBPF programs without attaching or pinning them, tries BPF-LSM, fentry,\n" +
		"fanotify permission events, seccomp and Landlock, and prints the mechanism the runtime\n" +
		"uses for each action. Run it as root: as another user every probe fails.",
	Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"}},
	Action: func(c *cli.Context) error {
		caps := monitor.Probe()
		if c.Bool("json") {
			e := json.NewEncoder(c.App.Writer)
			e.SetIndent("", "  ")
			if err := e.Encode(caps); err != nil {
				return err
			}
		} else {
			w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "kernel %s, root %v\n\n", caps.Kernel, caps.Root)
			fmt.Fprintln(w, "CHECK\tRESULT\tDETAIL")
			for _, ch := range caps.Checks {
				res := "ok"
				if !ch.OK {
					res = "no"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", ch.Name, res, ch.Detail)
			}
			fmt.Fprintln(w)
			fmt.Fprintln(w, "ACTION\tMECHANISM")
			for _, g := range caps.Guards {
				fmt.Fprintf(w, "%s\t%s\n", g.Action, g.Mechanism)
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if ch, _ := caps.Check("program-set"); !ch.OK {
			hint := "run as root on a kernel with BTF"
			if !caps.Root {
				hint = "run vordr doctor as root"
			}
			return cli.Exit("containers cannot be guarded on this machine: "+hint, 1)
		}
		return nil
	},
}

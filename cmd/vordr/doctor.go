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
		"fanotify permission events, seccomp (and its user notification) and Landlock, and prints the\n" +
		"mechanism the runtime uses for each action. Then checks the installation: the shim, containerd\n" +
		"(2.x) and runc (with seccomp) on PATH, the runtime config and every policy it names, containerd's\n" +
		"configuration for vordr, the verifier's config, the pinned program set. Exits 1 when the kernel\n" +
		"or a required piece fails. Run it as root: as another user every probe fails.",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		&cli.BoolFlag{Name: "kernel-only", Usage: "probe the kernel only, not the installation"},
		&cli.StringFlag{Name: "containerd-confd", Value: "/etc/containerd/conf.d", Usage: "containerd's drop-in directory"},
	},
	Action: func(c *cli.Context) error {
		caps := monitor.Probe()
		var install []installCheck
		if !c.Bool("kernel-only") {
			install = checkInstall(c.String("containerd-confd"))
		}
		if c.Bool("json") {
			e := json.NewEncoder(c.App.Writer)
			e.SetIndent("", "  ")
			if err := e.Encode(struct {
				monitor.Capabilities
				Install []installCheck `json:"install,omitempty"`
			}{caps, install}); err != nil {
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
			if len(install) > 0 {
				fmt.Fprintln(w)
				fmt.Fprintln(w, "INSTALL\tRESULT\tDETAIL")
				for _, ch := range install {
					res := "ok"
					switch {
					case !ch.OK && ch.Required:
						res = "FAIL"
					case !ch.OK:
						res = "warn"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", ch.Name, res, ch.Detail)
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		for _, ch := range install {
			if ch.Required && !ch.OK {
				return cli.Exit(fmt.Sprintf("the installation has a problem: %s: %s", ch.Name, ch.Detail), 1)
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

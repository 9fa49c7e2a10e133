package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/monitor"
)

func init() { commands = append(commands, profileCommand) }

var profileCommand = &cli.Command{
	Name:  "profile",
	Usage: "list, show and check security profiles (dev, balanced, strict, or TOML files)",
	Subcommands: []*cli.Command{
		{
			Name:  "list",
			Usage: "list the built-in profiles",
			Action: func(c *cli.Context) error {
				w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tFAIL\tEXEC DRIFT\tSENSITIVE FILES\tCONNECT\tDESCRIPTION")
				for _, n := range monitor.BuiltinProfiles() {
					p, err := monitor.LoadProfile(n)
					if err != nil {
						return err
					}
					fail := "open"
					if p.Required {
						fail = "closed"
					}
					def := ""
					if n == monitor.DefaultProfile {
						def = " (default)"
					}
					fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\t%s\t%s\n", n, def, fail, p.Exec.Drift, p.Files.Action, p.Network.Connect, p.Description)
				}
				return w.Flush()
			},
		},
		{
			Name:      "show",
			Usage:     "print a profile as TOML (built-ins with their comments)",
			ArgsUsage: "NAME|FILE",
			Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the parsed profile as JSON"}},
			Action: func(c *cli.Context) error {
				ref := c.Args().First()
				if c.NArg() != 1 {
					return cli.Exit("usage: vordr profile show NAME|FILE", 3)
				}
				p, err := monitor.LoadProfile(ref)
				if err != nil {
					return cli.Exit(err.Error(), 2)
				}
				if c.Bool("json") {
					e := json.NewEncoder(c.App.Writer)
					e.SetIndent("", "  ")
					return e.Encode(p)
				}
				if slices.Contains(monitor.BuiltinProfiles(), ref) {
					b, _ := monitor.BuiltinProfileTOML(ref)
					_, err = c.App.Writer.Write(b)
					return err
				}
				b, err := p.TOML()
				if err != nil {
					return err
				}
				_, err = c.App.Writer.Write(b)
				return err
			},
		},
		{
			Name:      "check",
			Usage:     "validate profile TOML files (exit 2 on the first invalid one)",
			ArgsUsage: "FILE...",
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return cli.Exit("usage: vordr profile check FILE...", 3)
				}
				for _, f := range c.Args().Slice() {
					b, err := os.ReadFile(f)
					if err != nil {
						return cli.Exit(err.Error(), 3)
					}
					p, err := monitor.ParseProfile(b)
					if err != nil {
						return cli.Exit(fmt.Sprintf("%s: %v", f, err), 2)
					}
					fmt.Fprintf(c.App.Writer, "%s: ok (profile %q)\n", f, p.Name)
				}
				return nil
			},
		},
	},
}

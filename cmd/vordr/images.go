package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/plugin"
)

var imagesCommand = &cli.Command{
	Name:  "images",
	Usage: "list containerd's images with what vordr verified at import (the runtime re-verifies at every create)",
	Flags: append(containerdFlags(),
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
	),
	Action: func(c *cli.Context) error {
		if c.NArg() != 0 {
			return cli.Exit("images takes no arguments", exitUsage)
		}
		client, ctx, err := connect(c)
		if err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		defer client.Close()
		imgs, err := client.ImageService().List(ctx)
		if err != nil {
			return cli.Exit(fmt.Sprintf("list images: %v", err), exitUsage)
		}
		rows := plugin.ImageStates(imgs)
		if c.Bool("json") {
			enc := json.NewEncoder(c.App.Writer)
			enc.SetIndent("", "  ")
			return enc.Encode(rows)
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tDIGEST\tSTATE\tSIGNERS\tPOLICY\tVERIFIED AT")
		for _, r := range rows {
			state := r.State
			if r.Reason != "" {
				state += " " + r.Reason
			}
			if r.AliasOf != "" {
				state = "alias of " + r.AliasOf
			}
			pol, at := r.Policy, r.VerifiedAt
			if pol == "" {
				pol = "-"
			} else {
				pol = shortList(pol)
			}
			if at == "" {
				at = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, shortList(r.Digest), state, shortList(strings.Join(r.Signers, ",")), pol, at)
		}
		return tw.Flush()
	},
}

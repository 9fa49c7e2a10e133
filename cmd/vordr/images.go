package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/plugin"
)

// imageState is one row of `vordr images`.
type imageState struct {
	Name         string   `json:"name"`
	Digest       string   `json:"digest"`
	State        string   `json:"state"` // verified, unverified, or the import's warn/audit decision
	Reason       string   `json:"reason,omitempty"`
	Signers      []string `json:"signers"`
	Predicates   []string `json:"predicates"`
	Policy       string   `json:"policy,omitempty"`
	VerifiedAt   string   `json:"verifiedAt,omitempty"`
	Bundle       string   `json:"bundle,omitempty"`
	Attestations string   `json:"attestations,omitempty"`
}

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

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
		sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
		rows := make([]imageState, 0, len(imgs))
		for _, img := range imgs {
			l := img.Labels
			r := imageState{Name: img.Name, Digest: img.Target.Digest.String(), State: "unverified",
				Signers: splitList(l[plugin.LabelSigners]), Predicates: splitList(l[plugin.LabelPredicates]),
				Policy: l[plugin.LabelPolicyDigest], VerifiedAt: l[plugin.LabelVerifiedAt],
				Bundle: l[plugin.LabelBundleDigest], Attestations: l[plugin.LabelAttestations]}
			switch d := l[plugin.LabelDecision]; {
			case d == "accept" && r.Attestations != "":
				r.State = "verified"
			case d != "":
				r.State = "unverified (" + d + ")"
				r.Reason = l[plugin.LabelReason]
			}
			rows = append(rows, r)
		}
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

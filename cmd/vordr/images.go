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
	// AliasOf names the verified record this one shares its manifest with:
	// CRI adds such records (repo@digest, the bare digest) and the gate
	// accepts them through the verified one.
	AliasOf string `json:"aliasOf,omitempty"`
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
		// Records without evidence whose manifest a verified record has
		// are aliases of it, not unverified images.
		verifiedBy := map[string]string{}
		for _, r := range rows {
			if r.State == "verified" {
				if _, ok := verifiedBy[r.Digest]; !ok {
					verifiedBy[r.Digest] = r.Name
				}
			}
		}
		for i, r := range rows {
			if v, ok := verifiedBy[r.Digest]; ok && r.Attestations == "" && r.Name != v {
				rows[i].State, rows[i].AliasOf = "verified (alias)", v
			}
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

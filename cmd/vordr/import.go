package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/ctp/sigstore"
	"github.com/vordr-project/vordr/plugin"
)

func init() { commands = append(commands, importCommand, imagesCommand) }

// containerdFlags are shared by the commands that talk to containerd.
func containerdFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "address", Aliases: []string{"a"}, Value: "/run/containerd/containerd.sock", EnvVars: []string{"CONTAINERD_ADDRESS"}, Usage: "containerd's gRPC socket"},
		&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Value: "default", EnvVars: []string{"CONTAINERD_NAMESPACE"}, Usage: "containerd namespace"},
	}
}

// connect returns a containerd client and a context in the chosen namespace.
func connect(c *cli.Context) (*containerd.Client, context.Context, error) {
	addr := c.String("address")
	if _, err := os.Stat(addr); err != nil {
		return nil, nil, fmt.Errorf("containerd socket %s: %w; is containerd running? pass --address or set CONTAINERD_ADDRESS", addr, err)
	}
	client, err := containerd.New(addr, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to containerd at %s: %w", addr, err)
	}
	return client, namespaces.WithNamespace(c.Context, c.String("namespace")), nil
}

var importCommand = &cli.Command{
	Name:      "import",
	Usage:     "verify a .ctp bundle and import it into containerd atomically (exit 0 imported, 1 rejected, 2 malformed, 3 usage/I/O)",
	ArgsUsage: "BUNDLE",
	Flags: append(containerdFlags(),
		&cli.StringFlag{Name: "policy", Aliases: []string{"p"}, Usage: "policy file (TOML or gatekeeper JSON)"},
		&cli.StringSliceFlag{Name: "key", Aliases: []string{"k"}, Usage: "trusted public key: without --policy, a strict policy trusting these keys"},
		&cli.StringFlag{Name: "snapshotter", Value: plugin.DefaultSnapshotter, Usage: "snapshotter to unpack into"},
		&cli.StringFlag{Name: "name", Usage: "image name (default: manifest.toml's image_ref)"},
		&cli.StringFlag{Name: "progress", Value: "auto", Usage: "progress on stderr: auto (on a terminal), always, never"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the image name"},
	),
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("import takes one BUNDLE", exitUsage)
		}
		pol, pubs, err := policyFromFlags(c)
		if err != nil {
			return err
		}
		client, ctx, err := connect(c)
		if err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		defer client.Close()
		prog := newProgress(c.String("progress"))
		res, err := plugin.Import(ctx, client, c.Args().First(), pol, plugin.ImportOptions{
			Name:        c.String("name"),
			Snapshotter: c.String("snapshotter"),
			Verify:      ctp.VerifyOptions{Keys: pubs, Sigstore: sigstore.PolicyVerifier{}},
			Progress:    prog.Func(),
		})
		prog.Done(err)
		if err != nil {
			return exitFor(err)
		}
		verb := "imported"
		if res.Updated {
			verb = "updated"
		}
		printImport(c, verb, res, "")
		return nil
	},
}

// printImport reports an import (vordr import, vordr pull): the image name
// alone with --quiet, else what was verified and stored.
func printImport(c *cli.Context, verb string, res *plugin.ImportResult, evidence string) {
	w := c.App.Writer
	if c.Bool("quiet") {
		fmt.Fprintln(w, res.Image.Name)
		return
	}
	fmt.Fprintf(w, "%s %s\n", verb, res.Image.Name)
	fmt.Fprintf(w, "  image:        %s\n", res.Image.Target.Digest)
	if evidence != "" {
		fmt.Fprintf(w, "  evidence:     %s\n", evidence)
	}
	fmt.Fprintf(w, "  decision:     %s", res.Verification.Decision)
	if res.Verification.ErrorCode != "" {
		fmt.Fprintf(w, " (%s)", res.Verification.Message)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  bundle:       %s\n", res.BundleDigest)
	fmt.Fprintf(w, "  signers:      %s\n", res.Image.Labels[plugin.LabelSigners])
	fmt.Fprintf(w, "  predicates:   %s\n", res.Image.Labels[plugin.LabelPredicates])
	fmt.Fprintf(w, "  policy:       %s\n", res.PolicyDigest)
	fmt.Fprintf(w, "  attestations: %s\n", res.Attestations.Digest)
	fmt.Fprintf(w, "  snapshot:     %s %s\n", res.Snapshotter, res.ChainID)
}

// policyFromFlags loads --policy, or builds a strict policy from --key.
func policyFromFlags(c *cli.Context) (*policy.Policy, []*keys.PublicKey, error) {
	var pubs []*keys.PublicKey
	for _, p := range c.StringSlice("key") {
		k, err := keys.LoadPublicKey(p)
		if err != nil {
			return nil, nil, cli.Exit(fmt.Sprintf("%s: %v", p, err), exitUsage)
		}
		pubs = append(pubs, k)
	}
	switch {
	case c.String("policy") != "":
		p, err := policy.Load(c.String("policy"))
		if err != nil {
			var pe policy.Errors
			if errors.As(err, &pe) {
				return nil, nil, cli.Exit(err.Error(), exitMalformed)
			}
			return nil, nil, cli.Exit(err.Error(), exitUsage)
		}
		return p, pubs, nil
	case len(pubs) > 0:
		pol := &policy.Policy{Version: 1, Mode: policy.Strict, Threshold: 1}
		for _, k := range pubs {
			pol.Signers = append(pol.Signers, policy.Signer{KeyID: k.ID, Resolved: k})
		}
		return pol, pubs, nil
	}
	return nil, nil, cli.Exit(c.Command.Name+" needs --policy or --key: nothing is imported unverified (use `ctr image import` for that)", exitUsage)
}

// shortList abbreviates a comma-separated list of key ids for a table.
func shortList(s string) string {
	if s == "" {
		return "-"
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if h, ok := strings.CutPrefix(p, "sha256:"); ok && len(h) > 12 {
			parts[i] = "sha256:" + h[:12]
		}
	}
	return strings.Join(parts, ",")
}

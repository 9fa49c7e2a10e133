package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/sigstore"
	"github.com/vordr-project/vordr/plugin"
	"github.com/vordr-project/vordr/referrers"
)

func init() { commands = append(commands, pushCommand, pullCommand) }

// registryFlags are shared by push and pull. Credentials come from the docker
// config (docker login, credential helpers), as for docker, cosign and oras.
func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "plain-http", Usage: "talk http:// to the registry (a local test registry), not https://"},
		&cli.BoolFlag{Name: "referrers-tag-schema", Usage: "use only the referrers tag schema (sha256-<hex> tags), for registries without a working referrers API; by default the API is tried first"},
	}
}

func registryOptions(c *cli.Context) referrers.Options {
	return referrers.Options{PlainHTTP: c.Bool("plain-http"), TagSchema: c.Bool("referrers-tag-schema")}
}

var pushCommand = &cli.Command{
	Name:      "push",
	Usage:     "push a .ctp bundle's image to REF and its evidence as OCI referrers of the image manifest (exit 0 pushed, 2 malformed bundle, 3 usage/I/O/registry)",
	ArgsUsage: "BUNDLE REF",
	Flags:     registryFlags(),
	Action: func(c *cli.Context) error {
		if c.NArg() != 2 {
			return cli.Exit("push takes BUNDLE and REF (e.g. vordr push app.ctp registry.example.com/app:1.0)", exitUsage)
		}
		bundle, ref := c.Args().Get(0), c.Args().Get(1)
		res, err := referrers.Push(c.Context, bundle, ref, registryOptions(c))
		if err != nil {
			return exitFor(err)
		}
		w := c.App.Writer
		fmt.Fprintf(w, "pushed %s\n", ref)
		fmt.Fprintf(w, "  image:    %s\n", res.Image.Digest)
		fmt.Fprintf(w, "  evidence: %s (%s)\n", res.Evidence.Digest, referrers.ArtifactTypeEvidence)
		for _, d := range res.Sigstore {
			fmt.Fprintf(w, "  sigstore: %s (%s)\n", d.Digest, d.ArtifactType)
		}
		fmt.Fprintf(w, "  blobs:    %d uploaded, %d already there\n", res.Uploaded, res.Skipped)
		return nil
	},
}

var pullCommand = &cli.Command{
	Name:  "pull",
	Usage: "pull REF and its evidence referrers, verify them and import into containerd atomically (exit 0 imported, 1 rejected or no evidence, 2 malformed, 3 usage/I/O/registry)",
	Description: "The image at REF and its vordr evidence referrer (pushed by `vordr push`) are reassembled into\n" +
		"the .ctp they came from and imported as `vordr import` does: verified under the policy, all or nothing.\n" +
		"When several evidence referrers exist, the newest is tried first and the first that verifies is imported.",
	ArgsUsage: "REF",
	Flags: append(append(containerdFlags(), registryFlags()...),
		&cli.StringFlag{Name: "policy", Aliases: []string{"p"}, Usage: "policy file (TOML or gatekeeper JSON)"},
		&cli.StringSliceFlag{Name: "key", Aliases: []string{"k"}, Usage: "trusted public key: without --policy, a strict policy trusting these keys"},
		&cli.StringFlag{Name: "snapshotter", Value: plugin.DefaultSnapshotter, Usage: "snapshotter to unpack into"},
		&cli.StringFlag{Name: "name", Usage: "image name (default: REF)"},
		&cli.StringFlag{Name: "tmpdir", Usage: "directory for the reassembled bundle (needs room for the image; default $TMPDIR)"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the image name"},
	),
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("pull takes one REF (e.g. vordr pull --key release.pub registry.example.com/app:1.0)", exitUsage)
		}
		ref := c.Args().First()
		pol, pubs, err := policyFromFlags(c)
		if err != nil {
			return err
		}
		client, ctx, err := connect(c)
		if err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		defer client.Close()
		name := c.String("name")
		if name == "" {
			name = ref
		}
		var res *plugin.ImportResult
		var used referrers.Candidate
		err = referrers.Pull(ctx, ref, referrers.PullOptions{Options: registryOptions(c), TempDir: c.String("tmpdir")}, func(cand referrers.Candidate) error {
			r, err := plugin.Import(ctx, client, cand.Path, pol, plugin.ImportOptions{
				Name:        name,
				Snapshotter: c.String("snapshotter"),
				Verify:      ctp.VerifyOptions{Keys: pubs, Sigstore: sigstore.PolicyVerifier{}},
			})
			if err != nil {
				return err
			}
			res, used = r, cand
			return nil
		})
		if err != nil {
			if referrers.IsNoEvidence(err) {
				return cli.Exit(err.Error(), exitRejected)
			}
			return exitFor(err)
		}
		verb := "pulled"
		if res.Updated {
			verb = "pulled (updated)"
		}
		printImport(c, verb, res, used.Evidence.Digest.String())
		return nil
	},
}

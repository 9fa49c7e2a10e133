package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/sigstore"
)

// ctpVerifyAttestationCommand is cosign's verify-blob-attestation for a
// sigstore bundle, offline: the same flag names and meanings, so a cosign
// user's scripts and habits carry over.
var ctpVerifyAttestationCommand = &cli.Command{
	Name:      "verify-attestation",
	Usage:     "verify a sigstore bundle (cosign attest --bundle) offline, with a key or keyless (exit 0 accepted, 1 refused, 3 usage/I/O)",
	ArgsUsage: " ",
	Description: `The bundle's DSSE envelope must hold an in-toto statement (v0.1 or v1) whose
subjects include --digest. Key-based: --key PUB (and --insecure-ignore-tlog for
a bundle without a log entry, or --trusted-root naming the log's key to check
the entry). Keyless: --trusted-root trusted_root.json (sigstore's format: the
Fulcio CAs, the Rekor logs' keys, timestamp authorities, CT logs) plus the
signer's identity (--certificate-identity or --certificate-identity-regexp,
and --certificate-oidc-issuer or --certificate-oidc-issuer-regexp). Nothing is
fetched: what is trusted is what the files say.`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "bundle", Usage: "sigstore bundle (JSON, " + sigstore.MediaTypeBundleV03 + ")", Required: true},
		&cli.StringFlag{Name: "digest", Usage: "the artifact the statement must be about: sha256:HEX (e.g. the image manifest digest)", Required: true},
		&cli.StringFlag{Name: "digestAlg", Usage: "digest algorithm, when --digest is bare hex (cosign's flag)", Value: "sha256"},
		&cli.StringFlag{Name: "key", Usage: "the signer's public key (PEM)"},
		&cli.StringFlag{Name: "trusted-root", Usage: "sigstore trusted_root.json: CAs and log keys to trust, offline"},
		&cli.StringFlag{Name: "certificate-identity", Usage: "the certificate's expected subject (SAN: email or URI)"},
		&cli.StringFlag{Name: "certificate-identity-regexp", Usage: "regular expression the certificate's subject must match"},
		&cli.StringFlag{Name: "certificate-oidc-issuer", Usage: "the certificate's expected OIDC issuer"},
		&cli.StringFlag{Name: "certificate-oidc-issuer-regexp", Usage: "regular expression the OIDC issuer must match"},
		&cli.StringFlag{Name: "type", Usage: "required predicate type: slsaprovenance, slsaprovenance02, slsaprovenance1, spdx, spdxjson, cyclonedx, vuln, custom, or a URI"},
		&cli.BoolFlag{Name: "insecure-ignore-tlog", Usage: "accept a bundle without a transparency-log entry"},
		&cli.BoolFlag{Name: "insecure-ignore-sct", Usage: "accept a certificate without a CT log's signed timestamp"},
		&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return cli.Exit("verify-attestation takes no arguments: the bundle is --bundle FILE (as in cosign verify-blob-attestation)", exitUsage)
		}
		o, err := attestationOptions(c)
		if err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		data, err := os.ReadFile(c.String("bundle"))
		if err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		res, err := sigstore.Verify(data, o)
		if c.Bool("json") {
			out := map[string]any{"verified": err == nil}
			if err != nil {
				out["error"] = err.Error()
			} else {
				out["result"] = res
			}
			enc := json.NewEncoder(c.App.Writer)
			enc.SetIndent("", "  ")
			_ = enc.Encode(out)
		}
		switch {
		case errors.Is(err, sigstore.ErrRefused):
			if c.Bool("json") {
				return cli.Exit("", exitRejected)
			}
			return cli.Exit("Error: "+err.Error(), exitRejected)
		case err != nil:
			return cli.Exit(err.Error(), exitUsage)
		}
		if !c.Bool("json") {
			fmt.Fprintf(c.App.Writer, "Verified OK: %s about %s, predicate %s, signed by %s", res.StatementType, o.Digest, res.PredicateType, res.Signer)
			if res.Issuer != "" {
				fmt.Fprintf(c.App.Writer, " (issuer %s)", res.Issuer)
			}
			fmt.Fprintf(c.App.Writer, ", %d log entries\n", res.TlogEntries)
		}
		return nil
	},
}

func attestationOptions(c *cli.Context) (sigstore.Options, error) {
	o := sigstore.Options{
		Digest:        c.String("digest"),
		IgnoreTlog:    c.Bool("insecure-ignore-tlog"),
		IgnoreSCT:     c.Bool("insecure-ignore-sct"),
		PredicateType: predicateType(c.String("type")),
	}
	if !strings.Contains(o.Digest, ":") {
		o.Digest = c.String("digestAlg") + ":" + o.Digest
	}
	if p := c.String("key"); p != "" {
		k, err := keys.LoadPublicKey(p)
		if err != nil {
			return o, fmt.Errorf("--key %s: %w", p, err)
		}
		o.PublicKey = k.Key
	}
	if p := c.String("trusted-root"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			return o, err
		}
		if o.TrustedRoot, err = sigstore.LoadTrustedRoot(data); err != nil {
			return o, fmt.Errorf("--trusted-root %s: %w", p, err)
		}
	}
	id := sigstore.Identity{
		Issuer: c.String("certificate-oidc-issuer"), IssuerRegexp: c.String("certificate-oidc-issuer-regexp"),
		Subject: c.String("certificate-identity"), SubjectRegexp: c.String("certificate-identity-regexp"),
	}
	if id != (sigstore.Identity{}) {
		if err := id.Validate(); err != nil {
			return o, fmt.Errorf("certificate identity: %w", err)
		}
		o.Identities = []sigstore.Identity{id}
	}
	return o, nil
}

// predicateType maps cosign's --type shorthands to predicate type URIs.
func predicateType(s string) string {
	switch s {
	case "":
		return ""
	case "slsaprovenance", "slsaprovenance02":
		return "https://slsa.dev/provenance/v0.2"
	case "slsaprovenance1":
		return "https://slsa.dev/provenance/v1"
	case "spdx", "spdxjson":
		return "https://spdx.dev/Document"
	case "cyclonedx":
		return "https://cyclonedx.org/bom"
	case "vuln":
		return "https://cosign.sigstore.dev/attestation/vuln/v1"
	case "custom":
		return "https://cosign.sigstore.dev/attestation/v1"
	}
	return s
}

// ctpExportCommand writes a bundle's attestations in other evidence formats.
var ctpExportCommand = &cli.Command{
	Name:      "export",
	Usage:     "write a bundle's attestations as sigstore bundles (one per signature), for cosign and sigstore verifiers",
	ArgsUsage: "BUNDLE",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "sigstore", Usage: "sigstore bundle v0.3 JSON (the only format so far; required)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "directory to write into (created)", Required: true},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("export takes one BUNDLE", exitUsage)
		}
		if !c.Bool("sigstore") {
			return cli.Exit("export needs a format: --sigstore", exitUsage)
		}
		b, err := ctp.OpenFile(c.Args().First(), ctp.Options{})
		if err != nil {
			return exitFor(err)
		}
		defer b.Close()
		envs := b.Attestations().Attestations
		if len(envs) == 0 {
			return cli.Exit("the bundle has no attestations", exitRejected)
		}
		dir := c.String("output")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		md := b.ManifestDescriptor().Digest.String()
		for i, env := range envs {
			bundles, err := sigstore.Export(env)
			if err != nil {
				return cli.Exit(fmt.Sprintf("attestation %d: %v", i, err), exitRejected)
			}
			for j, data := range bundles {
				kid := strings.TrimPrefix(env.Signatures[j].KeyID, "sha256:")
				if len(kid) > 12 {
					kid = kid[:12]
				}
				name := filepath.Join(dir, fmt.Sprintf("%02d-%s-%s.sigstore.json", i, predicateShort(predicateTypeOf(env.Payload)), kid))
				if err := writeFileAtomic(name, data); err != nil {
					return cli.Exit(err.Error(), exitUsage)
				}
				fmt.Fprintln(c.App.Writer, name)
			}
		}
		fmt.Fprintf(c.App.Writer, "verify with: cosign verify-blob-attestation --bundle FILE --key KEY.pub --insecure-ignore-tlog --digest %s --digestAlg sha256 (or vordr ctp verify-attestation with the same flags)\n", strings.TrimPrefix(md, "sha256:"))
		return nil
	},
}

// predicateShort names a predicate type in a file name.
func predicateShort(t string) string {
	switch {
	case strings.Contains(t, "slsa.dev/provenance"):
		return "provenance"
	case strings.Contains(t, "spdx"):
		return "spdx"
	case strings.Contains(t, "cyclonedx"):
		return "cyclonedx"
	}
	return "attestation"
}

func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// ctpAttachSigstoreCommand adds cosign's sigstore bundles to a .ctp, so a
// team already on cosign keeps its signing and gains vordr's import, gate
// and guard.
var ctpAttachSigstoreCommand = &cli.Command{
	Name:      "attach-sigstore",
	Usage:     "add sigstore bundles (cosign attest --bundle) to a bundle's evidence; verify checks them against the policy's signers and identities",
	ArgsUsage: "BUNDLE SIGSTORE_BUNDLE...",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write here instead of rewriting BUNDLE"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() < 2 {
			return cli.Exit("attach-sigstore takes a BUNDLE and one or more sigstore bundle files", exitUsage)
		}
		in := c.Args().First()
		out := c.String("output")
		if out == "" {
			out = in
		}
		var bundles [][]byte
		for _, f := range c.Args().Slice()[1:] {
			data, err := os.ReadFile(f)
			if err != nil {
				return cli.Exit(err.Error(), exitUsage)
			}
			if !sigstore.IsBundle(data) {
				return cli.Exit(fmt.Sprintf("%s is not a sigstore bundle (no mediaType %s): cosign writes one with attest --bundle FILE or attest-blob --bundle FILE", f, sigstore.MediaTypeBundleV03), exitUsage)
			}
			bundles = append(bundles, data)
		}
		if err := ctp.AttachSigstore(c.Context, in, out, bundles, ctp.Options{}); err != nil {
			return exitFor(err)
		}
		fmt.Fprintf(c.App.Writer, "%s: %d sigstore bundle(s) attached\n", out, len(bundles))
		return nil
	},
}

// inspectSigstore summarises a sigstore bundle without verifying it.
type inspectSigstore struct {
	MediaType     string `json:"mediaType"`
	PredicateType string `json:"predicateType"`
	Signer        string `json:"signer"` // "keyless (certificate)" or "key <hint>"
	TlogEntries   int    `json:"tlogEntries"`
}

func inspectSigstoreBundle(data []byte) inspectSigstore {
	var probe struct {
		MediaType            string `json:"mediaType"`
		VerificationMaterial struct {
			Certificate          json.RawMessage       `json:"certificate"`
			X509CertificateChain json.RawMessage       `json:"x509CertificateChain"`
			PublicKey            struct{ Hint string } `json:"publicKey"`
			TlogEntries          []json.RawMessage     `json:"tlogEntries"`
		} `json:"verificationMaterial"`
		DsseEnvelope struct {
			Payload string `json:"payload"`
		} `json:"dsseEnvelope"`
	}
	_ = json.Unmarshal(data, &probe)
	s := inspectSigstore{MediaType: probe.MediaType, PredicateType: predicateTypeOf(probe.DsseEnvelope.Payload), TlogEntries: len(probe.VerificationMaterial.TlogEntries)}
	vm := probe.VerificationMaterial
	switch {
	case vm.Certificate != nil || vm.X509CertificateChain != nil:
		s.Signer = "keyless (certificate)"
	case vm.PublicKey.Hint != "":
		s.Signer = "key " + vm.PublicKey.Hint
	default:
		s.Signer = "key (no hint)"
	}
	return s
}

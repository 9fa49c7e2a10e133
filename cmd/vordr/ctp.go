package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/keys"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/ctp/sigstore"
	"github.com/vordr-project/vordr/version"
)

func init() { commands = append(commands, ctpCommand) }

// Exit codes of the ctp commands (docs/ctp-format.md).
const (
	exitAccepted  = 0
	exitRejected  = 1
	exitMalformed = 2
	exitUsage     = 3
)

const passphraseEnv = "VORDR_PASSPHRASE"

var ctpCommand = &cli.Command{
	Name:  "ctp",
	Usage: "create, sign, verify and inspect .ctp bundles",
	Subcommands: []*cli.Command{
		ctpKeygenCommand,
		ctpPackCommand,
		ctpSignCommand,
		ctpVerifyCommand,
		ctpVerifyAttestationCommand,
		ctpExportCommand,
		ctpAttachSigstoreCommand,
		ctpInspectCommand,
		ctpPolicyCommand,
		ctpLogLeavesCommand,
		ctpAttachLogCommand,
	},
}

// exitFor maps an error to the command's exit code: 2 for malformed input, 1
// for a verification verdict, 3 for usage and I/O problems.
func exitFor(err error) error {
	if err == nil {
		return nil
	}
	var pe policy.Errors
	switch code := ctp.CodeOf(err); {
	case code == ctp.CodeMalformedBundle:
		return cli.Exit(err.Error(), exitMalformed)
	case code != "":
		return cli.Exit(err.Error(), exitRejected)
	case errors.As(err, &pe):
		return cli.Exit(err.Error(), exitMalformed)
	}
	return cli.Exit(err.Error(), exitUsage)
}

// cosignPassphraseEnv is cosign's variable: a cosign user's scripts set it.
const cosignPassphraseEnv = "COSIGN_PASSWORD"

// envPassphrase returns the passphrase from $VORDR_PASSPHRASE or
// $COSIGN_PASSWORD (set, even empty, counts).
func envPassphrase() ([]byte, bool) {
	for _, v := range []string{passphraseEnv, cosignPassphraseEnv} {
		if pw, ok := os.LookupEnv(v); ok {
			return []byte(pw), true
		}
	}
	return nil, false
}

// passFunc reads a key passphrase from $VORDR_PASSPHRASE, $COSIGN_PASSWORD
// or, on a terminal, from a prompt. Without any it returns nil, which the
// keys package turns into an error that says what to set.
func passFunc(prompt bool) keys.PassFunc {
	return func(confirm bool) ([]byte, error) {
		if pw, ok := envPassphrase(); ok {
			return pw, nil
		}
		if !prompt || !term.IsTerminal(int(os.Stdin.Fd())) {
			return nil, nil
		}
		fmt.Fprint(os.Stderr, "Passphrase: ")
		pw, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil || !confirm {
			return pw, err
		}
		fmt.Fprint(os.Stderr, "Again: ")
		pw2, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pw, pw2) {
			return nil, errors.New("passphrases do not match")
		}
		return pw, nil
	}
}

var ctpKeygenCommand = &cli.Command{
	Name:      "keygen",
	Usage:     "generate a signing key pair (PREFIX.key, PREFIX.pub)",
	ArgsUsage: "[PREFIX]",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "type", Value: string(keys.Ed25519), Usage: "ed25519, ecdsa-p256, ml-dsa-65 or ml-dsa-87 (FIPS 204; pair ml-dsa-87 with an ed25519 key for a hybrid signer, docs/policy.md)"},
		&cli.BoolFlag{Name: "encrypt", Value: true, Usage: "encrypt the private key with a passphrase ($" + cosignPassphraseEnv + " or $" + passphraseEnv + ", or a prompt); the default"},
		&cli.BoolFlag{Name: "no-encrypt", Usage: "write the private key unencrypted (protect it by other means)"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite existing files"},
	},
	Action: func(c *cli.Context) error {
		prefix := c.Args().First()
		if prefix == "" {
			prefix = "vordr"
		}
		if c.NArg() > 1 {
			return cli.Exit("keygen takes one PREFIX", exitUsage)
		}
		var pf keys.PassFunc
		if c.Bool("encrypt") && !c.Bool("no-encrypt") {
			pf = passFunc(true)
			if _, ok := envPassphrase(); !ok && !term.IsTerminal(int(os.Stdin.Fd())) {
				return cli.Exit("keygen encrypts the private key: set $"+cosignPassphraseEnv+" (or $"+passphraseEnv+") to its passphrase, run on a terminal to be prompted, or pass --no-encrypt for a plaintext key", exitUsage)
			}
		}
		priv, pub, err := keys.Generate(keys.Algorithm(c.String("type")), pf)
		if err != nil {
			return exitFor(err)
		}
		k, err := keys.ParsePublicKey(pub)
		if err != nil {
			return exitFor(err)
		}
		flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if c.Bool("force") {
			flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		}
		for _, f := range []struct {
			name string
			data []byte
			mode os.FileMode
		}{{prefix + ".key", priv, 0o600}, {prefix + ".pub", pub, 0o644}} {
			fh, err := os.OpenFile(f.name, flag, f.mode)
			if err != nil {
				return exitFor(err)
			}
			_, err = fh.Write(f.data)
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return exitFor(err)
			}
		}
		fmt.Fprintf(c.App.Writer, "private key: %s.key\npublic key:  %s.pub\nkey id:      %s\n", prefix, prefix, k.ID)
		return nil
	},
}

func loadSigners(paths []string) ([]*keys.Signer, error) {
	var out []*keys.Signer
	for _, p := range paths {
		s, err := keys.LoadPrivateKey(p, passFunc(true))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

var ctpPackCommand = &cli.Command{
	Name:      "pack",
	Usage:     "pack a rootfs directory, OCI layout or OCI/docker archive into a .ctp bundle",
	ArgsUsage: "[flags] SOURCE (flags come before SOURCE)",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "bundle to write"},
		&cli.StringFlag{Name: "name", Required: true, Usage: "bundle name"},
		&cli.StringFlag{Name: "version", Usage: "bundle version"},
		&cli.StringFlag{Name: "ref", Usage: "image reference (also selects the image in a multi-image input)"},
		&cli.StringFlag{Name: "created", Usage: "creation time (RFC 3339); default $SOURCE_DATE_EPOCH, then the input's own time"},
		&cli.StringSliceFlag{Name: "annotation", Usage: "KEY=VALUE for manifest.toml (repeatable)"},
		&cli.StringSliceFlag{Name: "entrypoint", Usage: "entrypoint argument for a rootfs (repeatable)"},
		&cli.StringSliceFlag{Name: "cmd", Usage: "command argument for a rootfs (repeatable)"},
		&cli.StringSliceFlag{Name: "env", Usage: "KEY=VALUE environment for a rootfs (repeatable)"},
		&cli.StringFlag{Name: "workdir", Usage: "working directory for a rootfs"},
		&cli.StringFlag{Name: "user", Usage: "user for a rootfs"},
		&cli.StringFlag{Name: "os", Usage: "platform OS (default linux)"},
		&cli.StringFlag{Name: "arch", Usage: "platform architecture (default: this machine's)"},
		&cli.StringFlag{Name: "compress", Value: "none", Usage: "bundle compression: none, gzip or zstd"},
		&cli.StringSliceFlag{Name: "key", Usage: "sign with this private key right away (repeatable)"},
		&cli.StringFlag{Name: "progress", Value: "auto", Usage: "auto, always or never"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("pack takes one SOURCE", exitUsage)
		}
		opts := ctp.PackOptions{
			Name: c.String("name"), Version: c.String("version"), ImageRef: c.String("ref"),
			Entrypoint: c.StringSlice("entrypoint"), Cmd: c.StringSlice("cmd"), Env: c.StringSlice("env"),
			WorkingDir: c.String("workdir"), User: c.String("user"), OS: c.String("os"), Architecture: c.String("arch"),
			BuilderVersion: version.Version,
		}
		switch comp := c.String("compress"); comp {
		case "none", "":
		case "gzip", "zstd":
			opts.Compression = ctp.Compression(comp)
		default:
			return cli.Exit("--compress must be none, gzip or zstd", exitUsage)
		}
		if s := c.String("created"); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return cli.Exit("--created: "+err.Error(), exitUsage)
			}
			opts.Created = t
		} else if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			sec, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return cli.Exit("SOURCE_DATE_EPOCH: "+err.Error(), exitUsage)
			}
			opts.Created = time.Unix(sec, 0)
		}
		for _, a := range c.StringSlice("annotation") {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				return cli.Exit("--annotation wants KEY=VALUE", exitUsage)
			}
			if opts.Annotations == nil {
				opts.Annotations = map[string]string{}
			}
			opts.Annotations[k] = v
		}
		signers, err := loadSigners(c.StringSlice("key"))
		if err != nil {
			return exitFor(err)
		}
		opts.Signers = signers
		prog := newProgress(c.String("progress"))
		opts.Progress = prog.Func()
		res, err := ctp.Pack(c.Context, c.Args().First(), c.String("output"), opts)
		prog.Done(err)
		if err != nil {
			return exitFor(err)
		}
		fmt.Fprintf(c.App.Writer, "packed %s (%s, %d layers, %d files, %d packages)\nimage digest %s\n",
			c.String("output"), res.SourceKind, res.Layers, res.Files, res.Packages, res.ManifestDigest)
		return nil
	},
}

var ctpSignCommand = &cli.Command{
	Name:      "sign",
	Usage:     "add DSSE signatures to every attestation of a bundle (earlier signatures are kept)",
	ArgsUsage: "BUNDLE",
	Flags: []cli.Flag{
		&cli.StringSliceFlag{Name: "key", Aliases: []string{"k"}, Required: true, Usage: "private key (repeatable)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write here instead of replacing BUNDLE"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("sign takes one BUNDLE", exitUsage)
		}
		in := c.Args().First()
		out := c.String("output")
		if out == "" {
			out = in
		}
		signers, err := loadSigners(c.StringSlice("key"))
		if err != nil {
			return exitFor(err)
		}
		if err := ctp.Sign(c.Context, in, out, signers, ctp.Options{}); err != nil {
			return exitFor(err)
		}
		for _, s := range signers {
			fmt.Fprintf(c.App.Writer, "signed %s with %s\n", out, s.ID)
		}
		return nil
	},
}

var ctpVerifyCommand = &cli.Command{
	Name:      "verify",
	Usage:     "verify a bundle against a policy (exit 0 accepted, 1 rejected, 2 malformed, 3 usage/I/O)",
	ArgsUsage: "BUNDLE",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "policy", Aliases: []string{"p"}, Usage: "policy file (TOML or gatekeeper JSON)"},
		&cli.StringSliceFlag{Name: "key", Aliases: []string{"k"}, Usage: "trusted public key: without --policy, a strict policy trusting these keys; with it, keys for signers given by key_id"},
		&cli.BoolFlag{Name: "json", Usage: "print the result as JSON"},
		&cli.StringFlag{Name: "time", Usage: "check key validity at this time (RFC 3339) instead of now"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("verify takes one BUNDLE", exitUsage)
		}
		var pubs []*keys.PublicKey
		for _, p := range c.StringSlice("key") {
			k, err := keys.LoadPublicKey(p)
			if err != nil {
				return cli.Exit(fmt.Sprintf("%s: %v", p, err), exitUsage)
			}
			pubs = append(pubs, k)
		}
		var pol *policy.Policy
		switch {
		case c.String("policy") != "":
			p, err := policy.Load(c.String("policy"))
			if err != nil {
				return cli.Exit(err.Error(), exitUsage)
			}
			pol = p
		case len(pubs) > 0:
			pol = &policy.Policy{Version: 1, Mode: policy.Strict, Threshold: 1}
			for _, k := range pubs {
				pol.Signers = append(pol.Signers, policy.Signer{KeyID: k.ID, Resolved: k})
			}
		default:
			return cli.Exit("verify needs --policy or --key", exitUsage)
		}
		opts := ctp.VerifyOptions{Keys: pubs, Sigstore: sigstore.PolicyVerifier{}}
		if s := c.String("time"); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return cli.Exit("--time: "+err.Error(), exitUsage)
			}
			opts.Now = t
		}
		res, err := verifyPath(c.Context, c.Args().First(), pol, opts)
		return report(c, res, err)
	},
}

func verifyPath(ctx context.Context, path string, pol *policy.Policy, opts ctp.VerifyOptions) (*ctp.Result, error) {
	b, err := ctp.OpenFile(path, ctp.Options{})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return ctp.Verify(ctx, b, pol, opts)
}

func report(c *cli.Context, res *ctp.Result, err error) error {
	if res == nil {
		// Open failed: still answer in the requested format.
		res = &ctp.Result{Decision: ctp.Reject, ErrorCode: ctp.CodeOf(err), Reason: ctp.ReasonOf(err),
			Signers: []ctp.SignerCheck{}, Predicates: []string{}, Logs: []ctp.LogCheck{}}
		if err != nil {
			res.Message = err.Error()
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if eerr := enc.Encode(res); eerr != nil {
			return cli.Exit(eerr.Error(), exitUsage)
		}
	} else {
		w := c.App.Writer
		fmt.Fprintf(w, "decision: %s\n", res.Decision)
		if res.ErrorCode != "" {
			fmt.Fprintf(w, "error:    %s\n", res.Message)
		}
		if res.Name != "" {
			fmt.Fprintf(w, "bundle:   %s %s (%s)\nimage:    %s\n", res.Name, res.Version, res.ImageRef, res.ImageDigest)
		}
		for _, s := range res.Signers {
			fmt.Fprintf(w, "signer:   %s %s %s %v\n", s.Status, s.KeyID, s.Name, s.Predicates)
		}
		for _, l := range res.Logs {
			fmt.Fprintf(w, "log:      %s %s index %d time %s\n", l.Status, l.LogID, l.LogIndex, time.Unix(l.IntegratedTime, 0).UTC().Format(time.RFC3339))
		}
	}
	if err != nil {
		if c.Bool("json") {
			// The JSON already carries the message; keep stderr quiet.
			code := exitUsage
			switch ctp.CodeOf(err) {
			case "":
			case ctp.CodeMalformedBundle:
				code = exitMalformed
			default:
				code = exitRejected
			}
			return cli.Exit("", code)
		}
		return exitFor(err)
	}
	if res.Decision != ctp.Accept {
		fmt.Fprintf(os.Stderr, "vordr: %s mode: allowed despite %s\n", res.Mode, res.ErrorCode)
	}
	return nil
}

// inspection is the `inspect --json` output.
type inspection struct {
	Manifest       ctp.Manifest        `json:"manifest"`
	ManifestDigest string              `json:"manifestDigest"`
	Config         ocispecDescriptor   `json:"config"`
	Platform       string              `json:"platform"`
	Layers         []ocispecDescriptor `json:"layers"`
	Attestations   []inspectAttest     `json:"attestations"`
	LogEntries     []inspectLog        `json:"logEntries"`
	Sigstore       []inspectSigstore   `json:"sigstoreBundles,omitempty"`
	Compression    string              `json:"compression"`
	Verified       bool                `json:"verified"`
}

type ocispecDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type inspectAttest struct {
	PredicateType string   `json:"predicateType"`
	Signers       []string `json:"signers"`
}

type inspectLog struct {
	LogID          string `json:"logId"`
	LogIndex       uint64 `json:"logIndex"`
	IntegratedTime int64  `json:"integratedTime"`
	Signature      string `json:"signature"`
}

var ctpInspectCommand = &cli.Command{
	Name:      "inspect",
	Usage:     "summarise a bundle (structure is validated; signatures are not checked — use verify)",
	ArgsUsage: "BUNDLE",
	Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("inspect takes one BUNDLE", exitUsage)
		}
		b, err := ctp.OpenFile(c.Args().First(), ctp.Options{})
		if err != nil {
			return exitFor(err)
		}
		defer b.Close()
		comp, _ := ctp.CompressionOf(c.Args().First())
		in := inspection{Manifest: b.Manifest(), ManifestDigest: b.ManifestDescriptor().Digest.String(), Compression: string(comp),
			Attestations: []inspectAttest{}, LogEntries: []inspectLog{}}
		if in.Compression == "" {
			in.Compression = "none"
		}
		cd := b.ImageManifest().Config
		in.Config = ocispecDescriptor{cd.MediaType, cd.Digest.String(), cd.Size}
		cfg := b.Config()
		in.Platform = cfg.OS + "/" + cfg.Architecture
		for _, l := range b.Layers() {
			in.Layers = append(in.Layers, ocispecDescriptor{l.MediaType, l.Digest.String(), l.Size})
		}
		for _, env := range b.Attestations().Attestations {
			ia := inspectAttest{PredicateType: predicateTypeOf(env.Payload), Signers: []string{}}
			for _, s := range env.Signatures {
				ia.Signers = append(ia.Signers, s.KeyID)
			}
			in.Attestations = append(in.Attestations, ia)
		}
		for _, e := range b.Attestations().LogEntries {
			in.LogEntries = append(in.LogEntries, inspectLog{e.LogID, e.LogIndex, e.IntegratedTime, e.Signature})
		}
		for _, sb := range b.Attestations().SigstoreBundles {
			in.Sigstore = append(in.Sigstore, inspectSigstoreBundle([]byte(sb)))
		}
		w := c.App.Writer
		if c.Bool("json") {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(in)
		}
		m := in.Manifest
		fmt.Fprintf(w, "name:         %s\nversion:      %s\ncreated:      %s\nimage ref:    %s\nimage digest: %s\nplatform:     %s\ncompression:  %s\n",
			m.Name, m.Version, m.Created.Format(time.RFC3339), m.ImageRef, in.ManifestDigest, in.Platform, in.Compression)
		var total int64
		fmt.Fprintf(w, "layers:\n")
		for _, l := range in.Layers {
			total += l.Size
			fmt.Fprintf(w, "  %s  %10s  %s\n", l.Digest, humanSize(l.Size), l.MediaType)
		}
		fmt.Fprintf(w, "  total %s\nattestations (signatures not checked):\n", humanSize(total))
		for _, a := range in.Attestations {
			fmt.Fprintf(w, "  %s\n", a.PredicateType)
			if len(a.Signers) == 0 {
				fmt.Fprintf(w, "    unsigned\n")
			}
			for _, s := range a.Signers {
				fmt.Fprintf(w, "    signed by %s\n", s)
			}
		}
		if len(in.Sigstore) > 0 {
			fmt.Fprintf(w, "sigstore bundles (not checked):\n")
			for _, s := range in.Sigstore {
				fmt.Fprintf(w, "  %s\n    %s, %d log entries\n", s.PredicateType, s.Signer, s.TlogEntries)
			}
		}
		fmt.Fprintf(w, "log entries: %d\n", len(in.LogEntries))
		for _, e := range in.LogEntries {
			fmt.Fprintf(w, "  log %s index %d at %s for %s\n", e.LogID, e.LogIndex, time.Unix(e.IntegratedTime, 0).UTC().Format(time.RFC3339), e.Signature)
		}
		return nil
	},
}

func predicateTypeOf(payload string) string {
	raw, err := base64Decode(payload)
	if err != nil {
		return "(undecodable)"
	}
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	if json.Unmarshal(raw, &st) != nil {
		return "(undecodable)"
	}
	return st.PredicateType
}

var ctpPolicyCommand = &cli.Command{
	Name:  "policy",
	Usage: "work with verification policies",
	Subcommands: []*cli.Command{{
		Name:      "check",
		Usage:     "validate a policy file; errors are reported with line numbers (exit 2)",
		ArgsUsage: "FILE",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("policy check takes one FILE", exitUsage)
			}
			p, err := policy.Load(c.Args().First())
			if err != nil {
				var pe policy.Errors
				if errors.As(err, &pe) {
					return cli.Exit(err.Error(), exitMalformed)
				}
				return cli.Exit(err.Error(), exitUsage)
			}
			fmt.Fprintf(c.App.Writer, "%s: ok (mode %s, %d signers, threshold %d, %d logs, log quorum %d, required predicates %v)\n",
				c.Args().First(), p.Mode, len(p.Signers), p.Threshold, len(p.Logs), p.LogQuorum, p.RequiredPredicates)
			return nil
		},
	}},
}

var ctpLogLeavesCommand = &cli.Command{
	Name:      "log-leaves",
	Usage:     "print, one line per signature, what to append to a transparency log: a JSON object holding the leaf (base64 in \"leaf\"), or with --raw the leaf itself",
	ArgsUsage: "BUNDLE",
	Flags: []cli.Flag{
		&cli.Int64Flag{Name: "time", Usage: "integratedTime to stamp (Unix seconds, default now)"},
		&cli.BoolFlag{Name: "raw", Usage: "print each leaf itself (the canonical JSON of ctp-format §4, the bytes a log hashes), one per line"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("log-leaves takes one BUNDLE", exitUsage)
		}
		b, err := ctp.OpenFile(c.Args().First(), ctp.Options{})
		if err != nil {
			return exitFor(err)
		}
		defer b.Close()
		t := c.Int64("time")
		if t == 0 {
			t = time.Now().Unix()
		}
		leaves, err := b.Leaves(t)
		if err != nil {
			return exitFor(err)
		}
		enc := json.NewEncoder(c.App.Writer)
		for _, l := range leaves {
			if c.Bool("raw") {
				// The leaf is canonical JSON without newlines: one per line.
				if _, err := fmt.Fprintf(c.App.Writer, "%s\n", l.Leaf); err != nil {
					return exitFor(err)
				}
				continue
			}
			if err := enc.Encode(l); err != nil {
				return exitFor(err)
			}
		}
		return nil
	},
}

var ctpAttachLogCommand = &cli.Command{
	Name:      "attach-log",
	Usage:     "add transparency-log entries (JSON array or JSON lines of logEntries) to a bundle",
	ArgsUsage: "BUNDLE",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "entries", Required: true, Usage: "file with log entries, - for stdin"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write here instead of replacing BUNDLE"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("attach-log takes one BUNDLE", exitUsage)
		}
		var r io.Reader = os.Stdin
		if p := c.String("entries"); p != "-" {
			f, err := os.Open(p)
			if err != nil {
				return exitFor(err)
			}
			defer f.Close()
			r = f
		}
		entries, err := readEntries(r)
		if err != nil {
			return cli.Exit("--entries: "+err.Error(), exitMalformed)
		}
		in := c.Args().First()
		out := c.String("output")
		if out == "" {
			out = in
		}
		if err := ctp.AttachLogEntries(c.Context, in, out, entries, ctp.Options{}); err != nil {
			return exitFor(err)
		}
		fmt.Fprintf(c.App.Writer, "attached %d log entries to %s\n", len(entries), filepath.Clean(out))
		return nil
	},
}

func readEntries(r io.Reader) ([]ctp.LogEntry, error) {
	br := bufio.NewReader(io.LimitReader(r, 64<<20))
	data, err := io.ReadAll(br)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	var out []ctp.LogEntry
	if len(data) > 0 && data[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err := dec.Decode(&out)
		return out, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	for dec.More() {
		var e ctp.LogEntry
		if err := dec.Decode(&e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

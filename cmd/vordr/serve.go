//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/api"
)

func init() { commands = append(commands, serveCommand) }

var serveConfigFlag = &cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: api.DefaultConfigPath, Usage: "serve config file (docs/api.md)"}

var serveCommand = &cli.Command{
	Name:  "serve",
	Usage: "serve an authenticated API that runs containers only under io.containerd.vordr.v1",
	Description: `Listens on a unix socket (mode 0600, default ` + api.DefaultSocket + `) and, when
the config sets [tcp], on TCP with TLS. Every route under /api/v1 needs an API key
(vordr serve keys create); /healthz, /readyz and /metrics do not. Containers run
under the verification gate and the profile the operator's runtime config selects;
a caller may choose only among the profiles and policies the operator offers.
See docs/api.md.`,
	Flags: []cli.Flag{serveConfigFlag,
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "stderr log format: text or json"},
	},
	Subcommands: []*cli.Command{serveKeysCommand, serveMCPCommand},
	Action: func(c *cli.Context) error {
		if c.NArg() != 0 {
			return cli.Exit("serve takes no arguments (subcommand: keys)", exitUsage)
		}
		cfg, err := api.LoadConfig(c.String("config"))
		if err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		var h slog.Handler
		switch c.String("log-format") {
		case "json":
			h = slog.NewJSONHandler(os.Stderr, nil)
		case "text":
			h = slog.NewTextHandler(os.Stderr, nil)
		default:
			return cli.Exit("--log-format must be text or json", exitUsage)
		}
		logger := slog.New(h)
		srv, closeClient, err := newServer(cfg, logger)
		if err != nil {
			return err
		}
		defer closeClient()
		ctx, cancel := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
		defer cancel()
		if err := srv.Serve(ctx); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		logger.Info("vordr serve stopped")
		return nil
	},
}

// newServer connects to the containerd the serve config names and returns
// the API server over it; close the client when done.
func newServer(cfg *api.Config, logger *slog.Logger) (*api.Server, func() error, error) {
	client, err := containerd.New(cfg.Containerd, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, nil, cli.Exit(fmt.Sprintf("connect to containerd at %s: %v; set containerd in %s", cfg.Containerd, err, cfg.Source), exitUsage)
	}
	srv, err := api.New(cfg, client, logger)
	if err != nil {
		client.Close()
		return nil, nil, cli.Exit(err.Error(), exitUsage)
	}
	return srv, client.Close, nil
}

// apiKeyEnv carries the API key of an MCP stdio session: an environment
// variable, not a flag, so it does not show in the process list.
const apiKeyEnv = "VORDR_API_KEY"

var serveMCPCommand = &cli.Command{
	Name:  "mcp",
	Usage: "serve the MCP tools over stdin/stdout (for an agent that starts this command); the API key comes from $" + apiKeyEnv,
	Description: `Speaks the Model Context Protocol on stdin/stdout with the tools vordr_ps,
vordr_inspect, vordr_run, vordr_exec, vordr_logs, vordr_stop, vordr_rm, vordr_images, vordr_pull,
vordr_verify_image, vordr_explain,
vordr_events and vordr_policies.
The same tools are served over streamable HTTP at /mcp by 'vordr serve'. The
session acts as the API key in $` + apiKeyEnv + ` (scopes, expiry, revocation and
rate limit apply to every call). Logs go to stderr. See docs/api.md.`,
	Flags: []cli.Flag{serveConfigFlag},
	Action: func(c *cli.Context) error {
		secret := os.Getenv(apiKeyEnv)
		if secret == "" {
			return cli.Exit("set "+apiKeyEnv+" to an API key (vordr serve keys create)", exitUsage)
		}
		cfg, err := api.LoadConfig(c.String("config"))
		if err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		srv, closeClient, err := newServer(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		if err != nil {
			return err
		}
		defer closeClient()
		ctx, cancel := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
		defer cancel()
		if err := srv.ServeMCPStdio(ctx, secret); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		return nil
	},
}

// keyStore opens the key file the serve config names, or --keys.
func keyStore(c *cli.Context) (*api.KeyStore, error) {
	if p := c.String("keys"); p != "" {
		return api.OpenKeyStore(p), nil
	}
	cfg, err := api.LoadConfig(c.String("config"))
	if err != nil {
		return nil, err
	}
	return api.OpenKeyStore(cfg.Keys), nil
}

var keysFlags = []cli.Flag{serveConfigFlag,
	&cli.StringFlag{Name: "keys", Usage: "API key file (default: keys of the serve config)"},
}

var serveKeysCommand = &cli.Command{
	Name:  "keys",
	Usage: "create, list and revoke API keys (stored as SHA-256 hashes)",
	Subcommands: []*cli.Command{
		{
			Name:  "create",
			Usage: "create a key and print its secret (shown once, never stored)",
			Flags: append(append([]cli.Flag{}, keysFlags...),
				&cli.StringFlag{Name: "name", Usage: "who the key is for (shown in the audit log)"},
				&cli.StringSliceFlag{Name: "scope", Value: cli.NewStringSlice(api.ScopeRead), Usage: "read, run or admin (run implies read, admin both); repeat or comma-separate"},
				&cli.DurationFlag{Name: "ttl", Usage: "lifetime, e.g. 720h (default: no expiry)"},
				&cli.BoolFlag{Name: "json", Usage: "print the key and secret as JSON"},
			),
			Action: func(c *cli.Context) error {
				ks, err := keyStore(c)
				if err != nil {
					return cli.Exit(err.Error(), exitUsage)
				}
				var scopes []string
				for _, s := range c.StringSlice("scope") {
					for _, p := range strings.Split(s, ",") {
						if p = strings.TrimSpace(p); p != "" {
							scopes = append(scopes, p)
						}
					}
				}
				k, secret, err := ks.Create(api.CreateOptions{Name: c.String("name"), Scopes: scopes, TTL: c.Duration("ttl")})
				if err != nil {
					return cli.Exit(err.Error(), exitUsage)
				}
				if c.Bool("json") {
					return json.NewEncoder(c.App.Writer).Encode(map[string]any{"key": k, "secret": secret})
				}
				fmt.Fprintf(c.App.ErrWriter, "created key %s (scopes %s) in %s; the secret below is shown only now:\n", k.ID, strings.Join(k.Scopes, ","), ks.Path())
				fmt.Fprintln(c.App.Writer, secret)
				return nil
			},
		},
		{
			Name:  "list",
			Usage: "list keys (ids, scopes, expiry; never secrets)",
			Flags: append(append([]cli.Flag{}, keysFlags...), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
			Action: func(c *cli.Context) error {
				ks, err := keyStore(c)
				if err != nil {
					return cli.Exit(err.Error(), exitUsage)
				}
				keys, err := ks.List()
				if err != nil {
					return cli.Exit(err.Error(), exitUsage)
				}
				if c.Bool("json") {
					for i := range keys {
						keys[i].SHA256 = ""
					}
					return json.NewEncoder(c.App.Writer).Encode(keys)
				}
				tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tEXPIRES\tSTATE")
				now := time.Now()
				for _, k := range keys {
					exp, state := "never", "active"
					if !k.Expires.IsZero() {
						exp = k.Expires.Format(time.RFC3339)
						if !now.Before(k.Expires) {
							state = "expired"
						}
					}
					if !k.Revoked.IsZero() {
						state = "revoked " + k.Revoked.Format(time.RFC3339)
					}
					name := k.Name
					if name == "" {
						name = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, name, strings.Join(k.Scopes, ","), k.Created.Format(time.RFC3339), exp, state)
				}
				return tw.Flush()
			},
		},
		{
			Name:      "revoke",
			Usage:     "revoke a key; a running server refuses it from its next request",
			ArgsUsage: "KEY-ID",
			Flags:     keysFlags,
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("revoke takes one key id (vordr serve keys list)", exitUsage)
				}
				ks, err := keyStore(c)
				if err != nil {
					return cli.Exit(err.Error(), exitUsage)
				}
				if err := ks.Revoke(c.Args().First()); err != nil {
					return cli.Exit(err.Error(), 1)
				}
				fmt.Fprintf(c.App.ErrWriter, "revoked key %s\n", c.Args().First())
				return nil
			},
		},
	},
}

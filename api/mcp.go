package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vordr-project/vordr/monitor"
	"github.com/vordr-project/vordr/version"
)

// MCP tool inputs and outputs. The input types are the tools' schemas: an
// agent can ask for no more than a REST caller (a deployer).

type psIn struct{}

type psOut struct {
	Containers []Container `json:"containers"`
}

type idIn struct {
	ID string `json:"id" jsonschema:"the container's id (its name)"`
}

type runIn struct {
	Image   string   `json:"image" jsonschema:"an image in containerd, as vordr_images lists it"`
	Name    string   `json:"name,omitempty" jsonschema:"the container's name; a random one when empty"`
	Args    []string `json:"args,omitempty" jsonschema:"the command and its arguments; the image's when empty"`
	Env     []string `json:"env,omitempty" jsonschema:"environment entries (KEY=VALUE) added to the image's environment"`
	Profile string   `json:"profile,omitempty" jsonschema:"a security profile the operator offers (may only tighten the default)"`
	Policy  string   `json:"policy,omitempty" jsonschema:"a verification policy the operator offers (may only tighten the default)"`
}

type stopIn struct {
	ID             string `json:"id" jsonschema:"the container's id"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty" jsonschema:"seconds between SIGTERM and SIGKILL (0-300); the server's default when 0"`
}

type execIn struct {
	ID             string   `json:"id" jsonschema:"the container's id"`
	Args           []string `json:"args" jsonschema:"the command and its arguments"`
	Env            []string `json:"env,omitempty" jsonschema:"environment entries (KEY=VALUE) added to the container's environment"`
	TimeoutSeconds int      `json:"timeout_seconds,omitempty" jsonschema:"kill the command after this many seconds (at most 600; default 60)"`
}

type verifyIn struct {
	Image  string `json:"image" jsonschema:"an image in containerd, as vordr_images lists it"`
	Policy string `json:"policy,omitempty" jsonschema:"one of the operator's policies (vordr_policies); the default policy when empty"`
}

type pullIn struct {
	Ref string `json:"ref" jsonschema:"the image reference (host/repository:tag or @digest) from a registry the operator allows"`
}

type logsIn struct {
	ID   string `json:"id" jsonschema:"the container's id"`
	Tail int    `json:"tail,omitempty" jsonschema:"only the last this many lines (default: all of the last 1 MiB)"`
}

type logsOut struct {
	Logs string `json:"logs"`
}

type rmIn struct {
	ID    string `json:"id" jsonschema:"the container's id"`
	Force bool   `json:"force,omitempty" jsonschema:"kill a running container first"`
}

type rmOut struct {
	Deleted string `json:"deleted"`
}

type imagesOut struct {
	Images []Image `json:"images"`
}

type eventsIn struct {
	Container  string `json:"container,omitempty" jsonschema:"only this container's events"`
	Severity   string `json:"severity,omitempty" jsonschema:"only alerts of at least this severity: low, medium, high or critical"`
	Kind       string `json:"kind,omitempty" jsonschema:"only events of this kind (exec, open, connect, alert, gate, guard...)"`
	AlertsOnly bool   `json:"alerts_only,omitempty" jsonschema:"only alerts"`
	Limit      int    `json:"limit,omitempty" jsonschema:"at most this many events, the newest (default 200)"`
}

type eventsOut struct {
	Events []map[string]any `json:"events"`
}

// mcpAuth is how a tool call learns who calls: over HTTP the request's
// bearer key (checked again per call, so a revoked key stops at once);
// over stdio the key the process was started with.
type mcpAuth struct {
	s           *Server
	stdioSecret string
}

func (a *mcpAuth) identity(req *mcp.CallToolRequest, scope string) (Identity, error) {
	secret, stdio := a.stdioSecret, true
	if req.Extra != nil && req.Extra.Header != nil {
		stdio = false
		secret, _ = strings.CutPrefix(req.Extra.Header.Get("Authorization"), "Bearer ")
	}
	id, err := a.s.identify(context.Background(), strings.TrimSpace(secret))
	if err != nil {
		return Identity{}, toolError(apiError(http.StatusUnauthorized, CodeUnauthenticated, err.Error()))
	}
	if !(&Key{Scopes: id.Scopes}).Allows(scope) {
		return id, toolError(apiError(http.StatusForbidden, CodeForbidden, fmt.Sprintf("key %s has scopes %s; this tool needs %q", id.KeyID, strings.Join(id.Scopes, ","), scope)))
	}
	if stdio {
		// Over HTTP the /mcp route already took a token.
		if ok, wait := a.s.limiter.Allow(id.KeyID); !ok {
			return id, toolError(apiError(http.StatusTooManyRequests, CodeRateLimited, fmt.Sprintf("rate limit of key %s exceeded; retry in %ds", id.KeyID, retryAfterSeconds(wait))))
		}
	}
	return id, nil
}

// toolError renders an error with its stable code, so an agent can act on
// the code as a REST client acts on the status.
func toolError(err error) error {
	ae := fromErr(err)
	return fmt.Errorf("%s: %s", ae.Code, ae.Message)
}

func (a *mcpAuth) audit(tool string, id Identity, target string, err error) {
	attrs := []any{"identity", id.KeyID, "transport", "mcp", "tool", tool, "target", target}
	if id.Name != "" {
		attrs = append(attrs, "key_name", id.Name)
	}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	a.s.log.Info("audit", attrs...)
}

// NewMCP returns an MCP server whose tools act through s. stdioSecret is
// the API key of a stdio session (empty over HTTP, where each request
// carries its own).
func (s *Server) NewMCP(stdioSecret string) *mcp.Server {
	a := &mcpAuth{s: s, stdioSecret: stdioSecret}
	m := mcp.NewServer(&mcp.Implementation{Name: "vordr", Title: "vordr: verified containers under the operator's policy", Version: version.Version}, &mcp.ServerOptions{
		Instructions: "Containers run only under io.containerd.vordr.v1: images must be verified under the operator's policy, " +
			"and a profile or policy can only be chosen among those the operator offers. Tool errors start with a stable code " +
			"(unauthenticated, forbidden, refused, not_found, already_exists, invalid_argument, conflict, rate_limited).",
	})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_ps", Description: "List the containers made through vordr, with status, exit code, profile, policy and the verification gate's decision."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ psIn) (*mcp.CallToolResult, psOut, error) {
			if _, err := a.identity(req, ScopeRead); err != nil {
				return nil, psOut{}, err
			}
			out, err := s.containerList(ctx)
			if err != nil {
				return nil, psOut{}, toolError(err)
			}
			return nil, psOut{Containers: out}, nil
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_inspect", Description: "Show one container: status, exit code, profile, policy and the verification gate's decision."},
		func(ctx context.Context, req *mcp.CallToolRequest, in idIn) (*mcp.CallToolResult, Container, error) {
			if _, err := a.identity(req, ScopeRead); err != nil {
				return nil, Container{}, err
			}
			v, err := s.inspect(ctx, in.ID)
			if err != nil {
				return nil, Container{}, toolError(err)
			}
			return nil, v, nil
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_run", Description: "Create and start a container of a verified image under vordr. The verification gate refuses images that the operator's policy does not accept; the error says why."},
		func(ctx context.Context, req *mcp.CallToolRequest, in runIn) (*mcp.CallToolResult, Container, error) {
			id, err := a.identity(req, ScopeRun)
			if err != nil {
				a.audit("vordr_run", id, in.Name, err)
				return nil, Container{}, err
			}
			v, err := s.run(ctx, id, RunRequest(in), true)
			if err != nil {
				err = toolError(err)
			}
			a.audit("vordr_run", id, v.ID, err)
			return nil, v, err
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_logs", Description: "A container's stdout and stderr (the last 1 MiB at most; tail: the last lines only)."},
		func(ctx context.Context, req *mcp.CallToolRequest, in logsIn) (*mcp.CallToolResult, logsOut, error) {
			if _, err := a.identity(req, ScopeRead); err != nil {
				return nil, logsOut{}, err
			}
			logs, err := s.logs(ctx, in.ID, in.Tail)
			if err != nil {
				return nil, logsOut{}, toolError(err)
			}
			return nil, logsOut{Logs: logs}, nil
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_stop", Description: "Stop a container: SIGTERM, then SIGKILL after the timeout."},
		func(ctx context.Context, req *mcp.CallToolRequest, in stopIn) (*mcp.CallToolResult, Container, error) {
			id, err := a.identity(req, ScopeRun)
			if err == nil && (in.TimeoutSeconds < 0 || in.TimeoutSeconds > 300) {
				err = toolError(apiError(http.StatusBadRequest, CodeInvalidArgument, "timeout_seconds must be between 0 and 300"))
			}
			if err != nil {
				a.audit("vordr_stop", id, in.ID, err)
				return nil, Container{}, err
			}
			grace := s.cfg.Limits.StopGrace()
			if in.TimeoutSeconds > 0 {
				grace = time.Duration(in.TimeoutSeconds) * time.Second
			}
			v, err := s.stop(ctx, id, in.ID, grace)
			if err != nil {
				err = toolError(err)
			}
			a.audit("vordr_stop", id, in.ID, err)
			return nil, v, err
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_exec", Description: "Run a command in a running container, non-interactively, and return its exit code and output (1 MiB per stream at most). The container's profile applies to it."},
		func(ctx context.Context, req *mcp.CallToolRequest, in execIn) (*mcp.CallToolResult, ExecResult, error) {
			id, err := a.identity(req, ScopeRun)
			var res ExecResult
			if err == nil {
				if res, err = s.exec(ctx, id, in.ID, ExecRequest{Args: in.Args, Env: in.Env, TimeoutSeconds: in.TimeoutSeconds}); err != nil {
					err = toolError(err)
				}
			}
			a.audit("vordr_exec", id, in.ID, err)
			return nil, res, err
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_rm", Description: "Delete a stopped container (force: kill it first) and its snapshot."},
		func(ctx context.Context, req *mcp.CallToolRequest, in rmIn) (*mcp.CallToolResult, rmOut, error) {
			id, err := a.identity(req, ScopeRun)
			if err == nil {
				if err = s.remove(ctx, id, in.ID, in.Force); err != nil {
					err = toolError(err)
				}
			}
			a.audit("vordr_rm", id, in.ID, err)
			if err != nil {
				return nil, rmOut{}, err
			}
			return nil, rmOut{Deleted: in.ID}, nil
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_images", Description: "List containerd's images with what vordr verified at import (signers, policy); only verified images run under a strict policy."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ psIn) (*mcp.CallToolResult, imagesOut, error) {
			if _, err := a.identity(req, ScopeRead); err != nil {
				return nil, imagesOut{}, err
			}
			out, err := s.imageList(ctx)
			if err != nil {
				return nil, imagesOut{}, toolError(err)
			}
			return nil, imagesOut{Images: out}, nil
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_policies", Description: "The operator's default profile and policy, and the profiles and policies a vordr_run may choose (tighten only)."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ psIn) (*mcp.CallToolResult, Choices, error) {
			if _, err := a.identity(req, ScopeRead); err != nil {
				return nil, Choices{}, err
			}
			c, err := s.choices(ctx)
			if err != nil {
				return nil, Choices{}, toolError(err)
			}
			return nil, c, nil
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_pull", Description: "Pull an image through containerd's transfer service from a registry the operator allows; containerd's image verifiers (vordr-verifier) judge it, and the gate still decides at every run."},
		func(ctx context.Context, req *mcp.CallToolRequest, in pullIn) (*mcp.CallToolResult, Image, error) {
			id, err := a.identity(req, ScopeRun)
			var img Image
			if err == nil {
				if img, err = s.pull(ctx, PullRequest(in)); err != nil {
					err = toolError(err)
				}
			}
			a.audit("vordr_pull", id, in.Ref, err)
			return nil, img, err
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_verify_image", Description: "Re-verify an image's stored evidence (signatures, attestations) under one of the operator's policies; changes nothing."},
		func(ctx context.Context, req *mcp.CallToolRequest, in verifyIn) (*mcp.CallToolResult, VerifyResult, error) {
			if _, err := a.identity(req, ScopeRead); err != nil {
				return nil, VerifyResult{}, err
			}
			res, err := s.verify(ctx, VerifyRequest(in))
			if err != nil {
				return nil, VerifyResult{}, toolError(err)
			}
			return nil, res, nil
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_explain", Description: "Explain a container: what the verification gate decided and why, which profile guards it and who chose it, and every alert or refused operation with its evidence."},
		func(ctx context.Context, req *mcp.CallToolRequest, in idIn) (*mcp.CallToolResult, Explanation, error) {
			if _, err := a.identity(req, ScopeRead); err != nil {
				return nil, Explanation{}, err
			}
			x, err := s.explain(ctx, in.ID)
			if err != nil {
				return nil, Explanation{}, toolError(err)
			}
			return nil, x, nil
		})
	mcp.AddTool(m, &mcp.Tool{Name: "vordr_events", Description: "What vordr's guard saw in containers made through vordr: the gate's decision, execs, denied operations and alerts (anomalies), newest last."},
		func(ctx context.Context, req *mcp.CallToolRequest, in eventsIn) (*mcp.CallToolResult, eventsOut, error) {
			if _, err := a.identity(req, ScopeRead); err != nil {
				return nil, eventsOut{}, err
			}
			out, err := s.eventsFor(ctx, in)
			if err != nil {
				return nil, eventsOut{}, toolError(err)
			}
			return nil, out, nil
		})
	return m
}

func (s *Server) eventsFor(ctx context.Context, in eventsIn) (eventsOut, error) {
	ctx = s.ns(ctx)
	f := eventFilter{alertsOnly: in.AlertsOnly, kind: in.Kind}
	if in.Severity != "" {
		var sev monitor.Severity
		if err := sev.UnmarshalText([]byte(in.Severity)); err != nil {
			return eventsOut{}, apiError(http.StatusBadRequest, CodeInvalidArgument, "severity: "+err.Error())
		}
		f.minSeverity = sev
	}
	limit := in.Limit
	if limit <= 0 {
		limit = 200
	}
	if limit > maxEvents {
		limit = maxEvents
	}
	ids := func() ([]string, error) { return s.ownedIDs(ctx) }
	if in.Container != "" {
		if _, err := s.load(ctx, in.Container); err != nil {
			return eventsOut{}, err
		}
		ids = func() ([]string, error) { return []string{in.Container}, nil }
	}
	rc, err := s.cfg.runtimeConfig()
	if err != nil {
		return eventsOut{}, fmt.Errorf("the operator's runtime config: %w", err)
	}
	raw, err := s.readEvents(ctx, eventsDir(rc), f, ids)
	if err != nil {
		return eventsOut{}, err
	}
	if len(raw) > limit {
		raw = raw[len(raw)-limit:]
	}
	out := eventsOut{Events: make([]map[string]any, 0, len(raw))}
	for _, r := range raw {
		var m map[string]any
		if json.Unmarshal(r, &m) == nil {
			out.Events = append(out.Events, m)
		}
	}
	return out, nil
}

// ServeMCPStdio serves MCP over stdin/stdout as the key secret until ctx
// ends or the client closes stdin. The key is checked first, so a wrong
// one fails at start rather than at every call.
func (s *Server) ServeMCPStdio(ctx context.Context, secret string) error {
	if _, err := s.identify(ctx, secret); err != nil {
		return fmt.Errorf("API key for the MCP session: %w", err)
	}
	err := s.NewMCP(secret).Run(ctx, &mcp.StdioTransport{})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

//go:build linux

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/vordr-project/vordr/api"
)

// bearer adds an API key to every request of an MCP client.
type bearer struct {
	secret string
	next   http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.secret)
	return b.next.RoundTrip(r)
}

// mcpHTTP connects the SDK's client to the server's /mcp over its socket.
func (s *serveEnv) mcpHTTP(ctx context.Context, secret string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "vordr-test", Version: "1"}, nil)
	return c.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:             "http://vordr/mcp",
		HTTPClient:           &http.Client{Transport: bearer{secret, s.client.Transport}},
		MaxRetries:           -1,
		DisableStandaloneSSE: true,
	}, nil)
}

// callTool calls a tool and decodes its structured result into out; it
// returns the tool error text when the call ended in one.
func callTool(t *testing.T, ctx context.Context, cs *mcp.ClientSession, name string, args map[string]any, out any) string {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error %v", name, err)
	}
	if res.IsError {
		var b strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		return b.String()
	}
	if out != nil {
		data, err := json.Marshal(res.StructuredContent)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s result %s: %v", name, data, err)
		}
	}
	return ""
}

// mcpRunVerified runs a verified image through a session, waits for its
// exit through vordr_inspect and removes it.
func mcpRunVerified(t *testing.T, ctx context.Context, srv *serveEnv, adminKey string, cs *mcp.ClientSession, ref string) {
	t.Helper()
	id := uniqueID(t)
	// Removed through REST, which outlives the session, if the test fails
	// before vordr_rm.
	srv.deleteAfter(adminKey, id)
	var c api.Container
	if msg := callTool(t, ctx, cs, "vordr_run", map[string]any{"image": ref, "name": id, "args": []string{"sh", "-c", "echo start; echo done; exit 7"}}, &c); msg != "" {
		t.Fatalf("vordr_run: %s", msg)
	}
	if c.ID != id || c.Runtime != vordrRuntime {
		t.Errorf("vordr_run result %+v", c)
	}
	eventually(t, 30*time.Second, func() error {
		c = api.Container{}
		if msg := callTool(t, ctx, cs, "vordr_inspect", map[string]any{"id": id}, &c); msg != "" {
			return fmt.Errorf("vordr_inspect: %s", msg)
		}
		if c.Status != "stopped" {
			return fmt.Errorf("status %q", c.Status)
		}
		return nil
	})
	if c.ExitCode == nil || *c.ExitCode != 7 || c.Verification == nil || c.Verification.Decision != "verified" {
		t.Errorf("inspect after exit: %+v (verification %+v)", c, c.Verification)
	}
	var logs struct{ Logs string }
	if msg := callTool(t, ctx, cs, "vordr_logs", map[string]any{"id": id, "tail": 1}, &logs); msg != "" || logs.Logs != "done\n" {
		t.Errorf("vordr_logs: %s %q", msg, logs.Logs)
	}
	var ps struct{ Containers []api.Container }
	if msg := callTool(t, ctx, cs, "vordr_ps", nil, &ps); msg != "" || !strings.Contains(fmt.Sprint(ps), id) {
		t.Errorf("vordr_ps: %s %+v", msg, ps)
	}
	var ev struct{ Events []map[string]any }
	if msg := callTool(t, ctx, cs, "vordr_events", map[string]any{"container": id, "kind": "gate"}, &ev); msg != "" || len(ev.Events) != 1 {
		t.Errorf("vordr_events: %s %+v", msg, ev)
	}
	var rm struct{ Deleted string }
	if msg := callTool(t, ctx, cs, "vordr_rm", map[string]any{"id": id}, &rm); msg != "" || rm.Deleted != id {
		t.Errorf("vordr_rm: %s %+v", msg, rm)
	}
}

// TestServeMCP drives the MCP tools with the SDK's client over streamable
// HTTP (the server's socket) and over stdio (vordr serve mcp).
func TestServeMCP(t *testing.T) {
	e := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	srv := startServe(t, shared, "")
	_, runKey := srv.key("run", "")
	_, readKey := srv.key("read", "")
	_, adminKey := srv.key("admin", "")
	suffix := strconv.Itoa(os.Getpid())
	signedRef := "docker.io/vordr/mcp-signed:" + suffix
	importSigned(t, e, signedRef, "mcp-signed")
	plainRef := "docker.io/vordr/mcp-plain:" + suffix
	importPlain(t, e, plainRef, "mcp-plain")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("http", func(t *testing.T) {
		cs, err := srv.mcpHTTP(ctx, runKey)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		tools, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tl := range tools.Tools {
			names = append(names, tl.Name)
		}
		for _, want := range []string{"vordr_run", "vordr_ps", "vordr_stop", "vordr_rm", "vordr_images", "vordr_events", "vordr_inspect", "vordr_policies", "vordr_exec", "vordr_verify_image", "vordr_pull", "vordr_explain", "vordr_logs"} {
			if !strings.Contains(strings.Join(names, " "), want) {
				t.Errorf("tool %s missing from %v", want, names)
			}
		}
		var imgs struct{ Images []api.Image }
		if msg := callTool(t, ctx, cs, "vordr_images", nil, &imgs); msg != "" || !strings.Contains(fmt.Sprint(imgs), signedRef) {
			t.Errorf("vordr_images: %s", msg)
		}
		var vr api.VerifyResult
		if msg := callTool(t, ctx, cs, "vordr_verify_image", map[string]any{"image": signedRef}, &vr); msg != "" || !vr.Verified {
			t.Errorf("vordr_verify_image: %s %+v", msg, vr)
		}
		mcpRunVerified(t, ctx, srv, adminKey, cs, signedRef)

		id := uniqueID(t)
		srv.deleteAfter(adminKey, id)
		if msg := callTool(t, ctx, cs, "vordr_run", map[string]any{"image": signedRef, "name": id, "args": []string{"sleep", "600"}}, nil); msg != "" {
			t.Fatalf("vordr_run: %s", msg)
		}
		var res api.ExecResult
		if msg := callTool(t, ctx, cs, "vordr_exec", map[string]any{"id": id, "args": []string{"cat", "/etc/marker"}}, &res); msg != "" || res.ExitCode != 0 || res.Stdout != "mcp-signed\n" {
			t.Errorf("vordr_exec: %s %+v", msg, res)
		}
		var rm struct{ Deleted string }
		if msg := callTool(t, ctx, cs, "vordr_rm", map[string]any{"id": id, "force": true}, &rm); msg != "" || rm.Deleted != id {
			t.Errorf("vordr_rm force: %s %+v", msg, rm)
		}

		nc, ns := containerdState(t, e)
		msg := callTool(t, ctx, cs, "vordr_run", map[string]any{"image": plainRef, "args": []string{"true"}}, nil)
		for _, want := range []string{"refused:", plainRef, "no vordr attestations", "strict"} {
			if !strings.Contains(msg, want) {
				t.Errorf("unverified run: tool error %q does not say %q", msg, want)
			}
		}
		if c, s := containerdState(t, e); c != nc || s != ns {
			t.Errorf("a refused run left containers %d→%d, snapshots %d→%d", nc, c, ns, s)
		}
		// Raw spec fields are not in the schema: refused, nothing created.
		if msg := callTool(t, ctx, cs, "vordr_run", map[string]any{"image": signedRef, "privileged": true}, nil); msg == "" {
			t.Error("vordr_run accepted a privileged field")
		}
	})

	t.Run("http read key", func(t *testing.T) {
		cs, err := srv.mcpHTTP(ctx, readKey)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		if msg := callTool(t, ctx, cs, "vordr_ps", nil, nil); msg != "" {
			t.Errorf("vordr_ps with a read key: %s", msg)
		}
		if msg := callTool(t, ctx, cs, "vordr_run", map[string]any{"image": signedRef, "args": []string{"true"}}, nil); !strings.HasPrefix(msg, "forbidden:") {
			t.Errorf("vordr_run with a read key: %q", msg)
		}
	})

	t.Run("http without a key", func(t *testing.T) {
		if _, err := srv.mcpHTTP(ctx, "vordr_0000000000000000_"+strings.Repeat("0", 64)); err == nil {
			t.Error("an MCP session was opened with an unknown key")
		}
		r := srv.do("POST", "/mcp", "", strings.NewReader(`{}`))
		if code, _ := r.errCode(); r.status != 401 || code != api.CodeUnauthenticated {
			t.Errorf("POST /mcp without a key: %d %s", r.status, r.body)
		}
	})

	t.Run("stdio", func(t *testing.T) {
		cmd := exec.Command(srv.bin, "serve", "mcp", "--config", srv.config)
		cmd.Env = append(os.Environ(), "VORDR_API_KEY="+runKey)
		cmd.Stderr = srv.stderr
		c := mcp.NewClient(&mcp.Implementation{Name: "vordr-test", Version: "1"}, nil)
		cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			t.Fatal(err)
		}
		mcpRunVerified(t, ctx, srv, adminKey, cs, signedRef)
		if err := cs.Close(); err != nil {
			t.Errorf("close the stdio session: %v", err)
		}
		if cmd.ProcessState == nil || !cmd.ProcessState.Exited() {
			t.Errorf("vordr serve mcp still running after the session closed: %v", cmd.ProcessState)
		}
	})

	// The same server in this process, over the SDK's in-memory
	// transport: what an embedding program would do.
	t.Run("in-process", func(t *testing.T) {
		cfg, err := api.LoadConfig(srv.config)
		if err != nil {
			t.Fatal(err)
		}
		client, err := e.d.Client()
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		s, err := api.New(cfg, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		st, ct := mcp.NewInMemoryTransports()
		ss, err := s.NewMCP(runKey).Connect(ctx, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ss.Close()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "vordr-test", Version: "1"}, nil).Connect(ctx, ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		mcpRunVerified(t, ctx, srv, adminKey, cs, signedRef)
	})

	t.Run("stdio with a revoked key", func(t *testing.T) {
		id, secret := srv.key("run", "")
		if _, errOut, code := runCmd(t, srv.bin, "serve", "keys", "revoke", "--config", srv.config, id); code != 0 {
			t.Fatal(errOut)
		}
		cmd := exec.Command(srv.bin, "serve", "mcp", "--config", srv.config)
		cmd.Env = append(os.Environ(), "VORDR_API_KEY="+secret)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "revoked") {
			t.Errorf("vordr serve mcp with a revoked key: %v %s", err, out)
		}
	})
}

//go:build linux

// Command serve benchmarks `vordr serve` on a private containerd with the
// vordr shim: requests per second of GET /api/v1/containers with N
// containers (run through the API, exited, their tasks kept), and the
// latency of a run through the API (POST, wait for exit, DELETE) against
// `ctr run --rm` of the same image under the same runtime and runtime
// config, interleaved in the same run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/vordr-project/vordr/api"
	"github.com/vordr-project/vordr/internal/benchutil"
	"github.com/vordr-project/vordr/internal/daemon"
)

const image = "docker.io/vordr/busybox:bench"

type result struct {
	Containers   int       `json:"containers"`
	ListRPS      float64   `json:"list_rps"`
	ListP50MS    float64   `json:"list_p50_ms"`
	Runs         int       `json:"runs"`
	APIMedianMS  float64   `json:"api_run_median_ms"`
	CtrMedianMS  float64   `json:"ctr_run_median_ms"`
	APIPostMS    float64   `json:"api_post_median_ms"`
	APISamplesMS []float64 `json:"api_samples_ms"`
	CtrSamplesMS []float64 `json:"ctr_samples_ms"`
}

func main() {
	n := flag.Int("containers", 100, "containers present while GET /api/v1/containers is measured")
	runs := flag.Int("runs", 20, "interleaved runs per path (API, ctr)")
	dur := flag.Duration("list-duration", 5*time.Second, "how long to measure the list")
	clients := flag.Int("clients", 4, "concurrent list clients")
	shimDir := flag.String("shim-dir", "bin", "directory holding containerd-shim-vordr-v1")
	out := flag.String("json", "", "also write results as JSON to this file")
	flag.Parse()
	if err := run(*n, *runs, *dur, *clients, *shimDir, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func median(s []float64) float64 {
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	if len(c) == 0 {
		return 0
	}
	return c[len(c)/2]
}

func run(n, runs int, dur time.Duration, clients int, shimDir, jsonOut string) error {
	shimDir, err := filepath.Abs(shimDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(shimDir, "containerd-shim-vordr-v1")); err != nil {
		return fmt.Errorf("no shim in %s: run `make build` first", shimDir)
	}
	ctx := context.Background()
	d, err := daemon.Start(ctx, daemon.Options{BinDirs: []string{shimDir}, LogLevel: "warn"})
	if err != nil {
		return err
	}
	defer benchutil.UnloadGuardSetAfter()()
	defer d.Stop()
	if err := benchutil.ImportBusybox(ctx, d, image); err != nil {
		return err
	}
	// The default profile, no policy: the gate audits. Both paths send the
	// same runtime config file.
	rcPath := filepath.Join(d.Dir, "vordr.toml")
	if err := os.WriteFile(rcPath, []byte(d.VordrTOML("")), 0o600); err != nil {
		return err
	}
	cfg, err := api.ParseConfig([]byte(fmt.Sprintf("socket = %q\ncontainerd = %q\nnamespace = %q\nruntime_config = %q\nkeys = %q\nstate_dir = %q\n[limits]\nrate = -1\n",
		filepath.Join(d.Dir, "api.sock"), d.Address, d.Namespace, rcPath, filepath.Join(d.Dir, "keys.json"), filepath.Join(d.Dir, "serve"))), "bench")
	if err != nil {
		return err
	}
	client, err := containerd.New(d.Address)
	if err != nil {
		return err
	}
	defer client.Close()
	srv, err := api.New(cfg, client, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return err
	}
	_, secret, err := srv.Keys().Create(api.CreateOptions{Scopes: []string{api.ScopeAdmin}})
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	defer func() { stop(); <-served }()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", cfg.Socket)
	}}}
	do := func(method, path string, body any) (int, []byte, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, "http://vordr"+path, rd)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if code, _, err := do("GET", "/readyz", nil); err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vordr serve did not become ready")
		}
		time.Sleep(20 * time.Millisecond)
	}

	apiRun := func(id string) (total, post time.Duration, err error) {
		start := time.Now()
		code, b, err := do("POST", "/api/v1/containers", api.RunRequest{Image: image, Name: id, Args: []string{"true"}})
		if err != nil || code != http.StatusCreated {
			return 0, 0, fmt.Errorf("run %s: %d %s %v", id, code, b, err)
		}
		post = time.Since(start)
		for {
			code, b, err := do("GET", "/api/v1/containers/"+id, nil)
			if err != nil || code != 200 {
				return 0, 0, fmt.Errorf("get %s: %d %s %v", id, code, b, err)
			}
			var c api.Container
			if err := json.Unmarshal(b, &c); err != nil {
				return 0, 0, err
			}
			if c.Status == "stopped" {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		if code, b, err := do("DELETE", "/api/v1/containers/"+id, nil); err != nil || code != http.StatusNoContent {
			return 0, 0, fmt.Errorf("delete %s: %d %s %v", id, code, b, err)
		}
		return time.Since(start), post, nil
	}
	ctrBin, err := daemon.Binary("ctr")
	if err != nil {
		return err
	}
	ctrRun := func(id string) (time.Duration, error) {
		start := time.Now()
		cmd := exec.Command(ctrBin, "--address", d.Address, "--namespace", d.Namespace, "run", "--rm",
			"--runtime", api.Runtime, "--runtime-config-path", rcPath, image, id, "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("ctr run %s: %v: %s", id, err, out)
		}
		return time.Since(start), nil
	}
	var res result
	res.Containers, res.Runs = n, runs
	// Warm-up of both paths (guard program set, gate cache).
	if _, _, err := apiRun("warm-api"); err != nil {
		return err
	}
	if _, err := ctrRun("warm-ctr"); err != nil {
		return err
	}
	var posts []float64
	for i := range runs {
		t, p, err := apiRun(fmt.Sprintf("api-%d", i))
		if err != nil {
			return err
		}
		res.APISamplesMS = append(res.APISamplesMS, float64(t.Microseconds())/1000)
		posts = append(posts, float64(p.Microseconds())/1000)
		c, err := ctrRun(fmt.Sprintf("ctr-%d", i))
		if err != nil {
			return err
		}
		res.CtrSamplesMS = append(res.CtrSamplesMS, float64(c.Microseconds())/1000)
	}
	res.APIMedianMS, res.CtrMedianMS, res.APIPostMS = median(res.APISamplesMS), median(res.CtrSamplesMS), median(posts)
	fmt.Printf("run of /bin/true, %d interleaved runs: API (POST + wait for exit + DELETE) median %.1f ms (POST alone %.1f ms), ctr run --rm median %.1f ms: %.2fx\n",
		runs, res.APIMedianMS, res.APIPostMS, res.CtrMedianMS, res.APIMedianMS/res.CtrMedianMS)

	// N containers through the API; they exit, their tasks (and shims)
	// stay until deleted.
	for i := range n {
		if code, b, err := do("POST", "/api/v1/containers", api.RunRequest{Image: image, Name: fmt.Sprintf("list-%d", i), Args: []string{"true"}}); err != nil || code != http.StatusCreated {
			return fmt.Errorf("run list-%d: %d %s %v", i, code, b, err)
		}
	}
	defer func() {
		for i := range n {
			_, _, _ = do("DELETE", fmt.Sprintf("/api/v1/containers/list-%d?force=1", i), nil)
		}
	}()
	code, b, err := do("GET", "/api/v1/containers", nil)
	if err != nil || code != 200 {
		return fmt.Errorf("list: %d %v", code, err)
	}
	var list struct{ Containers []api.Container }
	if err := json.Unmarshal(b, &list); err != nil || len(list.Containers) != n {
		return fmt.Errorf("list holds %d containers, want %d (%v)", len(list.Containers), n, err)
	}
	var count atomic.Int64
	var mu sync.Mutex
	var lat []float64
	end := time.Now().Add(dur)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				s := time.Now()
				code, _, err := do("GET", "/api/v1/containers", nil)
				if err != nil || code != 200 {
					firstErr.CompareAndSwap(nil, fmt.Errorf("list: %d %v", code, err))
					return
				}
				count.Add(1)
				mu.Lock()
				lat = append(lat, float64(time.Since(s).Microseconds())/1000)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	res.ListRPS = float64(count.Load()) / dur.Seconds()
	res.ListP50MS = median(lat)
	fmt.Printf("GET /api/v1/containers with %d containers, %d clients for %v: %.0f requests/s, median %.1f ms\n", n, clients, dur, res.ListRPS, res.ListP50MS)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

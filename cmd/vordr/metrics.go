//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/metrics"
	"github.com/vordr-project/vordr/monitor"
)

func init() { commands = append(commands, metricsCommand) }

func metricsRegistry(c *cli.Context) *prometheus.Registry {
	dir := c.String("events-dir")
	if dir == "" {
		if cfg, err := config.Default(); err == nil {
			dir = cfg.Events.Dir
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&metrics.Collector{EventsDir: dir, Guard: monitor.Options{PinDir: c.String("pin-dir")}})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

var metricsCommand = &cli.Command{
	Name:  "metrics",
	Usage: "Prometheus metrics of the node's guards: kernel counters per container, events and alerts",
	Description: `A node-level exporter (systemd unit vordr-metrics): it reads the kernel counters
of every guarded container from the node's pinned eBPF maps and the events and
alerts the shims write to their logs. The shims themselves serve nothing.
Metric names and example queries: docs/monitoring.md, "Metrics".`,
	Subcommands: []*cli.Command{{
		Name:  "serve",
		Usage: "serve /metrics over HTTP",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:9464", Usage: "address to listen on (keep it local or behind a proxy: container names are labels)"},
			&cli.StringFlag{Name: "events-dir", Usage: "event log directory (default: [events] dir of the runtime config)"},
			&cli.StringFlag{Name: "pin-dir", Usage: "pinned program set directory (default /sys/fs/bpf/vordr)"},
		},
		Action: func(c *cli.Context) error {
			ctx, cancel := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer cancel()
			mux := http.NewServeMux()
			mux.Handle("/metrics", promhttp.HandlerFor(metricsRegistry(c), promhttp.HandlerOpts{}))
			mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
			ln, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return cli.Exit(fmt.Sprintf("metrics: listen on %s: %v", c.String("listen"), err), exitUsage)
			}
			fmt.Fprintf(c.App.ErrWriter, "vordr metrics: serving http://%s/metrics\n", ln.Addr())
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-ctx.Done()
				sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer scancel()
				srv.Shutdown(sctx)
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}, {
		Name:  "dump",
		Usage: "print the metrics once, in the Prometheus text format",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "events-dir", Usage: "event log directory (default: [events] dir of the runtime config)"},
			&cli.StringFlag{Name: "pin-dir", Usage: "pinned program set directory (default /sys/fs/bpf/vordr)"},
		},
		Action: func(c *cli.Context) error {
			mfs, err := metricsRegistry(c).Gather()
			if err != nil {
				return err
			}
			return writeText(c.App.Writer, mfs)
		},
	}},
}

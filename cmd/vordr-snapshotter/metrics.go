package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path"
	"strconv"
	"time"

	"github.com/containerd/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/vordr-project/vordr/plugin/snapshotter"
)

// metrics are the snapshotter's Prometheus metrics: every snapshots API call
// containerd makes, and every verified-chain decision.
type metrics struct {
	reg       *prometheus.Registry
	ops       *prometheus.CounterVec
	opSeconds *prometheus.HistogramVec
	decisions *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vordr_snapshotter_operations_total",
			Help: "Snapshots API calls served, by method and gRPC status code.",
		}, []string{"method", "code"}),
		opSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vordr_snapshotter_operation_seconds",
			Help:    "How long snapshots API calls took, by method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"method"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vordr_snapshotter_decisions_total",
			Help: "Verified-chain decisions for container snapshots, by operation and result (verified, unverified-allowed, refused).",
		}, []string{"op", "result", "cached"}),
	}
	m.reg.MustRegister(m.ops, m.opSeconds, m.decisions, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	method := path.Base(info.FullMethod)
	m.ops.WithLabelValues(method, status.Code(err).String()).Inc()
	m.opSeconds.WithLabelValues(method).Observe(time.Since(start).Seconds())
	return resp, err
}

func (m *metrics) decision(d snapshotter.Decision) {
	result := "verified"
	switch {
	case d.Err != nil && d.Allowed:
		result = "unverified-allowed"
	case d.Err != nil:
		result = "refused"
	}
	m.decisions.WithLabelValues(string(d.Op), result, strconv.FormatBool(d.Cached)).Inc()
}

// serve serves /metrics on address until ctx ends.
func (m *metrics) serve(ctx context.Context, address string) error {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.L.WithError(err).Error("metrics server")
		}
	}()
	log.L.WithField("address", ln.Addr().String()).Info("serving metrics")
	return nil
}

//go:build linux

// Command vordr-snapshotter is vordr's verifying proxy snapshotter for
// containerd: overlayfs underneath, plus the verified-chain check of
// plugin/snapshotter. containerd loads it with
//
//	[proxy_plugins.vordr]
//	  type = "snapshot"
//	  address = "/run/vordr/snapshotter.sock"
//
// and clients pick it with `--snapshotter vordr` (ctr, nerdctl), the CRI
// images config `snapshotter = "vordr"`, or `vordr import --snapshotter vordr`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/contrib/snapshotservice"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/plugin"
	"github.com/vordr-project/vordr/plugin/snapshotter"
	"github.com/vordr-project/vordr/version"
)

func main() {
	var (
		root        = flag.String("root", "/var/lib/vordr-snapshotter", "directory for the overlayfs snapshots and their metadata")
		address     = flag.String("address", "/run/vordr/snapshotter.sock", "unix socket to serve containerd's snapshots API on")
		policyFile  = flag.String("policy", "", "verification policy (TOML or gatekeeper JSON); its mode decides: strict refuses container snapshots on unverified chains, permissive warns, audit logs. Without a policy: audit")
		ctrdAddress = flag.String("containerd-address", "/run/containerd/containerd.sock", "containerd's gRPC socket, to re-verify the attestations stored for an image and publish alerts (/vordr/alert); empty: trust the snapshot labels (weaker), no alerts")
		cacheTTL    = flag.Duration("cache-ttl", 5*time.Minute, "how long a verified chain is trusted before its evidence is re-verified; 0 re-verifies on every request")
		logLevel    = flag.String("log-level", "info", "log level: debug, info, warn, error")
		metricsAddr = flag.String("metrics-address", "", "serve Prometheus metrics (operations, decisions) on this TCP address, e.g. 127.0.0.1:9465; empty: off")
		showVersion = flag.Bool("version", false, "print the version and exit")
	)
	flag.Parse()
	if *showVersion {
		fmt.Println("vordr-snapshotter", version.Version, version.Revision)
		return
	}
	if err := log.SetLevel(*logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "vordr-snapshotter:", err)
		os.Exit(2)
	}
	ttl := *cacheTTL
	if ttl <= 0 {
		ttl = -1 // snapshotter.Options: negative disables the cache
	}
	if err := run(*root, *address, *policyFile, *ctrdAddress, ttl, *metricsAddr); err != nil {
		log.L.WithError(err).Error("vordr-snapshotter failed")
		os.Exit(1)
	}
}

func run(root, address, policyFile, ctrdAddress string, cacheTTL time.Duration, metricsAddr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	defer stop()

	var m *metrics
	if metricsAddr != "" {
		m = newMetrics()
		if err := m.serve(ctx, metricsAddr); err != nil {
			return fmt.Errorf("metrics on %s: %w", metricsAddr, err)
		}
	}
	var al *alerter
	if ctrdAddress != "" {
		al = &alerter{address: ctrdAddress}
		defer al.close()
	}
	opts := snapshotter.Options{Mode: policy.Audit, CacheTTL: cacheTTL, OnDecision: func(ctx context.Context, d snapshotter.Decision) {
		logDecision(ctx, d)
		if m != nil {
			m.decision(d)
		}
		if al != nil {
			al.decision(ctx, d)
		}
	}}
	var closeChecker func() error
	if policyFile != "" {
		pol, err := policy.Load(policyFile)
		if err != nil {
			return fmt.Errorf("load policy %s: %w", policyFile, err)
		}
		pd, err := plugin.PolicyDigest(pol)
		if err != nil {
			return err
		}
		opts.Mode = pol.Mode
		if ctrdAddress != "" {
			ec := &snapshotter.EvidenceChecker{Address: ctrdAddress, Policy: pol}
			opts.Checker, closeChecker = ec, ec.Close
		} else {
			log.L.Warn("no --containerd-address: chains are trusted by their vordr labels alone, which any containerd client can set; pass containerd's address to re-verify the stored attestations")
			opts.Checker = snapshotter.LabelChecker{PolicyDigest: pd}
		}
		log.L.WithFields(log.Fields{"policy": policyFile, "mode": pol.Mode, "policy_digest": pd}).Info("verification policy loaded")
	} else {
		log.L.Warn("no --policy: every container snapshot is allowed and unverified chains are only logged (audit)")
	}

	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	inner, err := overlay.NewSnapshotter(root, overlay.AsynchronousRemove)
	if err != nil {
		return fmt.Errorf("overlayfs snapshotter in %s: %w", root, err)
	}
	sn := snapshotter.New(inner, opts)
	defer sn.Close()
	if closeChecker != nil {
		defer closeChecker()
	}

	if err := os.MkdirAll(filepath.Dir(address), 0o711); err != nil {
		return err
	}
	if err := os.Remove(address); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", address, err)
	}
	l, err := net.Listen("unix", address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", address, err)
	}
	defer os.Remove(address)

	var sopts []grpc.ServerOption
	if m != nil {
		sopts = append(sopts, grpc.UnaryInterceptor(m.interceptor))
	}
	rpc := grpc.NewServer(sopts...)
	snapshotsapi.RegisterSnapshotsServer(rpc, snapshotservice.FromSnapshotter(sn))
	errc := make(chan error, 1)
	go func() { errc <- rpc.Serve(l) }()
	log.L.WithFields(log.Fields{"address": address, "root": root, "mode": opts.Mode, "version": version.Version}).Info("vordr-snapshotter serving")

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.L.Info("vordr-snapshotter stopping")
	done := make(chan struct{})
	go func() { rpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		rpc.Stop()
	}
	return nil
}

func logDecision(ctx context.Context, d snapshotter.Decision) {
	lg := log.G(ctx).WithFields(log.Fields{
		"op": d.Op, "key": d.Key, "parent": d.Chain.Name, "namespace": d.Namespace,
		"mode": d.Mode, "cached": d.Cached, "took": d.Elapsed.String(),
	})
	switch {
	case d.Err == nil:
		lg.WithField("verified", d.Verified).Debug("vordr snapshotter: verified chain")
	case !d.Allowed:
		lg.WithError(d.Err).Error("vordr snapshotter: refused: parent chain not verified")
	case d.Mode == policy.Permissive:
		lg.WithError(d.Err).Warn("vordr snapshotter: parent chain NOT verified; allowed by permissive policy")
	default:
		lg.WithError(d.Err).Info("vordr snapshotter: parent chain not verified (audit)")
	}
}

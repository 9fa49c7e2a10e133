//go:build linux

package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	snproxy "github.com/containerd/containerd/v2/core/snapshots/proxy"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestSnapshotterMetrics: vordr-snapshotter --metrics-address serves counts
// of the snapshots API calls it answered and of its verified-chain
// decisions, in the Prometheus text format.
func TestSnapshotterMetrics(t *testing.T) {
	dir, err := os.MkdirTemp("", "vordr-snm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := startSnapshotterProc(t, "snm", dir, "", "", "--metrics-address", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if leaks := p.stop(); len(leaks) > 0 {
			t.Errorf("leaked: %v", leaks)
		}
	}()
	conn, err := grpc.NewClient("unix://"+p.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sn := snproxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "vordr")
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), "default"), 30*time.Second)
	defer cancel()
	// A container snapshot without a parent: nothing verified, allowed
	// (no policy: audit), and counted as such.
	if _, err := sn.Prepare(ctx, "default/1/snm-container", ""); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := sn.Remove(ctx, "default/1/snm-container"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			return err
		}
		var have []string
		for _, m := range mfs["vordr_snapshotter_operations_total"].GetMetric() {
			var kv []string
			for _, l := range m.GetLabel() {
				kv = append(kv, l.GetName()+"="+l.GetValue())
			}
			have = append(have, strings.Join(kv, ","))
		}
		for _, m := range mfs["vordr_snapshotter_decisions_total"].GetMetric() {
			var kv []string
			for _, l := range m.GetLabel() {
				kv = append(kv, l.GetName()+"="+l.GetValue())
			}
			have = append(have, strings.Join(kv, ","))
		}
		all := strings.Join(have, " ")
		for _, want := range []string{"code=OK,method=Prepare", "code=OK,method=Remove", "result=unverified-allowed"} {
			if !strings.Contains(all, want) {
				return fmt.Errorf("metrics lack %s: %s", want, all)
			}
		}
		return nil
	})
}

//go:build linux

package integration

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsScrape runs `vordr metrics serve` during a run: a container that
// reads /etc/shadow (an alert) and a running container (kernel counters),
// then scrapes /metrics and parses it with Prometheus' own text parser.
func TestMetricsScrape(t *testing.T) {
	bin := vordrBinary(t)
	_, _, shadowID := runIn(t, profileRuntime("balanced"), []string{"cat", "/etc/shadow"})
	events(t, shared, shadowID)

	// The gate: the test image has no evidence, so strict refuses it and
	// permissive lets it run; both decisions land in the containers' logs.
	ge := newEnv(t, shared, gateRuntime(t, shared, "strict"))
	refusedID := uniqueID(t)
	if _, err := ge.container(refusedID, []string{"true"}).NewTask(ge.ctx, cio.NullIO); err == nil {
		t.Fatal("strict ran an image without evidence")
	}
	pe := newEnv(t, shared, gateRuntime(t, shared, "permissive"))
	if code, _ := pe.runTask(pe.container(uniqueID(t), []string{"true"})); code != 0 {
		t.Fatalf("permissive: exit %d", code)
	}
	// vordr events says why a container was refused.
	if out, err := exec.Command(bin, "events", "--dir", shared.EventsDir, "--namespace", shared.Namespace, "--container", refusedID).CombinedOutput(); err != nil || !strings.Contains(string(out), "REFUSED") {
		t.Errorf("vordr events for a refused container: %v\n%s", err, out)
	}

	e := newEnv(t, shared, profileRuntime("balanced"))
	liveID := uniqueID(t)
	ctr := e.container(liveID, []string{"sh", "-c", "/bin/true; /bin/true; sleep 300"})
	task, err := ctr.NewTask(e.ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(e.ctx); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv := exec.Command(bin, "metrics", "serve", "--listen", addr, "--events-dir", shared.EventsDir)
	var log bytes.Buffer
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()

	scrape := func() map[string]*dto.MetricFamily {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		return mfs
	}
	value := func(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
		sum := 0.0
		for _, m := range mfs[name].GetMetric() {
			ok := true
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				ok = ok && found
			}
			if ok {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		return sum
	}
	eventually(t, 20*time.Second, func() error {
		mfs := scrape()
		if mfs == nil {
			return fmt.Errorf("no /metrics yet (%s)", log.String())
		}
		var missing []string
		if value(mfs, "vordr_alerts_total", map[string]string{"namespace": shared.Namespace, "rule": "sensitive-file"}) < 1 {
			missing = append(missing, "a sensitive-file alert")
		}
		if value(mfs, "vordr_events_total", map[string]string{"namespace": shared.Namespace, "kind": "exec"}) < 1 {
			missing = append(missing, "exec events")
		}
		if value(mfs, "vordr_guarded_containers", nil) < 1 {
			missing = append(missing, "a guarded container")
		}
		// The running container's kernel counters, named after its guard
		// event: its entrypoint and two /bin/true.
		if value(mfs, "vordr_guard_kernel_events_total", map[string]string{"container": liveID, "counter": "execs"}) < 3 {
			missing = append(missing, "3 execs of "+liveID)
		}
		if value(mfs, "vordr_gate_decisions_total", map[string]string{"namespace": shared.Namespace, "decision": "refused"}) < 1 ||
			value(mfs, "vordr_gate_decisions_total", map[string]string{"namespace": shared.Namespace, "decision": "unverified"}) < 1 {
			missing = append(missing, "a refused and an unverified gate decision")
		}
		if h := histCount(mfs, "vordr_gate_check_seconds"); h < 2 {
			missing = append(missing, "gate check times")
		}
		if h := histCount(mfs, "vordr_guard_attach_seconds"); h < 1 {
			missing = append(missing, "guard attach times")
		}
		if len(missing) > 0 {
			return fmt.Errorf("scrape lacks %s", strings.Join(missing, ", "))
		}
		return nil
	})
}

// histCount sums the sample counts of a histogram family.
func histCount(mfs map[string]*dto.MetricFamily, name string) uint64 {
	var n uint64
	for _, m := range mfs[name].GetMetric() {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

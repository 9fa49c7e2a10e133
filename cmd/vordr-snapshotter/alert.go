//go:build linux

package main

import (
	"context"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"

	"github.com/vordr-project/vordr/alerts"
	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/plugin/snapshotter"
)

// alerter publishes an alert on containerd's event bus (topic /vordr/alert,
// the payload vordr's runtime uses) for every container snapshot on an
// unverified chain: allowed under permissive or audit, or refused under
// strict. A Mounts check of a snapshot already reported at Prepare is not
// reported again unless it was refused.
type alerter struct {
	address string

	mu     sync.Mutex
	client *containerd.Client
	wg     sync.WaitGroup
}

type alertJSON struct {
	Rule      string `json:"rule"`
	Severity  string `json:"severity"`
	Op        string `json:"op"`
	Snapshot  string `json:"snapshot"`
	Parent    string `json:"parent"`
	Mode      string `json:"mode"`
	Allowed   bool   `json:"allowed"`
	Reason    string `json:"reason"`
	Code      string `json:"code,omitempty"`
	Time      string `json:"time"`
	Namespace string `json:"namespace"`
}

func (a *alerter) decision(ctx context.Context, d snapshotter.Decision) {
	if d.Err == nil || d.Namespace == "" || (d.Op == snapshotter.OpMounts && d.Allowed) {
		return
	}
	al := alertJSON{Rule: "unverified-chain", Severity: "high", Op: string(d.Op), Snapshot: d.Key, Parent: d.Chain.Name,
		Mode: string(d.Mode), Allowed: d.Allowed, Reason: d.Err.Error(), Code: string(ctp.CodeOf(d.Err)),
		Time: time.Now().UTC().Format(time.RFC3339Nano), Namespace: d.Namespace}
	fields := map[string]string{
		"vordr.io/rule": al.Rule, "vordr.io/severity": al.Severity, "vordr.io/snapshot": al.Snapshot,
		"vordr.io/parent": al.Parent, "vordr.io/mode": al.Mode, "vordr.io/reason": al.Reason, "vordr.io/source": "vordr-snapshotter",
	}
	ev, err := alerts.Encode(alerts.MediaTypeAlert, al, fields)
	if err != nil {
		log.G(ctx).WithError(err).Warn("vordr snapshotter: encode alert")
		return
	}
	// Off the request path: containerd is waiting for this answer.
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		c, err := a.getClient()
		if err != nil {
			log.L.WithError(err).Warn("vordr snapshotter: publish alert")
			return
		}
		pctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), d.Namespace), 10*time.Second)
		defer cancel()
		if err := c.EventService().Publish(pctx, alerts.TopicAlert, ev); err != nil {
			log.L.WithError(err).Warn("vordr snapshotter: publish alert")
		}
	}()
}

func (a *alerter) getClient() (*containerd.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client != nil {
		return a.client, nil
	}
	c, err := containerd.New(a.address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	a.client = c
	return c, nil
}

// close waits for alerts in flight and closes the connection.
func (a *alerter) close() {
	a.wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client != nil {
		a.client.Close()
		a.client = nil
	}
}

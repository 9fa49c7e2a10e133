//go:build linux

// Package metrics exports what vordr's guards see as Prometheus metrics from
// one node-level process (`vordr metrics serve`): every guarded container's
// kernel counters, read from the node's pinned eBPF maps, and the events and
// alerts the shims wrote to their event logs. The shims serve nothing and
// are never asked: a scrape costs the guarded containers nothing.
package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vordr-project/vordr/eventlog"
	"github.com/vordr-project/vordr/monitor"
)

// Collector is a prometheus.Collector over a node's guard state.
type Collector struct {
	// EventsDir is the shims' event log directory ([events] dir).
	EventsDir string
	// Guard locates the node's pinned program set (zero: the default).
	Guard monitor.Options

	mu     sync.Mutex
	tails  map[string]*tail     // by current log file path
	owners map[uint64][2]string // cgroup id → namespace, container (from guard events)
	events map[[3]string]float64
	alerts map[[3]string]float64
	gates  map[[3]string]float64
	lines  float64
	bad    float64

	checkSeconds  *prometheus.HistogramVec
	attachSeconds *prometheus.HistogramVec
}

type tail struct {
	ino uint64
	off int64
}

var (
	descContainers = prometheus.NewDesc("vordr_guarded_containers", "Containers the node's guard program set watches (live shims).", nil, nil)
	descStale      = prometheus.NewDesc("vordr_guard_stale_entries", "Entries of shims that died without closing their guard (collected at the next attach or shim delete).", nil, nil)
	descRings      = prometheus.NewDesc("vordr_guard_ring_buffers", "Ring buffers in the node's pool (256 KiB each).", nil, nil)
	descKernel     = prometheus.NewDesc("vordr_guard_kernel_events_total", "What the guard's eBPF programs counted for a container, by counter: execs, forks, exits, connects (connect, sendmsg and bind decisions), denied, killed.", []string{"namespace", "container", "counter"}, nil)
	descRing       = prometheus.NewDesc("vordr_guard_ring_events_total", "Events a container's programs wrote to its ring buffer (seen) and lost because it was full (dropped).", []string{"namespace", "container", "outcome"}, nil)
	descEvents     = prometheus.NewDesc("vordr_events_total", "Events in the shims' event logs, by kind and verdict (an aggregated event counts its count).", []string{"namespace", "kind", "verdict"}, nil)
	descAlerts     = prometheus.NewDesc("vordr_alerts_total", "Alerts in the shims' event logs, by rule and severity.", []string{"namespace", "rule", "severity"}, nil)
	descLines      = prometheus.NewDesc("vordr_metrics_log_lines_total", "Event log lines the exporter read (unparseable ones counted in vordr_metrics_log_errors_total).", nil, nil)
	descBad        = prometheus.NewDesc("vordr_metrics_log_errors_total", "Event log lines the exporter could not parse.", nil, nil)
	descGate       = prometheus.NewDesc("vordr_gate_decisions_total", "The verification gate's decisions at Create (verified, unverified but allowed by a permissive or audit policy, refused), by reason (a ctp error code).", []string{"namespace", "decision", "reason"}, nil)
	descUp         = prometheus.NewDesc("vordr_guard_set_readable", "1 when the pinned program set could be read (0: not loaded, or an error).", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descContainers, descStale, descRings, descKernel, descRing, descEvents, descAlerts, descGate, descLines, descBad, descUp} {
		ch <- d
	}
	c.init()
	c.checkSeconds.Describe(ch)
	c.attachSeconds.Describe(ch)
}

func (c *Collector) init() {
	if c.tails != nil {
		return
	}
	c.tails, c.owners = map[string]*tail{}, map[uint64][2]string{}
	c.events, c.alerts, c.gates = map[[3]string]float64{}, map[[3]string]float64{}, map[[3]string]float64{}
	c.checkSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vordr_gate_check_seconds",
		Help:    "How long the gate's check took at Create (evidence lookup, signature verification unless cached, rootfs content check).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"namespace", "cached"})
	c.attachSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vordr_guard_attach_seconds",
		Help:    "How long attaching the guard took inside Create.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25},
	}, []string{"namespace"})
}

// Collect implements prometheus.Collector: it reads the log lines written
// since the last scrape, then the kernel counters.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.init()
	c.readLogs()
	c.checkSeconds.Collect(ch)
	c.attachSeconds.Collect(ch)
	for k, v := range c.gates {
		ch <- prometheus.MustNewConstMetric(descGate, prometheus.CounterValue, v, k[0], k[1], k[2])
	}
	for k, v := range c.events {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, v, k[0], k[1], k[2])
	}
	for k, v := range c.alerts {
		ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.CounterValue, v, k[0], k[1], k[2])
	}
	ch <- prometheus.MustNewConstMetric(descLines, prometheus.CounterValue, c.lines)
	ch <- prometheus.MustNewConstMetric(descBad, prometheus.CounterValue, c.bad)

	counters, rings, err := monitor.NodeCounters(c.Guard)
	up := 1.0
	if err != nil || (counters == nil && rings == 0) {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	live, stale := 0, 0
	for _, k := range counters {
		if !k.OwnerAlive {
			stale++
			continue
		}
		live++
		ns, name := c.owner(k.CgroupID)
		for counter, v := range map[string]uint64{"execs": k.Execs, "forks": k.Forks, "exits": k.Exits, "connects": k.Connects, "denied": k.Denied, "killed": k.Killed} {
			ch <- prometheus.MustNewConstMetric(descKernel, prometheus.CounterValue, float64(v), ns, name, counter)
		}
		ch <- prometheus.MustNewConstMetric(descRing, prometheus.CounterValue, float64(k.Seen), ns, name, "seen")
		ch <- prometheus.MustNewConstMetric(descRing, prometheus.CounterValue, float64(k.Dropped), ns, name, "dropped")
	}
	ch <- prometheus.MustNewConstMetric(descContainers, prometheus.GaugeValue, float64(live))
	ch <- prometheus.MustNewConstMetric(descStale, prometheus.GaugeValue, float64(stale))
	ch <- prometheus.MustNewConstMetric(descRings, prometheus.GaugeValue, float64(rings))
}

// owner names the container of a cgroup id, as its guard's first event
// did; a container whose log was not read yet is named by its cgroup id.
func (c *Collector) owner(cgid uint64) (string, string) {
	if o, ok := c.owners[cgid]; ok {
		return o[0], o[1]
	}
	return "", "cgroup:" + strconv.FormatUint(cgid, 10)
}

// readLogs reads what was appended to every current log file since the
// last scrape. A file replaced by rotation (new inode) is read from its
// start; lines rotated away between two scrapes are not counted.
func (c *Collector) readLogs() {
	dir := c.EventsDir
	if dir == "" {
		dir = eventlog.DefaultDir
	}
	nss, _ := os.ReadDir(dir)
	seen := map[string]bool{}
	for _, ns := range nss {
		if !ns.IsDir() {
			continue
		}
		ids, _ := eventlog.Containers(dir, ns.Name())
		for _, id := range ids {
			p := eventlog.Path(dir, ns.Name(), id)
			seen[p] = true
			c.readFile(p, ns.Name())
		}
	}
	for p := range c.tails {
		if !seen[p] {
			delete(c.tails, p) // pruned
		}
	}
}

func (c *Collector) readFile(path, ns string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return
	}
	var ino uint64
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = s.Ino
	}
	t := c.tails[path]
	if t == nil || t.ino != ino || st.Size() < t.off {
		t = &tail{ino: ino}
		c.tails[path] = t
	}
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return // a partial last line is read again next time
		}
		t.off += int64(len(line))
		c.count(ns, bytes.TrimSpace(line))
	}
}

// logLine is what the exporter reads of an event log line.
type logLine struct {
	Kind        string `json:"kind"`
	Verdict     string `json:"verdict"`
	Count       int    `json:"count"`
	ContainerID string `json:"container_id"`
	CgroupID    uint64 `json:"cgroup_id"`
	Alert       *struct {
		Rule     string `json:"rule"`
		Severity string `json:"severity"`
	} `json:"alert"`
	AttachSeconds float64 `json:"attach_seconds"`
	Gate          *struct {
		Decision string  `json:"decision"`
		Reason   string  `json:"reason"`
		Seconds  float64 `json:"seconds"`
		Cached   bool    `json:"cached"`
	} `json:"gate"`
}

func (c *Collector) count(ns string, line []byte) {
	if len(line) == 0 {
		return
	}
	c.lines++
	var l logLine
	if err := json.Unmarshal(line, &l); err != nil || l.Kind == "" {
		c.bad++
		return
	}
	if l.Kind == "guard" && l.CgroupID != 0 && l.ContainerID != "" {
		c.owners[l.CgroupID] = [2]string{ns, l.ContainerID}
	}
	if l.Kind == "guard" && l.AttachSeconds > 0 {
		c.attachSeconds.WithLabelValues(ns).Observe(l.AttachSeconds)
	}
	if l.Kind == "gate" && l.Gate != nil {
		c.gates[[3]string{ns, l.Gate.Decision, l.Gate.Reason}]++
		c.checkSeconds.WithLabelValues(ns, strconv.FormatBool(l.Gate.Cached)).Observe(l.Gate.Seconds)
		return
	}
	if l.Kind == "summary" {
		return
	}
	n := float64(l.Count)
	if n < 1 {
		n = 1
	}
	if l.Alert != nil {
		c.alerts[[3]string{ns, l.Alert.Rule, l.Alert.Severity}]++
		return
	}
	c.events[[3]string{ns, l.Kind, l.Verdict}] += n
}

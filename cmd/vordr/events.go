package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vordr-project/vordr/alerts"
	"github.com/vordr-project/vordr/config"
	"github.com/vordr-project/vordr/eventlog"
	"github.com/vordr-project/vordr/monitor"
)

func init() { commands = append(commands, eventsCommand) }

var eventsCommand = &cli.Command{
	Name:  "events",
	Usage: "show what the guard saw: a container's events and alerts",
	Description: `Reads the per-container event logs the vordr shim writes (JSON lines, one
file per container under the runtime config's [events] dir, default /var/log/vordr).
With --bus, subscribes to containerd's event bus instead and prints vordr's alerts
and guard reports as they are published (topics /vordr/alert and /vordr/guard).`,
	Flags: append(containerdFlags(),
		&cli.StringFlag{Name: "container", Aliases: []string{"c"}, Usage: "only this container (default: every container of the namespace)"},
		&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new events"},
		&cli.StringFlag{Name: "dir", Usage: "event log directory (default: [events] dir of the runtime config, else " + eventlog.DefaultDir + ")"},
		&cli.BoolFlag{Name: "json", Usage: "print the raw JSON lines"},
		&cli.BoolFlag{Name: "alerts", Usage: "only alerts"},
		&cli.BoolFlag{Name: "bus", Usage: "subscribe to containerd's event bus (alerts and guard reports), implies --follow"},
	),
	Action: func(c *cli.Context) error {
		ctx, cancel := signal.NotifyContext(c.Context, os.Interrupt)
		defer cancel()
		p := &printer{w: os.Stdout, json: c.Bool("json"), alertsOnly: c.Bool("alerts")}
		if c.Bool("bus") {
			return followBus(ctx, c, p)
		}
		dir := c.String("dir")
		if dir == "" {
			if cfg, err := config.Default(); err == nil {
				dir = cfg.Events.Dir
			}
		}
		ns := c.String("namespace")
		ids := []string{c.String("container")}
		if ids[0] == "" {
			var err error
			if ids, err = eventlog.Containers(dir, ns); err != nil {
				return err
			}
			if len(ids) == 0 {
				return fmt.Errorf("no event logs for namespace %q in %s; is the container running under io.containerd.vordr.v1? (--dir, --namespace)", ns, orDefault(dir))
			}
		} else if len(eventlog.Files(dir, ns, ids[0])) == 0 {
			found, tried := resolveContainer(c, dir, ns, ids[0])
			if len(found) == 0 && !c.Bool("follow") {
				return cli.Exit(fmt.Sprintf("no container %q in namespace %q has an event log under %s (tried: %s)", ids[0], ns, orDefault(dir), strings.Join(tried, "; ")), 1)
			}
			if len(found) > 0 {
				ids = found
			}
		}
		if !c.Bool("follow") {
			for _, id := range ids {
				if err := eventlog.Read(dir, ns, id, p.line); err != nil {
					return err
				}
			}
			return nil
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(ids))
		for _, id := range ids {
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				errs <- eventlog.Follow(ctx, dir, ns, id, 0, p.line)
			}(id)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	},
}

// resolveContainer finds the containers a --container value names when it
// is not an id with a log: a unique prefix of a logged id (as docker and
// nerdctl shorten ids), or the name a client gave it — nerdctl's
// nerdctl/name label, or the Kubernetes container or pod name CRI records.
func resolveContainer(c *cli.Context, dir, ns, name string) (found, tried []string) {
	logged, _ := eventlog.Containers(dir, ns)
	has := map[string]bool{}
	for _, id := range logged {
		has[id] = true
		if strings.HasPrefix(id, name) {
			found = append(found, id)
		}
	}
	tried = append(tried, "an id or id prefix with a log")
	if len(found) > 0 {
		return found, tried
	}
	tried = append(tried, "the labels nerdctl/name, io.kubernetes.container.name, io.kubernetes.pod.name in containerd at "+c.String("address"))
	client, ctx, err := connect(c)
	if err != nil {
		tried[len(tried)-1] += " (" + err.Error() + ")"
		return nil, tried
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var filters []string
	for _, l := range []string{"nerdctl/name", "io.kubernetes.container.name", "io.kubernetes.pod.name"} {
		filters = append(filters, fmt.Sprintf("labels.%q==%q", l, name))
	}
	recs, err := client.ContainerService().List(ctx, filters...)
	if err != nil {
		tried[len(tried)-1] += " (" + err.Error() + ")"
		return nil, tried
	}
	for _, r := range recs {
		if has[r.ID] {
			found = append(found, r.ID)
		}
	}
	return found, tried
}

func orDefault(dir string) string {
	if dir == "" {
		return eventlog.DefaultDir
	}
	return dir
}

func followBus(ctx context.Context, c *cli.Context, p *printer) error {
	client, ctx, err := connect(c)
	if err != nil {
		return err
	}
	defer client.Close()
	filters := []string{`topic~="^/vordr/"`}
	evs, errs := client.EventService().Subscribe(ctx, filters...)
	for {
		select {
		case env := <-evs:
			_, data, ok := alerts.Decode(env.Event)
			if !ok {
				continue
			}
			if err := p.line(data); err != nil {
				return err
			}
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

// printer renders event log lines, as JSON or as one readable line each.
type printer struct {
	mu         sync.Mutex
	w          io.Writer
	json       bool
	alertsOnly bool
}

func (p *printer) line(data []byte) error {
	var e monitor.Event
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("event log line %q: %w", data, err)
	}
	isAlert := e.Alert != nil || (e.Kind == "" && strings.Contains(string(data), `"rule"`))
	if p.alertsOnly && !isAlert {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		_, err := fmt.Fprintf(p.w, "%s\n", data)
		return err
	}
	_, err := fmt.Fprintln(p.w, render(e, data))
	return err
}

func render(e monitor.Event, raw []byte) string {
	ts := e.Time.Local().Format(time.TimeOnly + ".000")
	head := fmt.Sprintf("%s %-8s %s", ts, e.Kind, e.ContainerID)
	if e.Count > 1 {
		// Identical audit events, counted (first pid shown).
		head += fmt.Sprintf(" ×%d (until %s)", e.Count, e.Last.Local().Format(time.TimeOnly+".000"))
	}
	switch e.Kind {
	case monitor.KindGuard:
		keys := make([]string, 0, len(e.Mechanisms))
		for k := range e.Mechanisms {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString(head)
		if e.Message != "" {
			b.WriteString(" " + e.Message)
		}
		for _, k := range keys {
			fmt.Fprintf(&b, "\n    %-18s %s", k, e.Mechanisms[k])
		}
		return b.String()
	case monitor.KindExec:
		s := fmt.Sprintf("%s pid=%d %s %q", head, e.PID, e.Path, e.Args)
		if e.Drift {
			s += " DRIFT"
		}
		return s + verdict(e)
	case monitor.KindExit:
		return fmt.Sprintf("%s pid=%d status=%d", head, e.PID, e.ExitStatus)
	case monitor.KindConnect, monitor.KindBind, monitor.KindSend:
		return fmt.Sprintf("%s pid=%d %s %s:%d", head, e.PID, e.Protocol, e.Addr, e.Port) + verdict(e)
	case monitor.KindSyscall:
		return fmt.Sprintf("%s pid=%d %s", head, e.PID, e.Syscall) + verdict(e)
	case monitor.KindOpen:
		return fmt.Sprintf("%s pid=%d %s", head, e.PID, e.Path) + verdict(e)
	case monitor.KindAlert:
		if e.Alert != nil {
			return fmt.Sprintf("%s [%s] %s: %s%s", head, e.Alert.Severity, e.Alert.Rule, e.Alert.Message, evidence(e.Alert.Evidence))
		}
	}
	if e.Kind == "gate" {
		var g struct {
			Gate struct {
				Decision, Policy, Image, Reason, Message string
				Seconds                                  float64
			} `json:"gate"`
		}
		if json.Unmarshal(raw, &g) == nil {
			s := fmt.Sprintf("%s %s image %s under policy %q (%.1f ms)", head, strings.ToUpper(g.Gate.Decision), g.Gate.Image, g.Gate.Policy, g.Gate.Seconds*1000)
			if g.Gate.Message != "" {
				s += ": " + g.Gate.Message
			}
			return s
		}
	}
	if e.Kind == "" || e.Kind == "summary" {
		// Summaries and bus reports: print as they are.
		return string(raw)
	}
	return fmt.Sprintf("%s pid=%d %s%s", head, e.PID, e.Path, verdict(e))
}

func verdict(e monitor.Event) string {
	if e.Verdict == "" || e.Verdict == monitor.Allowed {
		return ""
	}
	return fmt.Sprintf(" => %s (%s)", strings.ToUpper(string(e.Verdict)), e.Mechanism)
}

func evidence(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return " (" + strings.Join(parts, " ") + ")"
}

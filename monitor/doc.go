// Package monitor puts one container under guard: it shapes the OCI spec
// with a security profile before runc create, attaches eBPF and fanotify
// enforcement to that container only between create and start, decodes the
// kernel's events, runs the anomaly detector and removes every trace at
// delete. docs/monitoring.md explains the design; docs/profiles.md the
// profiles.
//
// The shim's sequence:
//
//	agent, _ := monitor.StartSeccompAgent(path)      // once per shim (optional)
//	p, _ := monitor.LoadProfile(name)                // dev, balanced, strict, file, TOML
//	p.ApplySpec(spec, monitor.WithSeccompAgent(agent))
//	pp, _ := monitor.Prepare(monitor.Options{Seccomp: agent}) // the set, a ring, its reader: while runc creates
//	// runc create
//	g, err := pp.Attach(ctx, monitor.Target{...}, p) // or monitor.Attach(ctx, target, p, opts)
//	// err != nil && p.Required: refuse Create; dev: carry on, loudly
//	for e := range g.Events() { ... }                // until Close
//	g.Stats()
//	g.Close()                                        // at task delete
//	monitor.Collect(monitor.Options{})               // "shim delete" after a dead shim
//
// monitor.Probe reports which mechanism this kernel offers for what
// (vordr doctor). The package never logs: problems are errors, events or
// alerts.
package monitor

//go:build linux

package monitor

import (
	"testing"

	"golang.org/x/sys/unix"

	vbpf "github.com/vordr-project/vordr/bpf"
)

// BenchmarkConnectEvent is the shim's work per audit-level connect of a
// connect storm: decode the ring record, key it for aggregation, count it.
func BenchmarkConnectEvent(b *testing.B) {
	g := &Guard{}
	raw := vbpf.Event{Type: vbpf.EvConnect, Family: unix.AF_INET, Proto: 6, Port: 8080, Pid: 42}
	copy(raw.Addr[:], []byte{127, 0, 0, 1})
	for i, c := range "curl" {
		raw.Comm[i] = int8(c)
	}
	agg := newAggregator()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := g.decode(&raw)
		key, ok := aggregateKey(&e)
		if !ok {
			b.Fatal("a plain connect is not aggregated")
		}
		agg.add(key, &e)
		if i%256 == 255 {
			agg.order, agg.byKey = agg.order[:0], map[aggKey]*Event{}
		}
	}
}

// BenchmarkExecEvent is the shim's work per audit-level exec of an exec
// storm: decode the ring record, key it for aggregation, count it.
func BenchmarkExecEvent(b *testing.B) {
	g := &Guard{}
	raw := vbpf.Event{Type: vbpf.EvExec, Pid: 42, Ppid: 1}
	for i, c := range "/bin/true" {
		raw.Filename[i] = int8(c)
	}
	for i, c := range "true\x00--version" {
		raw.Args[i] = int8(c)
	}
	raw.ArgsLen = uint32(len("true\x00--version"))
	for i, c := range "true" {
		raw.Comm[i] = int8(c)
	}
	agg := newAggregator()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := g.decode(&raw)
		key, ok := aggregateKey(&e)
		if !ok {
			b.Fatal("a plain exec is not aggregated")
		}
		agg.add(key, &e)
		if i%256 == 255 {
			agg.order, agg.byKey = agg.order[:0], map[aggKey]*Event{}
		}
	}
}

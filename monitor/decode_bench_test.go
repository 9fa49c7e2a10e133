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
	raw := vbpf.Event{Type: vbpf.EvConnect, Family: unix.AF_INET, Proto: 6, Port: 8080, Pid: 42}
	copy(raw.Addr[:], []byte{127, 0, 0, 1})
	setCString(raw.Comm[:], "curl")
	benchmarkEvent(b, &raw)
}

// BenchmarkExecEvent is the same per audit-level exec of an exec storm.
func BenchmarkExecEvent(b *testing.B) {
	raw := vbpf.Event{Type: vbpf.EvExec, Pid: 42, Ppid: 1}
	setCString(raw.Filename[:], "/bin/true")
	setCString(raw.Args[:], "true\x00--version")
	raw.ArgsLen = uint32(len("true\x00--version"))
	setCString(raw.Comm[:], "true")
	benchmarkEvent(b, &raw)
}

// benchmarkEvent decodes, keys and counts raw as the ring reader does, in
// batches of 256 as the reader hands them on.
func benchmarkEvent(b *testing.B, raw *vbpf.Event) {
	g := &Guard{}
	agg := newAggregator()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := g.decode(raw)
		key, ok := aggregateKey(&e)
		if !ok {
			b.Fatalf("a plain %s event is not aggregated", e.Kind)
		}
		agg.add(key, &e)
		if i%256 == 255 {
			agg.order = agg.order[:0]
			clear(agg.byKey)
		}
	}
}

func setCString(dst []int8, s string) {
	for i := 0; i < len(s); i++ {
		dst[i] = int8(s[i])
	}
}

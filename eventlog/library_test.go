package eventlog

// Log rotation stays hand-written: the writer runs inside the containerd
// shim on the guard's event path. gopkg.in/natefinch/lumberjack.v2 is
// measured here against it (docs/libraries.md): lumberjack has no write
// buffer (one write(2) per event, under its lock), sizes in whole
// megabytes, and names rotated files by timestamp, which Files, Read, Follow
// and Prune (and `vordr events`, `vordr metrics`) would have to learn.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// benchEvent is shaped like monitor.Event for an exec (about 330 bytes of
// JSON), the guard's most frequent record.
type benchEvent struct {
	Time        time.Time `json:"time"`
	Kind        string    `json:"kind"`
	ContainerID string    `json:"container_id"`
	CgroupID    uint64    `json:"cgroup_id"`
	PID         int       `json:"pid,omitempty"`
	PPID        int       `json:"ppid,omitempty"`
	UID         uint32    `json:"uid"`
	EUID        uint32    `json:"euid"`
	Comm        string    `json:"comm,omitempty"`
	Path        string    `json:"path,omitempty"`
	Args        []string  `json:"args,omitempty"`
	Verdict     string    `json:"verdict,omitempty"`
	Severity    string    `json:"severity,omitempty"`
}

func newBenchEvent() benchEvent {
	return benchEvent{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Kind: "exec",
		ContainerID: "3f4e0b1c9a7d4b2e8f6a5c3d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f", CgroupID: 123456,
		PID: 4242, PPID: 1, Comm: "sh", Path: "/usr/bin/curl", Args: []string{"curl", "-fsSL", "https://example.com/install.sh"},
		Verdict: "allowed", Severity: "info",
	}
}

// BenchmarkWrite_Handwritten: Writer.Write as the guard calls it, 10 MiB
// files, 3 kept (the defaults), rotation included.
func BenchmarkWrite_Handwritten(b *testing.B) {
	w, err := Create(b.TempDir(), "ns", "c1", 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ev := newBenchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Write(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrite_Lumberjack: the same records through lumberjack with the
// same limits (10 MB, 3 backups); the JSON encoding is the same code.
func BenchmarkWrite_Lumberjack(b *testing.B) {
	l := &lumberjack.Logger{Filename: filepath.Join(b.TempDir(), "ns", "c1.jsonl"), MaxSize: 10, MaxBackups: 3}
	defer l.Close()
	ev := newBenchEvent()
	b.ReportAllocs()
	for b.Loop() {
		line, err := json.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Write(append(line, '\n')); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLumberjackLayoutDiffers records one reason for keeping the writer: a
// log rotated by lumberjack is not what Files and Read understand, so
// rotated events would vanish from `vordr events`. If this fails, the
// library's naming changed; revisit docs/libraries.md.
func TestLumberjackLayoutDiffers(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 MiB")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o700); err != nil {
		t.Fatal(err)
	}
	l := &lumberjack.Logger{Filename: Path(dir, "ns", "c1"), MaxSize: 1, MaxBackups: 3}
	line, _ := json.Marshal(newBenchEvent())
	line = append(line, '\n')
	n := 0
	for written := 0; written <= 1<<20; written += len(line) {
		if _, err := l.Write(line); err != nil {
			t.Fatal(err)
		}
		n++
	}
	l.Close()
	ents, _ := os.ReadDir(filepath.Join(dir, "ns"))
	if len(ents) != 2 {
		t.Fatalf("lumberjack left %d files, want the current and one backup", len(ents))
	}
	got := 0
	if err := Read(dir, "ns", "c1", func([]byte) error { got++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got == n {
		t.Fatalf("all %d lines of a lumberjack-rotated log are readable: its naming now matches; revisit docs/libraries.md", n)
	}
}

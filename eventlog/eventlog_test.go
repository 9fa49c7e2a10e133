package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

func TestWriteRotateRead(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, "ns", "c1", 200, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 150; i++ {
		if err := w.Write(map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files := Files(dir, "ns", "c1")
	if len(files) != 3 {
		t.Fatalf("files %v, want current + 2 rotated", files)
	}
	var got []int
	if err := Read(dir, "ns", "c1", func(line []byte) error {
		var v map[string]int
		if err := json.Unmarshal(line, &v); err != nil {
			return err
		}
		got = append(got, v["n"])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The oldest were dropped; what remains is in order and ends with 149.
	if len(got) == 0 || got[len(got)-1] != 149 || len(got) >= 150 {
		t.Fatalf("read %v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i] != got[i-1]+1 {
			t.Fatalf("out of order: %v", got)
		}
	}
	ids, err := Containers(dir, "ns")
	if err != nil || len(ids) != 1 || ids[0] != "c1" {
		t.Fatalf("containers %v %v", ids, err)
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, "ns", "c", 120, 3)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	seen := map[string]bool{}
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, dir, "ns", "c", 10*time.Millisecond, func(line []byte) error {
			mu.Lock()
			seen[string(line)] = true
			mu.Unlock()
			return nil
		})
	}()
	for i := 0; i < 20; i++ {
		if err := w.Write(fmt.Sprintf("event-%02d", i)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		time.Sleep(15 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("followed %d of 20 lines: %v", n, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestPrune: finished logs beyond the count or older than the age go;
// running containers' logs stay, however old.
func TestPrune(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	write := func(id string, finished bool, age time.Duration) {
		w, err := Create(dir, "ns", id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(map[string]any{"kind": "exec"})
		if finished {
			w.Write(map[string]any{"kind": "summary"})
		}
		w.Close()
		os.Chtimes(Path(dir, "ns", id), now.Add(-age), now.Add(-age))
	}
	write("running-old", false, 30*24*time.Hour)
	write("done-1", true, time.Hour)
	write("done-2", true, 2*time.Hour)
	write("done-3", true, 3*time.Hour)
	write("done-ancient", true, 30*24*time.Hour)
	removed, err := Prune(dir, "ns", 2, 7*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(removed)
	if !slices.Equal(removed, []string{"done-3", "done-ancient"}) {
		t.Errorf("removed %v", removed)
	}
	left, _ := Containers(dir, "ns")
	sort.Strings(left)
	if !slices.Equal(left, []string{"done-1", "done-2", "running-old"}) {
		t.Errorf("left %v", left)
	}

	// Fewer logs than keep: only age can make one due, and it still does.
	write("done-ancient", true, 30*24*time.Hour)
	removed, err = Prune(dir, "ns", 100, 7*24*time.Hour, now)
	if err != nil || !slices.Equal(removed, []string{"done-ancient"}) {
		t.Errorf("with keep = 100: removed %v, %v; want the log older than max_age", removed, err)
	}
	if removed, err = Prune(dir, "ns", 100, 7*24*time.Hour, now); err != nil || len(removed) != 0 {
		t.Errorf("nothing due: removed %v, %v", removed, err)
	}
}

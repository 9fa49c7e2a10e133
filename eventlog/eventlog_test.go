package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
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

package api

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A log beyond the limit keeps its newest half, whole lines, in <log>.1 and
// starts again at zero, where a writer holding it open O_APPEND (the shim)
// goes on writing; the tail read sees both parts in order.
func TestCapLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644) // as the shim opens it
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 1; i <= 10000; i++ {
		fmt.Fprintf(w, "line %05d\n", i) // 11 bytes a line
	}
	const limit = 4096
	if err := capLog(path, limit); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path + ".1")
	if err != nil {
		t.Fatal(err)
	}
	if len(old) > limit/2 || !strings.HasPrefix(string(old), "line ") || !strings.HasSuffix(string(old), "line 10000\n") {
		t.Fatalf("rotated part: %d bytes, %q…%q; want at most %d bytes of whole lines ending with the newest", len(old), old[:min(20, len(old))], old[max(0, len(old)-20):], limit/2)
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Fatalf("the log was not cut: %d bytes", fi.Size())
	}
	fmt.Fprintf(w, "line 10001\n")
	if fi, _ := os.Stat(path); fi.Size() != 11 {
		t.Fatalf("the writer's next line did not land at the start of the cut log: size %d", fi.Size())
	}
	data, _, err := readLogTail(path, 3, 1<<20)
	if err != nil || string(data) != "line 09999\nline 10000\nline 10001\n" {
		t.Fatalf("tail across the rotation: %q, %v", data, err)
	}
	// Within the limit nothing changes.
	if err := capLog(path, limit); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != 11 {
		t.Errorf("a log within the limit was rotated")
	}
	removeLog(path)
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Errorf("the rotated part outlived its container: %v", err)
	}
}

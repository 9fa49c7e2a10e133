package api

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := NewLimiter(2, 3)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("4th request: ok=%v wait=%v, want refused with 500ms", ok, wait)
	}
	if retryAfterSeconds(wait) != 1 {
		t.Errorf("Retry-After %d", retryAfterSeconds(wait))
	}
	// Another identity has its own bucket.
	if ok, _ := l.Allow("b"); !ok {
		t.Error("identity b limited by a's requests")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Error("a token was due after 500ms")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Error("only one token was due")
	}
	// Refill never exceeds the burst.
	now = now.Add(time.Hour)
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d after a long pause refused", i)
		}
	}
	if ok, _ := l.Allow("a"); ok {
		t.Error("burst exceeded after a long pause")
	}
	if ok, _ := NewLimiter(-1, 0).Allow("a"); !ok {
		t.Error("a disabled limiter refused")
	}
}

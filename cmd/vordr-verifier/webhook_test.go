package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestPostAlerts(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Header.Get("Content-Type")+" "+string(b))
		mu.Unlock()
		if strings.Contains(string(b), "fail") {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	var stderr bytes.Buffer
	in := strings.NewReader("{\"rule\":\"a\"}\n\n{\"rule\":\"fail\"}\n{\"rule\":\"b\"}\n")
	if err := postAlerts(srv.URL, in, &stderr); err != nil {
		t.Fatal(err)
	}
	want := []string{`application/json {"rule":"a"}`, `application/json {"rule":"fail"}`, `application/json {"rule":"b"}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("posted %q, want %q", got, want)
	}
	if !strings.Contains(stderr.String(), "502") {
		t.Errorf("a refused delivery is not reported: %q", stderr.String())
	}
	for _, bad := range []string{"", "ftp://x", "http://", "unix:///run/x"} {
		if err := postAlerts(bad, strings.NewReader(""), io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

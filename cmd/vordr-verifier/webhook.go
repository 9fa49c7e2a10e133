package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxAlert bounds one alert line.
const maxAlert = 1 << 20

// postAlerts POSTs each JSON line of r to target (the runtime config's
// [events] webhook), in order, each with a 5 s timeout, until r ends. A
// failed delivery is reported on stderr and not retried: the alert is in the
// container's event log and was published on containerd's bus.
func postAlerts(target string, r io.Reader, stderr io.Writer) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook %q: want an http:// or https:// URL", target)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxAlert)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		resp, err := client.Post(target, "application/json", bytes.NewReader(line))
		if err != nil {
			fmt.Fprintf(stderr, "vordr-verifier webhook: post to %s: %v\n", u.Host, err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			fmt.Fprintf(stderr, "vordr-verifier webhook: %s answered %s\n", u.Host, resp.Status)
		}
	}
	return sc.Err()
}

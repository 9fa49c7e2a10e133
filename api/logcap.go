package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// The shim appends a container's output to its log file (containerd's
// file:// log, opened O_APPEND) for as long as the container runs, however
// much the workload prints. serve keeps each log within
// limits.max_log_bytes: a log that grew beyond it has its newest half
// copied to <log>.1 and is cut to zero, where the shim's next write lands
// (logrotate's copytruncate). What the workload writes between the copy and
// the cut, a few milliseconds, is lost; the log never is.

// logCapInterval is how often serve looks at the logs: a workload writing
// flat out adds at most this much time's output beyond the limit.
const logCapInterval = 2 * time.Second

// capLogsLoop caps the logs until ctx ends.
func (s *Server) capLogsLoop(ctx context.Context) {
	t := time.NewTicker(logCapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.capLogs()
		}
	}
}

// capLogs makes one pass over the namespace's logs.
func (s *Server) capLogs() {
	logs, _ := filepath.Glob(filepath.Join(s.cfg.StateDir, "logs", s.cfg.Namespace, "*.log"))
	for _, p := range logs {
		if err := capLog(p, s.cfg.Limits.MaxLogBytes); err != nil {
			s.log.Warn("cap a container's output log", "path", p, "error", err)
		}
	}
}

// capLog rotates path when it holds more than max bytes.
func capLog(path string, max int64) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // removed with its container
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() <= max {
		return err
	}
	keep := max / 2
	buf := make([]byte, keep)
	n, err := f.ReadAt(buf, fi.Size()-keep)
	if err != nil && err != io.EOF {
		return err
	}
	buf = buf[:n]
	if i := bytes.IndexByte(buf, '\n'); i >= 0 && i < len(buf)-1 {
		buf = buf[i+1:] // whole lines
	}
	tmp := path + ".1.tmp"
	if err := os.WriteFile(tmp, buf, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path+".1"); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Truncate(path, 0); err != nil {
		return fmt.Errorf("cut %s after keeping its newest %d bytes in %s.1: %w", path, len(buf), path, err)
	}
	return nil
}

// removeLog removes a container's log and its rotated part.
func removeLog(path string) {
	os.Remove(path)
	os.Remove(path + ".1")
}

// readLogTail is readTail over the log and, when the log holds less than
// max bytes, the end of its rotated part before it.
func readLogTail(path string, n int, max int64) ([]byte, int64, error) {
	data, end, err := readTail(path, -1, max)
	if err != nil {
		return nil, 0, err
	}
	if int64(len(data)) < max {
		if older, _, err := readTail(path+".1", -1, max-int64(len(data))); err == nil {
			data = append(older, data...)
		}
	}
	return lastLines(data, n), end, nil
}

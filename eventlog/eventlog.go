// Package eventlog writes and reads vordr's per-container event logs: one
// JSON object per line, one file per container, rotated by size. The shim
// writes them; `vordr events` reads and follows them.
package eventlog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultDir is where event logs go unless the runtime config says otherwise.
const DefaultDir = "/var/log/vordr"

const (
	defaultMaxBytes = 10 << 20
	defaultMaxFiles = 3
	suffix          = ".jsonl"
)

// Path is the current log file of container id in namespace ns.
func Path(dir, ns, id string) string {
	if dir == "" {
		dir = DefaultDir
	}
	return filepath.Join(dir, ns, id+suffix)
}

// Writer appends JSON lines to one container's log, rotating it at MaxBytes
// into id.jsonl.1 … id.jsonl.N (oldest dropped). It is safe for concurrent use.
type Writer struct {
	path     string
	maxBytes int64
	maxFiles int

	mu   sync.Mutex
	f    *os.File
	bw   *bufio.Writer
	size int64
}

// Create opens (appending) the log of container id. maxBytes ≤ 0 and
// maxFiles ≤ 0 take the defaults (10 MiB, 3 rotated files).
func Create(dir, ns, id string, maxBytes int64, maxFiles int) (*Writer, error) {
	if maxBytes <= 0 {
		maxBytes = defaultMaxBytes
	}
	if maxFiles <= 0 {
		maxFiles = defaultMaxFiles
	}
	w := &Writer{path: Path(dir, ns, id), maxBytes: maxBytes, maxFiles: maxFiles}
	if err := os.MkdirAll(filepath.Dir(w.path), 0o700); err != nil {
		return nil, fmt.Errorf("create event log directory: %w", err)
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

// Path is the file being written.
func (w *Writer) Path() string { return w.path }

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open event log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open event log: %w", err)
	}
	w.f, w.bw, w.size = f, bufio.NewWriterSize(f, 64<<10), st.Size()
	return nil
}

// Write appends v as one JSON line. Lines are buffered; Flush or Close makes
// them visible.
func (w *Writer) Write(v any) error {
	line, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return errors.New("event log is closed")
	}
	if w.size > 0 && w.size+int64(len(line)) > w.maxBytes {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.bw.Write(line)
	w.size += int64(n)
	return err
}

func (w *Writer) rotate() error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	os.Remove(fmt.Sprintf("%s.%d", w.path, w.maxFiles))
	for i := w.maxFiles - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", w.path, i), fmt.Sprintf("%s.%d", w.path, i+1))
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil {
		return fmt.Errorf("rotate event log: %w", err)
	}
	return w.open()
}

// Flush writes buffered lines to the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.bw == nil {
		return nil
	}
	return w.bw.Flush()
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.bw.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f, w.bw = nil, nil
	return err
}

// Files lists a container's log files, oldest first (rotated ones, then the
// current one).
func Files(dir, ns, id string) []string {
	cur := Path(dir, ns, id)
	matches, _ := filepath.Glob(cur + ".*")
	sort.Slice(matches, func(i, j int) bool { return rotIndex(matches[i]) > rotIndex(matches[j]) })
	if _, err := os.Stat(cur); err == nil {
		matches = append(matches, cur)
	}
	return matches
}

func rotIndex(p string) int {
	var n int
	fmt.Sscanf(p[strings.LastIndex(p, ".")+1:], "%d", &n)
	return n
}

// Containers lists the containers with logs in namespace ns.
func Containers(dir, ns string) ([]string, error) {
	if dir == "" {
		dir = DefaultDir
	}
	ents, err := os.ReadDir(filepath.Join(dir, ns))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), suffix); ok && !e.IsDir() {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Read sends every line of a container's logs, oldest first, to fn.
func Read(dir, ns, id string, fn func(line []byte) error) error {
	for _, p := range Files(dir, ns, id) {
		if err := readFile(p, 0, fn); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func readFile(path string, off int64, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Follow reads a container's log like Read, then keeps sending new complete
// lines as they are written (following rotation) until ctx ends.
func Follow(ctx context.Context, dir, ns, id string, poll time.Duration, fn func(line []byte) error) error {
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	path := Path(dir, ns, id)
	files := Files(dir, ns, id)
	for _, p := range files {
		if p == path {
			break
		}
		if err := readFile(p, 0, fn); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	var off int64
	var ino uint64
	var partial []byte
	for {
		f, err := os.Open(path)
		if err == nil {
			st, _ := f.Stat()
			cur := inode(st)
			if ino != 0 && cur != ino {
				off, partial = 0, nil // rotated: start the new file from its beginning
			}
			ino = cur
			if st.Size() < off {
				off = 0
			}
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				data, _ := io.ReadAll(f)
				off += int64(len(data))
				data = append(partial, data...)
				for {
					i := strings.IndexByte(string(data), '\n')
					if i < 0 {
						break
					}
					if err := fn(data[:i]); err != nil {
						f.Close()
						return err
					}
					data = data[i+1:]
				}
				partial = append([]byte(nil), data...)
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// Prune removes the logs of finished containers (their last line is the
// summary the shim writes at delete, or the guard-lost record written after
// a dead shim) in namespace ns: every one older than maxAge (0: no age
// limit), then the oldest beyond keep (≤ 0: no count limit). Logs of
// containers still running are never touched. It returns what it removed.
func Prune(dir, ns string, keep int, maxAge time.Duration, now time.Time) ([]string, error) {
	ids, err := Containers(dir, ns)
	if err != nil {
		return nil, err
	}
	type entry struct {
		id    string
		mtime time.Time
		size  int64
	}
	var logs []entry
	anyOld := false
	for _, id := range ids {
		fi, err := os.Stat(Path(dir, ns, id))
		if err != nil {
			continue
		}
		logs = append(logs, entry{id, fi.ModTime(), fi.Size()})
		anyOld = anyOld || (maxAge > 0 && now.Sub(fi.ModTime()) > maxAge)
	}
	if !anyOld && (keep <= 0 || len(logs) <= keep) {
		// Nothing can be due: no log is too old and there are no more
		// logs than keep, finished or not. The common case, decided
		// without reading a single log.
		return nil, nil
	}
	var finished []entry
	for _, l := range logs {
		if finishedLog(Path(dir, ns, l.id), l.size) {
			finished = append(finished, l)
		}
	}
	sort.Slice(finished, func(i, j int) bool { return finished[i].mtime.After(finished[j].mtime) })
	var removed []string
	var errs []error
	for i, f := range finished {
		old := maxAge > 0 && now.Sub(f.mtime) > maxAge
		over := keep > 0 && i >= keep
		if !old && !over {
			continue
		}
		for _, p := range Files(dir, ns, f.id) {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		removed = append(removed, f.id)
	}
	return removed, errors.Join(errs...)
}

// finishedLog reads the last line of a log file: does it end the
// container's story?
func finishedLog(p string, size int64) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	const tail = 4096
	off := max(size-tail, 0)
	b := make([]byte, size-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	b = []byte(strings.TrimRight(string(b), "\n"))
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		b = b[i+1:]
	}
	var last struct {
		Kind  string `json:"kind"`
		Alert *struct {
			Message string `json:"message"`
		} `json:"alert"`
	}
	if json.Unmarshal(b, &last) != nil {
		return false
	}
	return last.Kind == "summary" || (last.Alert != nil && strings.HasPrefix(last.Alert.Message, "guard lost"))
}

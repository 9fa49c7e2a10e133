//go:build linux

package testimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	pauseOnce sync.Once
	pauseImg  *Image
	pauseErr  error
)

func defaultPause(t *testing.T) *Image {
	t.Helper()
	pauseOnce.Do(func() { pauseImg, pauseErr = Pause(context.Background(), Options{}) })
	if pauseErr != nil {
		t.Fatal(pauseErr)
	}
	return pauseImg
}

// pauseBinary returns the /pause of the pause image, written to a file.
func pauseBinary(t *testing.T) string {
	t.Helper()
	p := parseArchive(t, archiveBytes(t, defaultPause(t)))
	_, entries := readLayer(t, p.layerTar)
	e := entries["pause"]
	if e.hdr == nil || e.hdr.Typeflag != tar.TypeReg || e.hdr.Mode != 0o755 {
		t.Fatalf("pause image has no executable /pause: %+v", e.hdr)
	}
	bin := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(bin, e.content, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestPauseImage(t *testing.T) {
	img := defaultPause(t)
	p := parseArchive(t, archiveBytes(t, img))
	if got := p.index.Manifests[0].Annotations[AnnotationImageName]; got != DefaultPauseName {
		t.Errorf("name %q, want %q", got, DefaultPauseName)
	}
	cfg := p.config.Config
	if !reflect.DeepEqual(cfg.Entrypoint, []string{"/pause"}) || cfg.Cmd != nil || cfg.User != "65535:65535" {
		t.Errorf("config Entrypoint %q Cmd %q User %q", cfg.Entrypoint, cfg.Cmd, cfg.User)
	}

	f, err := elf.Open(pauseBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("/pause is dynamically linked; it must be static (CGO_ENABLED=0)")
		}
	}

	// The same toolchain compiles the same binary, so the image repeats.
	again, err := Pause(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Manifest.Digest != img.Manifest.Digest {
		t.Errorf("two pause builds differ: %s, %s", img.Manifest.Digest, again.Manifest.Digest)
	}

	// A prebuilt binary skips the compiler and gives the same image.
	prebuilt, err := Pause(context.Background(), Options{PauseBinary: pauseBinary(t), GoTool: "/nonexistent/go"})
	if err != nil {
		t.Fatal(err)
	}
	if prebuilt.Manifest.Digest != img.Manifest.Digest {
		t.Errorf("image from the prebuilt binary differs: %s, %s", prebuilt.Manifest.Digest, img.Manifest.Digest)
	}
	if _, err := Pause(context.Background(), Options{GoTool: "/nonexistent/go"}); err == nil {
		t.Error("a missing go tool was not reported")
	}
}

// TestPauseProgram runs the pause binary the way a pod would: it must reap
// children it inherits and exit 0 on SIGTERM and SIGINT.
func TestPauseProgram(t *testing.T) {
	bin := pauseBinary(t)
	out, err := exec.Command(bin, "-v").Output()
	if err != nil || !strings.Contains(string(out), "pause") {
		t.Fatalf("pause -v: %q, %v", out, err)
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			// The shell starts a short-lived child, then execs pause, which
			// thereby becomes the child's parent and must reap it.
			cmd := exec.Command("/bin/sh", "-c", `sleep 0.2 & echo $!; exec "$0"`, bin)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			child, err := strconv.Atoi(strings.TrimSpace(line))
			if err != nil {
				t.Fatal(err)
			}

			// Reaped means gone from /proc; an unreaped child stays a zombie.
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := os.Stat("/proc/" + strconv.Itoa(child))
				if errors.Is(err, os.ErrNotExist) {
					break
				}
				if time.Now().After(deadline) {
					stat, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/stat")
					t.Fatalf("child %d not reaped: %s", child, stat)
				}
				time.Sleep(20 * time.Millisecond)
			}

			// Having reaped, pause has its handlers installed.
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("pause after %v: %v; stderr: %s", sig, err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "Shutting down") {
				t.Errorf("stderr %q", stderr.String())
			}
		})
	}
}

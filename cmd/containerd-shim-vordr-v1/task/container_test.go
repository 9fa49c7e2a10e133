//go:build linux

package task

import (
	"os"
	"path/filepath"
	"testing"
)

// The spec decoded early is used only for its bundle, only while
// config.json holds the bytes decoded, and only once: hooks change the spec
// they get.
func TestEarlySpec(t *testing.T) {
	bundle := t.TempDir()
	spec := []byte(`{"ociVersion":"1.2.0","process":{"args":["/bin/true"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{}}`)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), spec, 0o600); err != nil {
		t.Fatal(err)
	}
	var p preSpec
	if s := p.take(bundle, spec); s != nil {
		t.Fatal("a spec was taken before any was decoded")
	}
	p.start(bundle)
	if s := p.take(t.TempDir(), spec); s != nil {
		t.Error("the early spec was taken for another bundle")
	}
	s := p.take(bundle, spec)
	if s == nil || len(s.Process.Args) != 1 || s.Process.Args[0] != "/bin/true" {
		t.Fatalf("early spec %+v, want the bundle's", s)
	}
	if again := p.take(bundle, spec); again != nil {
		t.Error("the early spec was taken twice")
	}

	p.start(bundle)
	changed := []byte(`{"ociVersion":"1.2.0","process":{"args":["/bin/sh"],"cwd":"/"},"root":{"path":"rootfs"},"linux":{}}`)
	if s := p.take(bundle, changed); s != nil {
		t.Error("the early spec was taken although config.json changed after it was decoded")
	}

	// readSpec falls back to decoding what is there.
	earlySpec.start(bundle)
	<-earlySpec.done
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), changed, 0o600); err != nil {
		t.Fatal(err)
	}
	got, _, err := readSpec(bundle)
	if err != nil || got.Process.Args[0] != "/bin/sh" {
		t.Fatalf("readSpec after config.json changed: %v %+v", err, got)
	}
}

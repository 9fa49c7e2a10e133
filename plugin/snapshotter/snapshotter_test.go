package snapshotter

import (
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
)

func TestSplitKey(t *testing.T) {
	for _, c := range []struct {
		key, ns, name string
		ok            bool
	}{
		{"default/12/sha256:abc", "default", "sha256:abc", true},
		{"k8s.io/3/extract-123 sha256:abc", "k8s.io", "extract-123 sha256:abc", true},
		{"ns/7/a/b/c", "ns", "a/b/c", true},
		{"plain-key", "", "plain-key", false},
		{"ns/x/name", "", "ns/x/name", false},
		{"ns//name", "", "ns//name", false},
	} {
		ns, name, ok := splitKey(c.key)
		if ns != c.ns || name != c.name || ok != c.ok {
			t.Errorf("splitKey(%q) = %q %q %v, want %q %q %v", c.key, ns, name, ok, c.ns, c.name, c.ok)
		}
	}
}

func TestIsUnpack(t *testing.T) {
	if !isUnpack("default/1/extract-1 sha256:abc", nil) {
		t.Error("extract key not recognised")
	}
	if !isUnpack("default/1/mykey", []snapshots.Opt{snapshots.WithLabels(map[string]string{snapshots.LabelSnapshotRef: "sha256:abc"})}) {
		t.Error("snapshot.ref label not recognised")
	}
	if isUnpack("default/1/container-1", []snapshots.Opt{snapshots.WithLabels(map[string]string{"x": "y"})}) {
		t.Error("container key taken for an unpack")
	}
	// "extract" must be the key's own prefix, not the namespace's.
	if isUnpack("extract-ns/1/container", nil) {
		t.Error("namespace prefix taken for an extract key")
	}
}

func TestCache(t *testing.T) {
	c := newCache(50 * time.Millisecond)
	k := cacheKey(Chain{Namespace: "ns", Key: "ns/1/sha256:a", Labels: map[string]string{
		"containerd.io/snapshot/vordr.verified-image": "sha256:b", "other": "x"}})
	k2 := cacheKey(Chain{Namespace: "ns", Key: "ns/1/sha256:a", Labels: map[string]string{
		"containerd.io/snapshot/vordr.verified-image": "sha256:c", "other": "x"}})
	if k == k2 {
		t.Fatal("relabelled chain has the same cache key")
	}
	c.put(k, "img")
	if v, ok := c.get(k); !ok || v != "img" {
		t.Fatalf("get = %q %v", v, ok)
	}
	if _, ok := c.get(k2); ok {
		t.Fatal("hit for another record")
	}
	time.Sleep(60 * time.Millisecond)
	if _, ok := c.get(k); ok {
		t.Fatal("hit after the TTL")
	}
	off := newCache(-1)
	off.put(k, "img")
	if _, ok := off.get(k); ok {
		t.Fatal("disabled cache hit")
	}
}

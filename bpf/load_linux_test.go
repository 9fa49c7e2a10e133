//go:build linux

package bpf

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
)

// TestLoad loads every program into the running kernel: the verifier, not a
// mock, decides whether vordr.c is acceptable.
func TestLoad(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: loading eBPF programs needs root (run go test as root)")
	}
	spec, err := Spec()
	if err != nil {
		t.Fatal(err)
	}
	var objs Objects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			t.Fatalf("verifier: %+v", ve)
		}
		t.Fatal(err)
	}
	defer objs.Close()
	if objs.VordrExec == nil || objs.Containers == nil || objs.Rings == nil {
		t.Fatal("objects not assigned")
	}
	if len(Version()) != 12 {
		t.Fatalf("Version() = %q", Version())
	}
}

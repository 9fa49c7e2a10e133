//go:build linux

package task

import (
	"testing"

	"github.com/vordr-project/vordr/config"
)

// The warm-up config must stay valid as the config grows.
func TestWarmConfigParses(t *testing.T) {
	cfg, err := config.Parse([]byte(warmConfig), "warm-up")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Select(nil); err != nil {
		t.Fatal(err)
	}
}

// The warm-up runs in every shim: it must not panic or leave anything
// behind (it only encodes and decodes).
func TestWarmCodecs(t *testing.T) {
	warmCodecs()
}

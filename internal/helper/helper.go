// Package helper finds vordr-verifier, the shim's helper for what would make
// the shim big if it were linked in (sigstore-bundle checks for the gate,
// alert webhooks for the guard), the way the shim finds it; vordr doctor
// looks for it the same way.
package helper

import (
	"os"
	"os/exec"
	"path/filepath"
)

// Name is the helper's binary.
const Name = "vordr-verifier"

// Find returns the helper beside shim (the shim binary's path), or where
// `make install` puts it relative to the shim (PREFIX/bin and
// PREFIX/libexec/vordr/image-verifier), else on PATH: containerd's PATH may
// hold neither. Empty when it is nowhere.
func Find(shim string) string {
	if shim != "" {
		dir := filepath.Dir(shim)
		for _, p := range []string{filepath.Join(dir, Name), filepath.Join(dir, "..", "libexec", "vordr", "image-verifier", Name)} {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	if p, err := exec.LookPath(Name); err == nil {
		return p
	}
	return ""
}

// The helper's subcommands. `vordr-verifier webhook` reads one JSON alert
// per line on stdin and POSTs each to the URL in $VORDR_WEBHOOK_URL (the
// environment, not argv: a URL may carry a token, and argv is readable by
// every user of the host, the environment only by root).
const (
	WebhookArg    = "webhook"
	WebhookURLEnv = "VORDR_WEBHOOK_URL"
)

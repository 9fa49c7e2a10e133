//go:build !linux

package monitor

import "errors"

// Namespaces and sockets cannot be inspected here: refuse, the safe answer.
func sameNamespace(a, b string) bool { return true }

func isSocket(p string) bool { return true }

func isDevice(p string) bool { return true }

func evalSymlinks(p string) (string, error) { return p, nil }

func pinSource(src, dst string) (PinnedSource, error) {
	return PinnedSource{}, errors.New("not supported")
}

// VerifyPinned is not supported here.
func VerifyPinned(initPID int, pins []PinnedSource) error { return errors.New("not supported") }

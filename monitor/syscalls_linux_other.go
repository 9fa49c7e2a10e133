//go:build linux && !amd64

package monitor

// syscallNames is only filled in for amd64; elsewhere reports carry numbers.
var syscallNames = map[int32]string{}

// Package version holds the build's version, set by the Makefile with -ldflags.
package version

var (
	// Version is the release version, overridden at link time.
	Version = "0.1.0-dev"
	// Revision is the git commit, overridden at link time.
	Revision = ""
)

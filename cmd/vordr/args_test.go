package main

import (
	"slices"
	"testing"
)

func TestInterspersedFlags(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want []string }{
		// The example: flags after the bundle.
		{[]string{"vordr", "ctp", "verify", "app.ctp", "--key", "k.pub"}, []string{"vordr", "ctp", "verify", "--key", "k.pub", "app.ctp"}},
		// Already in order: unchanged.
		{[]string{"vordr", "ctp", "verify", "--key", "k.pub", "app.ctp"}, []string{"vordr", "ctp", "verify", "--key", "k.pub", "app.ctp"}},
		// A bool flag does not swallow the next argument; --x=v is one word.
		{[]string{"vordr", "ctp", "verify", "app.ctp", "--json", "--key=k.pub"}, []string{"vordr", "ctp", "verify", "--json", "--key=k.pub", "app.ctp"}},
		// After "--" everything is an argument.
		{[]string{"vordr", "ctp", "inspect", "--", "-weird.ctp"}, []string{"vordr", "ctp", "inspect", "--", "-weird.ctp"}},
		// Global help and version stay where they are.
		{[]string{"vordr", "--help"}, []string{"vordr", "--help"}},
	} {
		if got := interspersed(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("interspersed(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// interspersed moves the flags of the invoked command in front of its
// arguments, so `vordr ctp verify app.ctp --key k.pub` means what it says:
// urfave/cli v2 stops parsing flags at the first argument and would take
// "--key" and "k.pub" as two more arguments. Which flags take a value comes
// from the command's own definitions; everything after "--" stays an
// argument.
func interspersed(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	cmds, flags := app.Commands, app.Flags
	i := 0
	// The command path: app flags and command names, up to the command
	// that has no subcommands.
	for i < len(rest) {
		a := rest[i]
		if a == "--" {
			break
		}
		if isFlag(a) {
			out = append(out, a)
			if takesValue(flags, a) && i+1 < len(rest) {
				out = append(out, rest[i+1])
				i++
			}
			i++
			continue
		}
		c := findCommand(cmds, a)
		if c == nil {
			break
		}
		out = append(out, a)
		i++
		cmds, flags = c.Subcommands, c.Flags
		if len(cmds) == 0 {
			break
		}
	}
	var fl, pos []string
	for j := i; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			pos = append(pos, rest[j:]...)
			break
		}
		if isFlag(a) {
			fl = append(fl, a)
			if takesValue(flags, a) && j+1 < len(rest) {
				fl = append(fl, rest[j+1])
				j++
			}
			continue
		}
		pos = append(pos, a)
	}
	out = append(out, fl...)
	return append(out, pos...)
}

func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

// takesValue reports whether the flag a ("-k", "--key", "--key=v") names a
// flag that reads the next argument as its value.
func takesValue(flags []cli.Flag, a string) bool {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				if d, ok := f.(cli.DocGenerationFlag); ok {
					return d.TakesValue()
				}
				return false
			}
		}
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

package main

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts are urfave/cli's, which ask the program itself
// (--generate-bash-completion) for the words that fit; fish gets a complete
// script generated from the command definitions.
var (
	//go:embed completion/bash
	bashCompletion string
	//go:embed completion/zsh
	zshCompletion string
)

func init() {
	commands = append(commands, &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "Install with, for example:\n" +
			"  vordr completion bash > /usr/share/bash-completion/completions/vordr\n" +
			"  vordr completion zsh > /usr/share/zsh/site-functions/_vordr\n" +
			"  vordr completion fish > /usr/share/fish/vendor_completions.d/vordr.fish",
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				_, err := fmt.Fprint(c.App.Writer, strings.ReplaceAll(bashCompletion, "$PROG", "vordr"))
				return err
			case "zsh":
				_, err := fmt.Fprint(c.App.Writer, strings.ReplaceAll(zshCompletion, "$PROG", "vordr"))
				return err
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(c.App.Writer, s)
				return err
			}
			return cli.Exit(fmt.Sprintf("completion: want bash, zsh or fish, not %q", c.Args().First()), 2)
		},
	}, &cli.Command{
		Name:   "man",
		Usage:  "print the vordr(1) manual page (roff), generated from the command definitions",
		Hidden: true,
		Action: func(c *cli.Context) error {
			s, err := c.App.ToManWithSection(1)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, s)
			return err
		},
	})
}

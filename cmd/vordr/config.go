package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"text/template"

	"github.com/urfave/cli/v2"
)

func init() { commands = append(commands, configCommand) }

var configCommand = &cli.Command{
	Name:  "config",
	Usage: "print or write configuration for the software vordr plugs into",
	Subcommands: []*cli.Command{{
		Name:  "containerd",
		Usage: "print (or --write) containerd's configuration for vordr, as a drop-in file",
		Description: `Prints a containerd v2 config fragment: the CRI runtime handler, the proxy
snapshotter "vordr" with unpack platforms for it, and the pull-time verifier's
bin_dir. containerd 2.x reads drop-ins from /etc/containerd/conf.d/*.toml
(imports); --write puts the fragment there atomically, and writes nothing when
it is already current, so a node installer can run it on every start. The
main config.toml is never edited: removing the file undoes it.

The handler's runtime_type is runc.v2's, with runtime_path naming the vordr
shim: CRI then sends vordr runc's own options (SystemdCgroup and the rest),
and derives the kubelet's cgroup driver from them exactly as for runc. (With
runtime_type = "io.containerd.vordr.v1", CRI sends generic options and falls
back to auto-detection, which can disagree with SystemdCgroup and break pods.)`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "write", Usage: "write the fragment to this file (e.g. /etc/containerd/conf.d/vordr.toml) instead of printing it"},
			&cli.StringFlag{Name: "handler", Value: "vordr", Usage: "CRI runtime handler name (the RuntimeClass handler)"},
			&cli.StringFlag{Name: "bin-dir", Value: "/usr/local/bin", Usage: "directory holding containerd-shim-vordr-v1"},
			&cli.BoolFlag{Name: "systemd-cgroup", Usage: "runc's SystemdCgroup for the handler (as for runc.v2 on systemd nodes)"},
			&cli.StringFlag{Name: "runc-root", Usage: "runc's Root for the handler (default: runc's)"},
			&cli.BoolFlag{Name: "snapshotter", Value: true, Usage: "include the proxy snapshotter \"vordr\" and its unpack platform"},
			&cli.StringFlag{Name: "snapshotter-socket", Value: "/run/vordr/snapshotter.sock", Usage: "the snapshotter's socket"},
			&cli.StringFlag{Name: "platform", Value: "linux/" + runtime.GOARCH, Usage: "platform to unpack images for"},
			&cli.StringFlag{Name: "verifier-dir", Value: "/usr/local/libexec/vordr/image-verifier", Usage: "bin_dir of containerd's image verifier plugin (empty: leave it out)"},
		},
		Action: func(c *cli.Context) error {
			frag, err := containerdFragment(fragmentOptions{
				Handler: c.String("handler"), Shim: filepath.Join(c.String("bin-dir"), "containerd-shim-vordr-v1"),
				SystemdCgroup: c.Bool("systemd-cgroup"), RuncRoot: c.String("runc-root"),
				Snapshotter: c.Bool("snapshotter"), SnapshotterSocket: c.String("snapshotter-socket"),
				Platform: c.String("platform"), VerifierDir: c.String("verifier-dir"),
			})
			if err != nil {
				return cli.Exit(err.Error(), exitUsage)
			}
			path := c.String("write")
			if path == "" {
				_, err := c.App.Writer.Write(frag)
				return err
			}
			changed, err := writeIfChanged(path, frag)
			if err != nil {
				return cli.Exit(err.Error(), exitUsage)
			}
			if changed {
				fmt.Fprintf(c.App.Writer, "wrote %s; restart containerd to load it\n", path)
			} else {
				fmt.Fprintf(c.App.Writer, "%s is current\n", path)
			}
			return nil
		},
	}},
}

type fragmentOptions struct {
	Handler, Shim, RuncRoot, SnapshotterSocket, Platform, VerifierDir string
	SystemdCgroup, Snapshotter                                        bool
}

var fragmentTemplate = template.Must(template.New("frag").Parse(`# containerd configuration for vordr, written by ` + "`vordr config containerd`" + `.
# containerd 2.x reads it from conf.d (imports); delete the file to undo it.
version = 3

# CRI runtime handler {{printf "%q" .Handler}} (RuntimeClass handler). runc.v2's type with
# vordr's shim: CRI passes runc's options and takes the kubelet's cgroup driver
# from SystemdCgroup, as for runc. vordr's own settings: /etc/vordr/runtime.toml.
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.{{.Handler}}]
  runtime_type = "io.containerd.runc.v2"
  runtime_path = {{printf "%q" .Shim}}
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.{{.Handler}}.options]
    SystemdCgroup = {{.SystemdCgroup}}
{{- if .RuncRoot}}
    Root = {{printf "%q" .RuncRoot}}
{{- end}}
{{if .Snapshotter}}
# The verifying snapshotter (vordr-snapshotter, systemd unit vordr-snapshotter).
[proxy_plugins.vordr]
  type = "snapshot"
  address = {{printf "%q" .SnapshotterSocket}}

# Unpack platforms: without an entry for "vordr", ctr image import/pull
# --snapshotter vordr fail with "no unpack platforms defined".
[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = {{printf "%q" .Platform}}
  snapshotter = "overlayfs"
[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = {{printf "%q" .Platform}}
  snapshotter = "vordr"
{{end}}
{{- if .VerifierDir}}
# Pull-time verification (vordr-verifier; config /etc/vordr/verifier.toml).
[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = {{printf "%q" .VerifierDir}}
{{end}}`))

func containerdFragment(o fragmentOptions) ([]byte, error) {
	for _, r := range o.Handler {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return nil, fmt.Errorf("handler %q: use letters, digits, '-' and '_' (it is a TOML key and a RuntimeClass handler)", o.Handler)
		}
	}
	if o.Handler == "" {
		return nil, fmt.Errorf("handler: empty")
	}
	if !filepath.IsAbs(o.Shim) {
		return nil, fmt.Errorf("bin-dir %q: want an absolute path", filepath.Dir(o.Shim))
	}
	var b bytes.Buffer
	if err := fragmentTemplate.Execute(&b, o); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeIfChanged replaces path with data atomically (a temporary file in the
// same directory, renamed over it), unless it already holds data.
func writeIfChanged(path string, data []byte) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return false, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

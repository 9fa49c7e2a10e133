//go:build linux

// Command demo runs vordr's main job end to end on a private containerd:
// build an image, import it, run a container under io.containerd.vordr.v1 and
// show what the runtime saw. Every step prints the command a user would type.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/internal/testimage"
)

const image = "docker.io/vordr/busybox:demo"

func main() {
	binDir := flag.String("bin", "bin", "directory with the built vordr binaries")
	flag.Parse()
	if err := run(*binDir); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n\033[1m==> "+format+"\033[0m\n", args...)
}

func run(binDir string) error {
	binDir, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	ctx := context.Background()

	step("start a private containerd with the vordr shim on its PATH")
	d, err := daemon.Start(ctx, daemon.Options{BinDirs: []string{binDir}, LogLevel: "info"})
	if err != nil {
		return err
	}
	defer func() {
		step("stop containerd and check that nothing is left")
		leaks := d.Stop()
		if len(leaks) > 0 {
			fmt.Printf("left behind (cleaned by force): %v\n", leaks)
		} else {
			fmt.Println("no process, mount or cgroup left behind")
		}
	}()
	fmt.Printf("containerd at %s (namespace %s)\n", d.Address, d.Namespace)

	ctrBin, err := daemon.Binary("ctr")
	if err != nil {
		return err
	}
	ctr := func(args ...string) (string, error) {
		fmt.Printf("$ ctr %s\n", strings.Join(args, " "))
		cmd := exec.Command(ctrBin, append([]string{"--address", d.Address, "--namespace", d.Namespace}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		fmt.Print(indent(out.String()))
		return out.String(), err
	}

	step("build a test image (static busybox) as an OCI archive, in Go, without a registry")
	img, err := testimage.Busybox(testimage.Options{Name: image})
	if err != nil {
		return err
	}
	archive := filepath.Join(d.Dir, "busybox.tar")
	if err := img.WriteArchiveFile(archive); err != nil {
		return err
	}
	fmt.Printf("%s  manifest %s\n", image, img.Manifest.Digest)

	step("import it")
	if _, err := ctr("images", "import", archive); err != nil {
		return err
	}

	step("run a container under io.containerd.vordr.v1")
	if _, err := ctr("run", "--rm", "--runtime", "io.containerd.vordr.v1", "--runc-root", d.RuncRoot, "--fifo-dir", d.FifoDir,
		image, "demo", "sh", "-c", "echo hello from a vordr container; id; cat /proc/self/cgroup | grep ^0::"); err != nil {
		return err
	}

	step("what the vordr shim saw at Create (from containerd's log)")
	for _, line := range strings.Split(d.Log(), "\n") {
		if strings.Contains(line, "vordr:") {
			fmt.Println(indent(line))
		}
	}
	return nil
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

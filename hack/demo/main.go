//go:build linux

// Command demo runs vordr's main job end to end on a private containerd:
// build an image, import it, run a container under io.containerd.vordr.v1 and
// show what the runtime saw; then sign the image into a .ctp bundle, import
// it with verification, run it under a strict policy, and watch a tampered
// bundle and an unverified image be refused. Every step prints the command a
// user would type.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"github.com/vordr-project/vordr/eventlog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/internal/benchutil"
	"github.com/vordr-project/vordr/internal/daemon"
	"github.com/vordr-project/vordr/internal/testimage"
)

const (
	image = "docker.io/vordr/busybox:demo"
	// unsignedImage is content nobody signed, for the gate to refuse.
	unsignedImage = "docker.io/vordr/busybox:unsigned"
	signedImage   = "docker.io/vordr/app:1.0"
)

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
	unload := benchutil.UnloadGuardSetAfter()
	defer func() {
		step("stop containerd and check that nothing is left")
		leaks := d.Stop()
		// The shim keeps the node's eBPF set pinned for the next container;
		// the demo loaded it, so it unloads it.
		unload()
		if len(leaks) > 0 {
			fmt.Printf("left behind (cleaned by force): %v\n", leaks)
		} else {
			fmt.Println("no process, mount, cgroup or pinned eBPF program left behind")
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
	return verified(d, binDir, archive, ctr)
}

// verified is the second half of the demo: a signed bundle, imported with
// verification, runs under a strict policy; a tampered one never gets in, and
// the unverified image from the first half is refused at Create.
func verified(d *daemon.Daemon, binDir, archive string, ctr func(args ...string) (string, error)) error {
	work := filepath.Join(d.Dir, "demo")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	vordr := func(args ...string) (string, error) {
		fmt.Printf("$ vordr %s\n", strings.Join(args, " "))
		cmd := exec.Command(filepath.Join(binDir, "vordr"), args...)
		cmd.Dir = work
		// The PATH the private containerd gives its shims: doctor checks
		// the shim, containerd and runc found there.
		cmd.Env = append(os.Environ(), "PATH="+binDir+":"+daemon.ToolchainDir()+":"+os.Getenv("PATH"), "VORDR_CONFIG="+d.VordrConfig)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		fmt.Print(indent(out.String()))
		return out.String(), err
	}
	cd := []string{"--address", d.Address, "--namespace", d.Namespace}

	step("make a signing key, pack the image into a .ctp bundle, sign it")
	// Keys are encrypted by default; the passphrase comes from cosign's
	// variable, as in a cosign user's scripts.
	fmt.Println("$ export COSIGN_PASSWORD=vordr-demo")
	os.Setenv("COSIGN_PASSWORD", "vordr-demo")
	if _, err := vordr("ctp", "keygen", "release"); err != nil {
		return err
	}
	if _, err := vordr("ctp", "pack", "--progress", "never", "--name", "app", "--version", "1.0", "--ref", signedImage, "-o", "app.ctp", archive); err != nil {
		return err
	}
	if _, err := vordr("ctp", "sign", "--key", "release.key", "app.ctp"); err != nil {
		return err
	}
	policy := "version = 1\nmode = \"strict\"\nrequired_predicates = [\"https://slsa.dev/provenance/v1\"]\n\n[[signers]]\nname = \"release\"\nkey = \"release.pub\"\n"
	if err := os.WriteFile(filepath.Join(work, "strict.toml"), []byte(policy), 0o644); err != nil {
		return err
	}
	fmt.Printf("strict.toml:\n%s", indent(policy))

	step("verify and import it into containerd (content, snapshots, image record, all or nothing)")
	if _, err := vordr(append(append([]string{"import"}, cd...), "--progress", "never", "--policy", "strict.toml", "app.ctp")...); err != nil {
		return err
	}
	if _, err := vordr(append([]string{"images"}, cd...)...); err != nil {
		return err
	}

	step("a tampered bundle (one byte of a layer changed) is refused, and nothing of it enters containerd")
	if err := tamper(filepath.Join(work, "app.ctp"), filepath.Join(work, "tampered.ctp")); err != nil {
		return err
	}
	out, err := vordr(append(append([]string{"import"}, cd...), "--progress", "never", "--policy", "strict.toml", "--name", "docker.io/vordr/app:tampered", "tampered.ctp")...)
	if err == nil || !strings.Contains(out, "MALFORMED_BUNDLE") {
		return fmt.Errorf("the tampered bundle was not refused (%v)", err)
	}
	fmt.Println("refused, as it must be; images now:")
	if _, err := ctr("images", "ls", "-q"); err != nil {
		return err
	}

	step("run under io.containerd.vordr.v1 with the strict policy: the gate re-verifies the stored attestations at Create")
	cfg := fmt.Sprintf("default_policy = \"strict\"\n[policies]\nstrict = %q\n[runc]\nRoot = %q\n[events]\ndir = %q\n[gate]\ncache_dir = %q\n",
		filepath.Join(work, "strict.toml"), d.RuncRoot, filepath.Join(d.Dir, "events"), filepath.Join(d.Dir, "gate-cache"))
	cfgPath := filepath.Join(work, "runtime.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	fmt.Printf("runtime.toml:\n%s", indent(cfg))
	if _, err := ctr("run", "--rm", "--runtime", "io.containerd.vordr.v1", "--runtime-config-path", cfgPath, "--fifo-dir", d.FifoDir,
		signedImage, "verified", "echo", "hello from a verified image"); err != nil {
		return err
	}

	// The first half's busybox:demo is the very manifest just signed: the gate
	// trusts content, not names, so that record now runs too. An image
	// nobody signed is another manifest.
	step("the same policy refuses an image nobody signed (busybox with one more file, imported with ctr)")
	other, err := testimage.Busybox(testimage.Options{Name: unsignedImage, Files: []testimage.File{{Path: "/etc/unsigned", Content: []byte("nobody signed this\n")}}})
	if err != nil {
		return err
	}
	otherArchive := filepath.Join(d.Dir, "unsigned.tar")
	if err := other.WriteArchiveFile(otherArchive); err != nil {
		return err
	}
	if _, err := ctr("images", "import", otherArchive); err != nil {
		return err
	}
	if _, err := ctr("run", "--rm", "--runtime", "io.containerd.vordr.v1", "--runtime-config-path", cfgPath, "--fifo-dir", d.FifoDir,
		unsignedImage, "unverified", "true"); err == nil {
		return fmt.Errorf("an unverified image ran under a strict policy")
	}
	fmt.Println("refused, as it must be")

	step("what the gate logged")
	for _, line := range strings.Split(d.Log(), "\n") {
		if strings.Contains(line, "vordr gate") {
			fmt.Println(indent(line))
		}
	}

	step("the guard: what this kernel offers, and which mechanism enforces what")
	if _, err := vordr("doctor"); err != nil {
		return err
	}

	step("run the verified image under the strict profile: a sensitive file, a connect and a forbidden syscall are denied in the kernel")
	if _, err := ctr("run", "--rm", "--runtime", "io.containerd.vordr.v1", "--runtime-config-path", cfgPath, "--fifo-dir", d.FifoDir,
		"--annotation", "vordr.io/profile=strict", signedImage, "guarded",
		"sh", "-c", "cat /etc/shadow; echo hi | nc -w 1 127.0.0.1 80; swapoff /x; echo still running"); err != nil {
		return err
	}

	step("what the guard saw, from its first instruction (vordr events)")
	waitSummary(filepath.Join(d.Dir, "events"), d.Namespace, "guarded")
	if _, err := vordr("events", "--dir", filepath.Join(d.Dir, "events"), "--namespace", d.Namespace, "--container", "guarded"); err != nil {
		return err
	}
	return nil
}

// tamper copies a bundle and flips one byte in the middle of its first layer.
func tamper(in, out string) error {
	b, err := ctp.OpenFile(in, ctp.Options{})
	if err != nil {
		return err
	}
	ra, err := b.ReaderAt(b.Layers()[0].Digest)
	if err != nil {
		b.Close()
		return err
	}
	_, off, n := ra.SectionReader.Outer()
	b.Close()
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	data[off+n/2] ^= 0xff
	return os.WriteFile(out, data, 0o644)
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

// waitSummary waits (at most 10 s) until a container's event log ends with
// its summary: the shim closes the guard just after the task is deleted.
func waitSummary(dir, ns, id string) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		done := false
		_ = eventlog.Read(dir, ns, id, func(line []byte) error {
			done = bytes.Contains(line, []byte(`"kind":"summary"`))
			return nil
		})
		if done {
			return
		}
	}
}

//go:build linux

// Command vordr-testimage writes vordr's test images (static busybox, the
// Kubernetes pause image) as OCI archives for `ctr image import` or as OCI
// image layout directories, for the demo, benchmarks and manual testing.
//
//	vordr-testimage busybox -name docker.io/vordr/busybox:test -o busybox.tar
//	vordr-testimage pause -o pause.tar -layout ./pause-layout
//
// It prints the image name and manifest digest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vordr-project/vordr/internal/testimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vordr-testimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	usage := errors.New("usage: vordr-testimage busybox|pause [-name REF] [-o ARCHIVE.tar] [-layout DIR] [-busybox PATH] [-pause-binary PATH]")
	if len(args) == 0 || (args[0] != "busybox" && args[0] != "pause") {
		return usage
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	var (
		name     = fs.String("name", "", "image reference (default docker.io/vordr/<kind>:test)")
		out      = fs.String("o", "", "write an OCI archive to this file")
		layout   = fs.String("layout", "", "write an OCI image layout into this directory")
		busybox  = fs.String("busybox", "", "static busybox to copy (default "+testimage.DefaultBusyboxPath+")")
		pauseBin = fs.String("pause-binary", "", "prebuilt pause binary (default: compile it with go)")
	)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" && *layout == "" {
		return errors.New("nothing to write: give -o ARCHIVE.tar and/or -layout DIR")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := testimage.Options{Name: *name, BusyboxPath: *busybox, PauseBinary: *pauseBin}
	var (
		img *testimage.Image
		err error
	)
	switch args[0] {
	case "busybox":
		img, err = testimage.Busybox(opts)
	case "pause":
		img, err = testimage.Pause(ctx, opts)
	default:
		return usage
	}
	if err != nil {
		return err
	}
	if *out != "" {
		if err := img.WriteArchiveFile(*out); err != nil {
			return err
		}
	}
	if *layout != "" {
		if err := img.WriteLayout(*layout); err != nil {
			return err
		}
	}
	fmt.Println(img.Name, img.Manifest.Digest)
	return nil
}

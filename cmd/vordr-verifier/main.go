// Command vordr-verifier speaks containerd's image-verifier protocol: put it in
// the bin_dir of the io.containerd.image-verifier.v1.bindir plugin,
//
//	[plugins."io.containerd.image-verifier.v1.bindir"]
//	  bin_dir = "/opt/containerd/image-verifier/bin"
//
// and containerd runs it before every transfer-service pull as
//
//	vordr-verifier -name REF -digest DIGEST -stdin-media-type application/vnd.oci.descriptor.v1+json
//
// with the image's descriptor on stdin. It exits 0 (allow) only when a valid
// vordr attestation bundle exists for the digest (or the policy is permissive
// or audit), and prints its reason on stdout, which containerd logs and
// returns to the client. Exit 1 blocks the pull; 2 is a usage or config
// error (containerd blocks then too).
//
// Its config is a TOML file named by $VORDR_VERIFIER_CONFIG, else
// /etc/vordr/verifier.toml (see plugin/verifier.Config).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/vordr-project/vordr/ctp/sigstore"
	"github.com/vordr-project/vordr/internal/helper"
	"github.com/vordr-project/vordr/plugin/sigstorecheck"
	"github.com/vordr-project/vordr/plugin/verifier"
	"github.com/vordr-project/vordr/version"
)

const (
	exitOK       = 0
	exitRejected = 1
	exitError    = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == helper.WebhookArg {
		// The guard's helper: alerts on stdin, one JSON per line, POSTed.
		target := os.Getenv(helper.WebhookURLEnv)
		if len(args) == 2 {
			target = args[1]
		}
		if len(args) > 2 || target == "" {
			fmt.Fprintln(stderr, "vordr-verifier "+helper.WebhookArg+": usage: "+helper.WebhookURLEnv+"=URL vordr-verifier webhook (alerts as JSON lines on stdin)")
			return exitError
		}
		if err := postAlerts(target, stdin, stderr); err != nil {
			fmt.Fprintln(stderr, "vordr-verifier "+helper.WebhookArg+": "+err.Error())
			return exitError
		}
		return exitOK
	}
	if len(args) > 0 && args[0] == sigstorecheck.Arg {
		// The runtime gate's helper: one sigstore bundle, JSON in and out.
		if err := sigstorecheck.Serve(context.Background(), stdin, stdout, sigstore.PolicyVerifier{}); err != nil {
			fmt.Fprintln(stderr, "vordr-verifier "+sigstorecheck.Arg+": "+err.Error())
			return exitError
		}
		return exitOK
	}
	fs := flag.NewFlagSet("vordr-verifier", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "image name being pulled")
	dgst := fs.String("digest", "", "digest of the image's root descriptor")
	mediaType := fs.String("stdin-media-type", "", "media type of stdin ("+ocispec.MediaTypeDescriptor+")")
	config := fs.String("config", "", "config file (default $"+verifier.EnvConfig+", else "+verifier.DefaultConfigPath+")")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if *showVersion {
		fmt.Fprintln(stdout, "vordr-verifier", version.Version, version.Revision)
		return exitOK
	}
	fail := func(format string, a ...any) int {
		msg := fmt.Sprintf(format, a...)
		fmt.Fprintln(stdout, "vordr-verifier: "+msg)
		fmt.Fprintln(stderr, "vordr-verifier: "+msg)
		return exitError
	}
	if *name == "" || *dgst == "" {
		return fail("-name and -digest are required (containerd's bindir image verifier passes them)")
	}
	d, err := digest.Parse(*dgst)
	if err != nil {
		return fail("-digest %q: %v", *dgst, err)
	}
	desc := ocispec.Descriptor{Digest: d}
	if *mediaType != "" {
		if *mediaType != ocispec.MediaTypeDescriptor {
			return fail("unsupported -stdin-media-type %q, want %s", *mediaType, ocispec.MediaTypeDescriptor)
		}
		if err := json.NewDecoder(io.LimitReader(stdin, 1<<20)).Decode(&desc); err != nil {
			return fail("read the descriptor on stdin: %v", err)
		}
		if desc.Digest != d {
			return fail("descriptor on stdin has digest %s, -digest says %s", desc.Digest, d)
		}
	}

	path := *config
	if path == "" {
		path = os.Getenv(verifier.EnvConfig)
	}
	if path == "" {
		path = verifier.DefaultConfigPath
	}
	cfg, err := verifier.LoadConfig(path)
	if err != nil {
		return fail("%v (set $%s or -config)", err, verifier.EnvConfig)
	}
	v, err := verifier.New(*cfg)
	if err != nil {
		return fail("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGINT, unix.SIGTERM)
	defer stop()
	j, err := v.Verify(ctx, *name, desc)
	if err != nil {
		return fail("cannot judge %s: %v", *name, err)
	}
	fmt.Fprintln(stdout, j.Reason)
	if !j.OK {
		return exitRejected
	}
	return exitOK
}

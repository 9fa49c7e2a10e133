// Package verifier decides pulls for containerd's image-verifier protocol
// (the io.containerd.image-verifier.v1.bindir plugin runs cmd/vordr-verifier
// for every transfer-service pull): an image is allowed only when a valid
// attestation bundle exists for its manifest digest — imported into
// containerd by `vordr import` (its stored evidence is re-verified), or a .ctp
// file in a configured directory (verified whole, blobs included).
//
// The library never logs; Verify returns a Judgement whose Reason the binary
// prints for containerd's log and the pulling client's error.
package verifier

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pelletier/go-toml/v2"
	"oras.land/oras-go/v2/registry"

	"github.com/vordr-project/vordr/ctp"
	"github.com/vordr-project/vordr/ctp/policy"
	"github.com/vordr-project/vordr/ctp/sigstore"
	"github.com/vordr-project/vordr/plugin"
	"github.com/vordr-project/vordr/plugin/evidence"
	"github.com/vordr-project/vordr/referrers"
)

// EnvConfig names the verifier's config file. containerd runs verifiers
// with its own environment and only the -name/-digest/-stdin-media-type
// flags, so the config cannot be passed on the command line; and every file
// in the verifier bin_dir is run as a verifier, so it cannot live there.
const EnvConfig = "VORDR_VERIFIER_CONFIG"

// DefaultConfigPath is read when EnvConfig is unset.
const DefaultConfigPath = "/etc/vordr/verifier.toml"

// Config is the verifier's TOML config.
type Config struct {
	// Policy is the verification policy file; its mode decides what an
	// unverified image does: strict blocks the pull, permissive allows it
	// with a warning in the judgement, audit allows it.
	Policy string `toml:"policy"`
	// ContainerdAddress is containerd's socket, to look for evidence that
	// `vordr import` stored; empty: do not look there.
	ContainerdAddress string `toml:"containerd_address"`
	// Namespaces to look in; empty means every namespace. (The verifier is
	// not told which namespace is pulling.)
	Namespaces []string `toml:"namespaces"`
	// BundleDirs hold .ctp files; a bundle whose image_digest is the pulled
	// digest and that verifies under the policy allows the pull.
	BundleDirs []string `toml:"bundle_dirs"`
	// RegistryReferrers looks for evidence among the pulled image's OCI
	// 1.1 referrers (as `vordr push` writes them) in the registry it is
	// pulled from, by the digest being pulled.
	RegistryReferrers bool `toml:"registry_referrers"`
	// PlainHTTPRegistries are registry hosts (host:port, as in image
	// names) reached over http:// for referrers, such as a local registry.
	PlainHTTPRegistries []string `toml:"plain_http_registries"`
	// ReferrersTagSchema reads referrers only through the referrers tag
	// schema, for registries whose referrers API is broken.
	ReferrersTagSchema bool `toml:"referrers_tag_schema"`
	// EvidenceDir keeps the evidence verified from referrers, by manifest
	// digest, for the runtime gate (its [gate] evidence_dir): the pulled
	// image's record carries no vordr labels. Empty means
	// /var/lib/vordr/evidence; "-" stores nothing.
	EvidenceDir string `toml:"evidence_dir"`
	// Timeout bounds one decision; 8s when empty (containerd's default
	// per-verifier timeout is 10s).
	Timeout string `toml:"timeout"`

	dir string // the config file's directory, for relative paths
}

// LoadConfig reads a config file; relative paths in it are relative to the
// file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("verifier config: %w", err)
	}
	var c Config
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("verifier config %s: %w", path, err)
	}
	c.dir = filepath.Dir(path)
	return &c, nil
}

func (c *Config) abs(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Judgement is the verdict, as containerd's imageverifier.Judgement.
type Judgement struct {
	OK     bool
	Reason string
}

// Verifier decides pulls.
type Verifier struct {
	cfg     Config
	pol     *policy.Policy
	timeout time.Duration
}

// New loads the policy named by the config.
func New(cfg Config) (*Verifier, error) {
	if cfg.Policy == "" {
		return nil, fmt.Errorf("verifier config names no policy; nothing could be verified: %w", errdefs.ErrInvalidArgument)
	}
	pol, err := policy.Load(cfg.abs(cfg.Policy))
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", cfg.abs(cfg.Policy), err)
	}
	v := &Verifier{cfg: cfg, pol: pol, timeout: 8 * time.Second}
	if cfg.Timeout != "" {
		if v.timeout, err = time.ParseDuration(cfg.Timeout); err != nil {
			return nil, fmt.Errorf("verifier config timeout %q: %w", cfg.Timeout, err)
		}
	}
	if cfg.ContainerdAddress == "" && len(cfg.BundleDirs) == 0 && !cfg.RegistryReferrers {
		return nil, fmt.Errorf("verifier config has none of containerd_address, bundle_dirs, registry_referrers: no evidence could ever be found: %w", errdefs.ErrInvalidArgument)
	}
	return v, nil
}

// Mode is the policy's mode.
func (v *Verifier) Mode() policy.Mode { return v.pol.Mode }

// Verify judges the pull of name at desc. An error means no judgement could
// be made (the binary exits non-zero: containerd then blocks the pull).
func (v *Verifier) Verify(ctx context.Context, name string, desc ocispec.Descriptor) (Judgement, error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	if err := desc.Digest.Validate(); err != nil {
		return Judgement{}, fmt.Errorf("descriptor digest %q: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
	}
	found, why := v.find(ctx, name, desc)
	if found != "" {
		return Judgement{OK: true, Reason: fmt.Sprintf("vordr: %s@%s verified: %s", name, desc.Digest, found)}, nil
	}
	reason := fmt.Sprintf("%s@%s has no valid vordr attestation bundle: %s", name, desc.Digest, strings.Join(why, "; "))
	switch v.pol.Mode {
	case policy.Permissive:
		return Judgement{OK: true, Reason: "vordr WARNING (permissive policy, allowed): " + reason}, nil
	case policy.Audit:
		return Judgement{OK: true, Reason: "vordr audit (allowed): " + reason}, nil
	default:
		return Judgement{OK: false, Reason: "vordr (strict): " + reason}, nil
	}
}

// find returns a description of the first valid evidence, or the reasons
// none was found.
func (v *Verifier) find(ctx context.Context, name string, desc ocispec.Descriptor) (string, []string) {
	var why []string
	if images.IsIndexType(desc.MediaType) {
		why = append(why, fmt.Sprintf("it is an index (%s); a vordr bundle signs one image manifest, so pull the platform manifest by digest", desc.MediaType))
	}
	if v.cfg.ContainerdAddress != "" {
		found, err := v.fromContainerd(ctx, desc.Digest)
		if found != "" {
			return found, nil
		}
		why = append(why, err.Error())
	}
	if len(v.cfg.BundleDirs) > 0 {
		found, err := v.fromBundles(ctx, desc.Digest)
		if found != "" {
			return found, nil
		}
		why = append(why, err.Error())
	}
	if v.cfg.RegistryReferrers {
		found, err := v.fromReferrers(ctx, name, desc)
		if found != "" {
			return found, nil
		}
		why = append(why, err.Error())
	}
	return "", why
}

// fromReferrers verifies the evidence referrers of the image in the registry
// it is being pulled from. Only the manifest, config and evidence are
// fetched: the attestations bind the manifest digest, and containerd checks
// every layer against that manifest as it pulls.
func (v *Verifier) fromReferrers(ctx context.Context, name string, desc ocispec.Descriptor) (string, error) {
	r, err := registry.ParseReference(name)
	if err != nil {
		return "", fmt.Errorf("registry referrers: image name %q: %w", name, err)
	}
	// By the digest being pulled: a tag may have moved since containerd
	// resolved it.
	ref := r.Registry + "/" + r.Repository + "@" + desc.Digest.String()
	opts := referrers.Options{PlainHTTP: slices.Contains(v.cfg.PlainHTTPRegistries, r.Registry), TagSchema: v.cfg.ReferrersTagSchema}
	var found string
	err = referrers.Evidence(ctx, ref, opts, func(f *referrers.Found) error {
		ev, err := evidence.FromBlobs(images.Image{Name: name, Target: f.Image}, f.AttestationsJSON, f.ManifestTOML, f.ManifestJSON, f.ConfigJSON)
		if err != nil {
			return err
		}
		res, err := ev.Verify(ctx, v.pol, ctp.VerifyOptions{Sigstore: sigstore.PolicyVerifier{}})
		if err == nil && res.Decision != ctp.Accept {
			err = &ctp.Error{Code: res.ErrorCode, Reason: res.Reason, Msg: res.Message}
		}
		if err != nil {
			return err
		}
		found = fmt.Sprintf("evidence referrer %s in %s verified under policy (%s)", f.Referrer.Digest, r.Registry, v.pol.Mode)
		if dir := v.cfg.EvidenceDir; dir != "-" {
			if dir == "" {
				dir = evidence.DefaultStoreDir
			}
			// The pull goes on if this fails (the image may be meant for
			// runc.v2), but the reason says why the gate will refuse it.
			if err := evidence.WriteStore(dir, desc.Digest, f.AttestationsJSON, f.ManifestTOML); err != nil {
				found += "; not stored for the runtime gate: " + err.Error()
			} else {
				found += "; stored in " + dir + " for the runtime gate"
			}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("registry referrers: %w", err)
	}
	return found, nil
}

func (v *Verifier) fromContainerd(ctx context.Context, d digest.Digest) (string, error) {
	client, err := containerd.New(v.cfg.ContainerdAddress, containerd.WithTimeout(5*time.Second))
	if err != nil {
		return "", fmt.Errorf("containerd at %s: %w", v.cfg.ContainerdAddress, err)
	}
	defer client.Close()
	nss := v.cfg.Namespaces
	if len(nss) == 0 {
		if nss, err = client.NamespaceService().List(ctx); err != nil {
			return "", fmt.Errorf("list containerd namespaces: %w", err)
		}
	}
	var errs []string
	for _, ns := range nss {
		ev, err := plugin.FindVerifiedImage(namespaces.WithNamespace(ctx, ns), client, d, v.pol, ctp.VerifyOptions{Sigstore: sigstore.PolicyVerifier{}})
		if err == nil {
			return fmt.Sprintf("attestations imported as image %s in containerd namespace %s re-verified under policy (%s)", ev.Image.Name, ns, v.pol.Mode), nil
		}
		if errors.Is(err, plugin.ErrNoEvidence) {
			continue
		}
		errs = append(errs, fmt.Sprintf("namespace %s: %v", ns, err))
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("no image imported into containerd (namespaces %s) carries evidence for it", strings.Join(nss, ","))
	}
	return "", fmt.Errorf("evidence in containerd does not verify: %s", strings.Join(errs, "; "))
}

func (v *Verifier) fromBundles(ctx context.Context, d digest.Digest) (string, error) {
	var files []string
	for _, dir := range v.cfg.BundleDirs {
		m, err := filepath.Glob(filepath.Join(v.cfg.abs(dir), "*.ctp"))
		if err != nil {
			return "", err
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	var errs []string
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		b, err := ctp.OpenFile(f, ctp.Options{})
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		if b.Manifest().ImageDigest != d.String() {
			b.Close()
			continue
		}
		res, err := ctp.Verify(ctx, b, v.pol, ctp.VerifyOptions{Sigstore: sigstore.PolicyVerifier{}})
		b.Close()
		if err == nil && res.Decision != ctp.Accept {
			err = &ctp.Error{Code: res.ErrorCode, Reason: res.Reason, Msg: res.Message}
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		return fmt.Sprintf("bundle %s verified under policy (%s)", f, v.pol.Mode), nil
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("no bundle for it in %s", strings.Join(v.cfg.BundleDirs, ","))
	}
	return "", fmt.Errorf("bundles for it do not verify: %s", strings.Join(errs, "; "))
}

// Package referrers moves .ctp bundles through an OCI registry: the image as
// an ordinary OCI image (so any client can pull it), its evidence as OCI 1.1
// referrers of the image manifest (docs/registry.md). Push splits a bundle
// into those parts; Pull fetches them and reassembles the bundle byte for
// byte, so the importer verifies exactly what it verifies for a file.
//
// Registries without the referrers API are served through the referrers tag
// schema (a tag sha256-<hex> holding an index of the referrers), which
// oras-go maintains on push and reads on pull when the API is missing.
//
// The package talks to registries only; it never touches containerd, and the
// shim does not link it.
package referrers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/vordr-project/vordr/version"
)

const (
	// ArtifactTypeEvidence is the artifactType of the referrer that carries
	// a bundle's manifest.toml and attestations/bundle.json.
	ArtifactTypeEvidence = "application/vnd.vordr.ctp.evidence.v1+json"
	// MediaTypeManifestTOML is the evidence layer holding manifest.toml (the
	// media type the importer stores it under, plugin.MediaTypeManifestTOML).
	MediaTypeManifestTOML = "application/vnd.vordr.ctp.manifest.v1+toml"
	// MediaTypeSigstoreBundle is the prefix of the sigstore bundle media
	// types (v0.1 … v0.3), which cosign also uses as the artifactType of the
	// referrer holding one.
	MediaTypeSigstoreBundle = "application/vnd.dev.sigstore.bundle"

	// Annotations on sigstore bundle referrers, as cosign writes them.
	annotationBundleContent   = "dev.sigstore.bundle.content"
	annotationBundlePredicate = "dev.sigstore.bundle.predicateType"

	// Limits on what a registry may hand back before it is looked at:
	// manifests as containerd's, evidence as the bundle format's.
	maxManifestSize     = 4 << 20
	maxManifestTOMLSize = 1 << 20
	maxAttestationsSize = 64 << 20
)

// Options say how to reach a registry.
type Options struct {
	// PlainHTTP talks http:// instead of https:// (a local test registry).
	PlainHTTP bool
	// TagSchema skips the referrers API and uses only the referrers tag
	// schema, for registries whose API is missing or broken in ways a
	// probe does not detect. Without it, the API is tried first and the tag
	// schema used if the registry answers that it has no such API.
	TagSchema bool
	// Credential gives credentials for a registry host; nil reads the docker
	// config (~/.docker/config.json, $DOCKER_CONFIG, credential helpers).
	Credential auth.CredentialFunc
	// HTTPClient is the transport; nil is oras-go's retrying client.
	HTTPClient *http.Client
}

// repository opens the repository named by ref and returns the tag or
// digest ref names (empty if none).
func (o Options) repository(ref string) (*remote.Repository, registry.Reference, error) {
	r, err := registry.ParseReference(ref)
	if err != nil {
		return nil, registry.Reference{}, fmt.Errorf("image reference %q: %w (want HOST[:PORT]/REPOSITORY[:TAG|@sha256:HEX], e.g. registry.example.com/app:1.0)", ref, err)
	}
	repo, err := remote.NewRepository(r.Registry + "/" + r.Repository)
	if err != nil {
		return nil, registry.Reference{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	repo.PlainHTTP = o.PlainHTTP
	cred := o.Credential
	if cred == nil {
		store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
		if err != nil {
			return nil, registry.Reference{}, fmt.Errorf("read registry credentials from the docker config: %w (fix or move the file, or set DOCKER_CONFIG)", err)
		}
		cred = credentials.Credential(store)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = retry.DefaultClient
	}
	client := &auth.Client{Client: hc, Cache: auth.NewCache(), Credential: cred}
	client.SetUserAgent("vordr/" + version.Version)
	repo.Client = client
	if o.TagSchema {
		// Only fails if already set, and repo is new.
		_ = repo.SetReferrersCapability(false)
	}
	return repo, r, nil
}

// sigstoreBundleInfo reads what cosign puts in a sigstore bundle referrer's
// annotations: its media type, and for DSSE content the statement's
// predicate type. The bundle itself is verified at import, not here.
func sigstoreBundleInfo(data []byte) (mediaType, content, predicateType string, err error) {
	var b struct {
		MediaType    string `json:"mediaType"`
		DSSEEnvelope *struct {
			Payload string `json:"payload"`
		} `json:"dsseEnvelope"`
		MessageSignature json.RawMessage `json:"messageSignature"`
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return "", "", "", fmt.Errorf("sigstore bundle: %w", err)
	}
	if !strings.HasPrefix(b.MediaType, MediaTypeSigstoreBundle) {
		return "", "", "", fmt.Errorf("sigstore bundle: media type %q is not %s…", b.MediaType, MediaTypeSigstoreBundle)
	}
	switch {
	case b.DSSEEnvelope != nil:
		content = "dsse-envelope"
		payload, err := base64.StdEncoding.DecodeString(b.DSSEEnvelope.Payload)
		if err != nil {
			return "", "", "", fmt.Errorf("sigstore bundle: DSSE payload: %w", err)
		}
		var st struct {
			PredicateType string `json:"predicateType"`
		}
		if json.Unmarshal(payload, &st) == nil {
			predicateType = st.PredicateType
		}
	case b.MessageSignature != nil:
		content = "message-signature"
	}
	return b.MediaType, content, predicateType, nil
}

// errNoEvidence is wrapped when an image has no vordr evidence referrer.
var errNoEvidence = errors.New("no vordr evidence referrer")

// IsNoEvidence reports whether err says the image has no evidence referrer
// at all (as opposed to evidence that could not be fetched or verified).
func IsNoEvidence(err error) bool { return errors.Is(err, errNoEvidence) }

// checkContext returns ctx's error, wrapped with what was being done.
func checkContext(ctx context.Context, what string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

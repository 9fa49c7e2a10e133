// Package plugin connects vordr's bundles to containerd: verified import into
// the content store and snapshotter, the records that say what was verified,
// the verifying snapshotter, pull-time verification, and the runtime gate.
package plugin

import "github.com/vordr-project/vordr/plugin/evidence"

// Labels vordr puts on containerd objects. They record what was verified; they
// are hints to find the evidence, never the evidence: the gate and the
// snapshotter re-verify the attestations stored in the content store before
// they trust an image.
const (
	// Image labels, set by Import on the image record.

	// LabelBundleDigest is the sha256 digest of the .ctp file that was imported.
	LabelBundleDigest = "vordr.io/bundle.digest"
	// LabelAttestations is the digest of the attestation bundle
	// (attestations/bundle.json) stored in the content store; the content is
	// also referenced from the image record with a GC label so it lives as
	// long as the image.
	LabelAttestations = evidence.LabelAttestations
	// LabelSigners lists the key ids (sha256:…) of the signers accepted at
	// import, comma-separated.
	LabelSigners = "vordr.io/verified.signers"
	// LabelPredicates lists the predicate types found, comma-separated.
	LabelPredicates = "vordr.io/verified.predicates"
	// LabelPolicyDigest is the sha256 digest of the canonical policy used.
	LabelPolicyDigest = "vordr.io/verified.policy"
	// LabelVerifiedAt is when the import verified the bundle (RFC 3339, UTC).
	LabelVerifiedAt = "vordr.io/verified.at"

	// Snapshot labels. containerd passes only labels with the
	// "containerd.io/snapshot/" prefix through to a (proxy) snapshotter, on
	// Prepare, Commit and Update, so the vordr snapshotter sees these.

	// SnapshotLabelVerifiedImage names the image manifest digest whose
	// verified layer chain a committed snapshot belongs to.
	SnapshotLabelVerifiedImage = "containerd.io/snapshot/vordr.verified-image"
	// SnapshotLabelPolicy is the policy digest the chain was verified under.
	SnapshotLabelPolicy = "containerd.io/snapshot/vordr.policy"

	// Annotations a container may carry.

	// AnnotationPolicy names one of the policies configured for the runtime.
	AnnotationPolicy = "vordr.io/policy"
	// AnnotationProfile names the security profile (dev, balanced, strict or
	// a configured one).
	AnnotationProfile = "vordr.io/profile"
)

// Labels and media types added by the importer (plugin/import.go).
const (
	// LabelManifestTOML is the digest of the bundle's manifest.toml, stored in
	// the content store next to the attestations: every statement names it as
	// a subject, so re-verification needs it.
	LabelManifestTOML = evidence.LabelManifestTOML
	// LabelDecision is the verdict at import: accept, or warn / audit when a
	// permissive or audit policy let a failing bundle in.
	LabelDecision = "vordr.io/verified.decision"
	// LabelReason is the error code of a warn / audit verdict.
	LabelReason = "vordr.io/verified.reason"

	// GCLabelAttestations and GCLabelManifestTOML are containerd garbage
	// collection references from the image record to the evidence blobs, so
	// they live exactly as long as the image.
	GCLabelAttestations = "containerd.io/gc.ref.content.vordr.attestations"
	GCLabelManifestTOML = "containerd.io/gc.ref.content.vordr.manifest"

	// MediaTypeManifestTOML is the media type of a stored manifest.toml.
	MediaTypeManifestTOML = "application/vnd.vordr.ctp.manifest.v1+toml"
)

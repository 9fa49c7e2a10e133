// Package ctp reads, writes, signs and verifies .ctp v1 bundles: an OCI image
// plus signed in-toto attestations and transparency-log proofs in one tar
// file that can be verified offline. The normative description of the format
// is docs/ctp-format.md; docs/policy.md describes the policy.
//
// The package does not depend on containerd so that anyone can verify bundles
// with it; the containerd import plugin builds on Open, Verify and the blob
// accessors of Bundle.
package ctp

import (
	"encoding/json"
	"time"

	"github.com/vordr-project/vordr/ctp/dsse"
)

// Entry names inside a bundle.
const (
	ManifestPath    = "manifest.toml"
	LayoutDir       = "oci-layout/"
	LayoutFilePath  = "oci-layout/oci-layout"
	IndexPath       = "oci-layout/index.json"
	BlobsDir        = "oci-layout/blobs/sha256/"
	AttestationsDir = "attestations/"
	BundleJSONPath  = "attestations/bundle.json"
)

// Media types and URIs fixed by the format.
const (
	BundleMediaType = "application/vnd.verified-container.bundle+json"
	StatementType   = "https://in-toto.io/Statement/v1"
	PredicateSLSA   = "https://slsa.dev/provenance/v1"
	// PredicateSLSAv02 is SLSA provenance v0.2, which cosign attest writes.
	PredicateSLSAv02     = "https://slsa.dev/provenance/v0.2"
	PredicateSPDX        = "https://spdx.dev/Document"
	BuildTypePack        = "https://github.com/vordr-project/vordr/ctp/pack/v1"
	BuilderID            = "https://github.com/vordr-project/vordr/cmd/vordr"
	LogLeafKind          = "vordr.ctp/dsse-signature/v1"
	ManifestSubjectName  = "manifest.toml"
	layoutFileContent    = `{"imageLayoutVersion":"1.0.0"}`
	currentCTPVersion    = 1
	currentBundleVersion = 1
)

// Manifest is manifest.toml.
type Manifest struct {
	CTPVersion  int               `toml:"ctp_version" json:"ctpVersion"`
	Name        string            `toml:"name" json:"name"`
	Version     string            `toml:"version" json:"version"`
	Created     time.Time         `toml:"created" json:"created"`
	ImageRef    string            `toml:"image_ref,omitempty" json:"imageRef,omitempty"`
	ImageDigest string            `toml:"image_digest" json:"imageDigest"`
	Annotations map[string]string `toml:"annotations,omitempty" json:"annotations,omitempty"`
}

// AttestationBundle is attestations/bundle.json. It must be canonical JSON.
type AttestationBundle struct {
	MediaType    string          `json:"mediaType"`
	Version      int             `json:"version"`
	Attestations []dsse.Envelope `json:"attestations"`
	LogEntries   []LogEntry      `json:"logEntries"`
	// SigstoreBundles are sigstore bundles (cosign's attestations, keyed or
	// keyless), each the bundle's JSON as a string, kept byte for byte as
	// its producer wrote it. Optional; verified with the policy's signers
	// and identities (docs/ctp-format.md §5).
	SigstoreBundles []string `json:"sigstoreBundles,omitempty"`
}

// LogEntry is transparency-log evidence that one DSSE signature was logged.
// The logged leaf is LogLeaf, canonical JSON, built from the envelope the
// signature belongs to and IntegratedTime; see docs/ctp-format.md.
type LogEntry struct {
	LogID          string         `json:"logId"`
	LogIndex       uint64         `json:"logIndex"`
	IntegratedTime int64          `json:"integratedTime"`
	Signature      string         `json:"signature"` // sha256:<hex of the raw signature bytes>
	InclusionProof InclusionProof `json:"inclusionProof"`
	Checkpoint     string         `json:"checkpoint"` // C2SP signed note
}

// InclusionProof is an RFC 6962 inclusion proof, hashes in lowercase hex.
type InclusionProof struct {
	TreeSize uint64   `json:"treeSize"`
	RootHash string   `json:"rootHash"`
	Hashes   []string `json:"hashes"`
}

// LogLeaf is the data a log stores for one signature.
type LogLeaf struct {
	Kind            string `json:"kind"`
	IntegratedTime  int64  `json:"integratedTime"`
	KeyID           string `json:"keyid"`
	PayloadType     string `json:"payloadType"`
	PayloadDigest   string `json:"payloadDigest"`
	SignatureDigest string `json:"signatureDigest"`
}

// Statement is an in-toto Statement v1.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// Subject is an in-toto ResourceDescriptor restricted to name and digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

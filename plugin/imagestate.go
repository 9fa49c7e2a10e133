package plugin

import (
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/images"
)

// ImageState is an image record with what vordr verified at import (the
// runtime re-verifies at every create): one row of `vordr images` and of
// vordr serve's GET /api/v1/images.
type ImageState struct {
	Name         string   `json:"name"`
	Digest       string   `json:"digest"`
	State        string   `json:"state"` // verified, unverified, verified (alias), or the import's warn/audit decision
	Reason       string   `json:"reason,omitempty"`
	Signers      []string `json:"signers"`
	Predicates   []string `json:"predicates"`
	Policy       string   `json:"policy,omitempty"`
	VerifiedAt   string   `json:"verifiedAt,omitempty"`
	Bundle       string   `json:"bundle,omitempty"`
	Attestations string   `json:"attestations,omitempty"`
	// AliasOf names the verified record this one shares its manifest with:
	// CRI adds such records (repo@digest, the bare digest), and the gate
	// finds the evidence of a manifest on any of its records.
	AliasOf string `json:"aliasOf,omitempty"`
}

// ImageStates reads the verification labels of imgs, sorted by name.
func ImageStates(imgs []images.Image) []ImageState {
	imgs = append([]images.Image(nil), imgs...)
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	rows := make([]ImageState, 0, len(imgs))
	for _, img := range imgs {
		l := img.Labels
		r := ImageState{Name: img.Name, Digest: img.Target.Digest.String(), State: "unverified",
			Signers: splitList(l[LabelSigners]), Predicates: splitList(l[LabelPredicates]),
			Policy: l[LabelPolicyDigest], VerifiedAt: l[LabelVerifiedAt],
			Bundle: l[LabelBundleDigest], Attestations: l[LabelAttestations]}
		switch d := l[LabelDecision]; {
		case d == "accept" && r.Attestations != "":
			r.State = "verified"
		case d != "":
			r.State = "unverified (" + d + ")"
			r.Reason = l[LabelReason]
		}
		rows = append(rows, r)
	}
	// Records without evidence whose manifest a verified record has are
	// aliases of it, not unverified images.
	verifiedBy := map[string]string{}
	for _, r := range rows {
		if _, ok := verifiedBy[r.Digest]; !ok && r.State == "verified" {
			verifiedBy[r.Digest] = r.Name
		}
	}
	for i, r := range rows {
		if v, ok := verifiedBy[r.Digest]; ok && r.Attestations == "" && r.Name != v {
			rows[i].State, rows[i].AliasOf = "verified (alias)", v
		}
	}
	return rows
}

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

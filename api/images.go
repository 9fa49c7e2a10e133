package api

import (
	"context"
	"net/http"
	"sort"
	"strings"

	"github.com/vordr-project/vordr/plugin"
)

// Image is an image with what vordr verified at import (the runtime
// re-verifies at every create). The same view as `vordr images --json`.
type Image struct {
	Name       string   `json:"name"`
	Digest     string   `json:"digest"`
	State      string   `json:"state"`
	Reason     string   `json:"reason,omitempty"`
	Signers    []string `json:"signers"`
	Predicates []string `json:"predicates"`
	Policy     string   `json:"policy,omitempty"`
	VerifiedAt string   `json:"verifiedAt,omitempty"`
	Bundle     string   `json:"bundle,omitempty"`
	AliasOf    string   `json:"aliasOf,omitempty"`
}

func splitList(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

func (s *Server) listImages(w http.ResponseWriter, r *http.Request, _ Identity) error {
	rows, err := s.imageList(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": rows})
	return nil
}

// imageList is containerd's images with vordr's verification records.
func (s *Server) imageList(ctx context.Context) ([]Image, error) {
	imgs, err := s.client.ImageService().List(s.ns(ctx))
	if err != nil {
		return nil, err
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	rows := make([]Image, 0, len(imgs))
	for _, img := range imgs {
		l := img.Labels
		row := Image{Name: img.Name, Digest: img.Target.Digest.String(), State: "unverified",
			Signers: splitList(l[plugin.LabelSigners]), Predicates: splitList(l[plugin.LabelPredicates]),
			Policy: l[plugin.LabelPolicyDigest], VerifiedAt: l[plugin.LabelVerifiedAt], Bundle: l[plugin.LabelBundleDigest]}
		switch d := l[plugin.LabelDecision]; {
		case d == "accept" && l[plugin.LabelAttestations] != "":
			row.State = "verified"
		case d != "":
			row.State = "unverified (" + d + ")"
			row.Reason = l[plugin.LabelReason]
		}
		rows = append(rows, row)
	}
	// Records without evidence sharing a verified record's manifest are
	// aliases of it (CRI adds repo@digest records), as `vordr images` says.
	verifiedBy := map[string]string{}
	for i, row := range rows {
		if row.State == "verified" {
			if _, ok := verifiedBy[row.Digest]; !ok {
				verifiedBy[row.Digest] = rows[i].Name
			}
		}
	}
	for i, row := range rows {
		if v, ok := verifiedBy[row.Digest]; ok && row.State == "unverified" && row.Name != v {
			rows[i].State, rows[i].AliasOf = "verified (alias)", v
		}
	}
	return rows, nil
}

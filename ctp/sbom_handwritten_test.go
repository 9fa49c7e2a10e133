package ctp

// The hand-written SPDX 2.3 writer that ctp used before it took the document
// model from github.com/spdx/tools-golang, kept as the baseline of
// BenchmarkSPDX_* and of TestSPDXMatchesHandwritten.

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// SPDX 2.3 document, the subset vordr writes.
type handSPDXDocument struct {
	SPDXVersion       string                 `json:"spdxVersion"`
	DataLicense       string                 `json:"dataLicense"`
	SPDXID            string                 `json:"SPDXID"`
	Name              string                 `json:"name"`
	DocumentNamespace string                 `json:"documentNamespace"`
	CreationInfo      handSPDXCreationInfo   `json:"creationInfo"`
	Packages          []handSPDXPackage      `json:"packages"`
	Files             []handSPDXFile         `json:"files"`
	Relationships     []handSPDXRelationship `json:"relationships"`
}

type handSPDXCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type handSPDXPackage struct {
	Name             string                `json:"name"`
	SPDXID           string                `json:"SPDXID"`
	VersionInfo      string                `json:"versionInfo,omitempty"`
	DownloadLocation string                `json:"downloadLocation"`
	FilesAnalyzed    bool                  `json:"filesAnalyzed"`
	Checksums        []handSPDXChecksum    `json:"checksums,omitempty"`
	ExternalRefs     []handSPDXExternalRef `json:"externalRefs,omitempty"`
	PrimaryPurpose   string                `json:"primaryPackagePurpose,omitempty"`
}

type handSPDXExternalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type handSPDXFile struct {
	FileName  string             `json:"fileName"`
	SPDXID    string             `json:"SPDXID"`
	Checksums []handSPDXChecksum `json:"checksums"`
}

type handSPDXChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type handSPDXRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// spdxID keeps only the characters SPDX allows in identifiers.
func handSPDXID(prefix, s string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// buildSPDX renders the SBOM of an image. The output depends only on its
// arguments, never on the clock or the map order, so packing is reproducible.
func handBuildSPDX(name, version, imageDigest string, created time.Time, files []fileRecord, pkgs []pkgRecord) handSPDXDocument {
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Version < pkgs[j].Version
	})
	hex := strings.TrimPrefix(imageDigest, "sha256:")
	doc := handSPDXDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              name,
		DocumentNamespace: "https://vordr-project.github.io/spdx/" + name + "/" + hex,
		CreationInfo:      handSPDXCreationInfo{Created: created.UTC().Format(time.RFC3339), Creators: []string{"Tool: vordr-ctp-pack"}},
		Packages: []handSPDXPackage{{
			Name: name, SPDXID: "SPDXRef-Image", VersionInfo: version, DownloadLocation: "NOASSERTION",
			FilesAnalyzed: false, PrimaryPurpose: "CONTAINER",
			Checksums: []handSPDXChecksum{{Algorithm: "SHA256", Value: hex}},
		}},
		Files:         []handSPDXFile{},
		Relationships: []handSPDXRelationship{{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: "SPDXRef-Image"}},
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		id := handSPDXID("SPDXRef-Package-"+p.Type+"-", p.Name+"-"+p.Version)
		if seen[id] {
			continue
		}
		seen[id] = true
		purl := fmt.Sprintf("pkg:%s/%s@%s", p.Type, p.Name, p.Version)
		if p.Arch != "" {
			purl += "?arch=" + p.Arch
		}
		doc.Packages = append(doc.Packages, handSPDXPackage{
			Name: p.Name, SPDXID: id, VersionInfo: p.Version, DownloadLocation: "NOASSERTION",
			ExternalRefs: []handSPDXExternalRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: purl}},
		})
		doc.Relationships = append(doc.Relationships, handSPDXRelationship{Element: "SPDXRef-Image", Type: "CONTAINS", Related: id})
	}
	for i, f := range files {
		id := fmt.Sprintf("SPDXRef-File-%d", i+1)
		doc.Files = append(doc.Files, handSPDXFile{
			FileName: "." + f.Path, SPDXID: id,
			Checksums: []handSPDXChecksum{{Algorithm: "SHA1", Value: f.SHA1}, {Algorithm: "SHA256", Value: f.SHA256}},
		})
		doc.Relationships = append(doc.Relationships, handSPDXRelationship{Element: "SPDXRef-Image", Type: "CONTAINS", Related: id})
	}
	return doc
}

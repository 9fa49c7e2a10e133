package ctp

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"
)

// fileRecord is one regular file of the image's final filesystem.
type fileRecord struct {
	Path   string // absolute inside the image, e.g. /bin/sh
	SHA256 string
	SHA1   string
	Size   int64
}

// pkgRecord is one installed package read from a package database.
type pkgRecord struct {
	Name, Version, Arch, Type string // Type: deb or apk
}

// Package databases whose content the SBOM generator reads.
const (
	dpkgStatusPath = "/var/lib/dpkg/status"
	apkDBPath      = "/lib/apk/db/installed"
	maxPkgDB       = 64 << 20
)

func parseDpkgStatus(data []byte) []pkgRecord {
	var out []pkgRecord
	for _, stanza := range strings.Split(string(data), "\n\n") {
		f := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(stanza))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == ' ' || line[0] == '\t' {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok {
				f[k] = strings.TrimSpace(v)
			}
		}
		if f["Package"] == "" || !strings.HasSuffix(f["Status"], " installed") {
			continue
		}
		out = append(out, pkgRecord{Name: f["Package"], Version: f["Version"], Arch: f["Architecture"], Type: "deb"})
	}
	return out
}

func parseApkInstalled(data []byte) []pkgRecord {
	var out []pkgRecord
	for _, stanza := range strings.Split(string(data), "\n\n") {
		var p pkgRecord
		for _, line := range strings.Split(stanza, "\n") {
			if len(line) < 2 || line[1] != ':' {
				continue
			}
			switch line[0] {
			case 'P':
				p.Name = line[2:]
			case 'V':
				p.Version = line[2:]
			case 'A':
				p.Arch = line[2:]
			}
		}
		if p.Name != "" {
			p.Type = "apk"
			out = append(out, p)
		}
	}
	return out
}

// SPDX 2.3 document, the subset vordr writes.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Files             []spdxFile         `json:"files"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string            `json:"name"`
	SPDXID           string            `json:"SPDXID"`
	VersionInfo      string            `json:"versionInfo,omitempty"`
	DownloadLocation string            `json:"downloadLocation"`
	FilesAnalyzed    bool              `json:"filesAnalyzed"`
	Checksums        []spdxChecksum    `json:"checksums,omitempty"`
	ExternalRefs     []spdxExternalRef `json:"externalRefs,omitempty"`
	PrimaryPurpose   string            `json:"primaryPackagePurpose,omitempty"`
}

type spdxExternalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxFile struct {
	FileName  string         `json:"fileName"`
	SPDXID    string         `json:"SPDXID"`
	Checksums []spdxChecksum `json:"checksums"`
}

type spdxChecksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// spdxID keeps only the characters SPDX allows in identifiers.
func spdxID(prefix, s string) string {
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
func buildSPDX(name, version, imageDigest string, created time.Time, files []fileRecord, pkgs []pkgRecord) spdxDocument {
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Version < pkgs[j].Version
	})
	hex := strings.TrimPrefix(imageDigest, "sha256:")
	doc := spdxDocument{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              name,
		DocumentNamespace: "https://vordr-project.github.io/spdx/" + name + "/" + hex,
		CreationInfo:      spdxCreationInfo{Created: created.UTC().Format(time.RFC3339), Creators: []string{"Tool: vordr-ctp-pack"}},
		Packages: []spdxPackage{{
			Name: name, SPDXID: "SPDXRef-Image", VersionInfo: version, DownloadLocation: "NOASSERTION",
			FilesAnalyzed: false, PrimaryPurpose: "CONTAINER",
			Checksums: []spdxChecksum{{Algorithm: "SHA256", Value: hex}},
		}},
		Files:         []spdxFile{},
		Relationships: []spdxRelationship{{Element: "SPDXRef-DOCUMENT", Type: "DESCRIBES", Related: "SPDXRef-Image"}},
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		id := spdxID("SPDXRef-Package-"+p.Type+"-", p.Name+"-"+p.Version)
		if seen[id] {
			continue
		}
		seen[id] = true
		purl := fmt.Sprintf("pkg:%s/%s@%s", p.Type, p.Name, p.Version)
		if p.Arch != "" {
			purl += "?arch=" + p.Arch
		}
		doc.Packages = append(doc.Packages, spdxPackage{
			Name: p.Name, SPDXID: id, VersionInfo: p.Version, DownloadLocation: "NOASSERTION",
			ExternalRefs: []spdxExternalRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: purl}},
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{Element: "SPDXRef-Image", Type: "CONTAINS", Related: id})
	}
	for i, f := range files {
		id := fmt.Sprintf("SPDXRef-File-%d", i+1)
		doc.Files = append(doc.Files, spdxFile{
			FileName: "." + f.Path, SPDXID: id,
			Checksums: []spdxChecksum{{Algorithm: "SHA1", Value: f.SHA1}, {Algorithm: "SHA256", Value: f.SHA256}},
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{Element: "SPDXRef-Image", Type: "CONTAINS", Related: id})
	}
	return doc
}

func packagesFrom(dbs map[string][]byte) []pkgRecord {
	var out []pkgRecord
	if d, ok := dbs[dpkgStatusPath]; ok {
		out = append(out, parseDpkgStatus(d)...)
	}
	if d, ok := dbs[apkDBPath]; ok {
		out = append(out, parseApkInstalled(bytes.TrimSpace(d))...)
	}
	return out
}

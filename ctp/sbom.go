package ctp

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
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

// spdxID keeps only the characters SPDX allows in identifiers. The
// "SPDXRef-" prefix is added by the library when the document is encoded.
func spdxID(prefix, s string) common.ElementID {
	var b strings.Builder
	b.WriteString(prefix)
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return common.ElementID(b.String())
}

func spdxContains(a, b common.ElementID) *spdx.Relationship {
	return &spdx.Relationship{
		RefA:         common.DocElementID{ElementRefID: a},
		RefB:         common.DocElementID{ElementRefID: b},
		Relationship: common.TypeRelationshipContains,
	}
}

// buildSPDX renders the SBOM of an image as an SPDX 2.3 document (the model
// of github.com/spdx/tools-golang). The output depends only on its
// arguments, never on the clock or the map order, so packing is
// reproducible.
func buildSPDX(name, version, imageDigest string, created time.Time, files []fileRecord, pkgs []pkgRecord) *spdx.Document {
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Version < pkgs[j].Version
	})
	hex := strings.TrimPrefix(imageDigest, "sha256:")
	const image common.ElementID = "Image"
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      name,
		DocumentNamespace: "https://vordr-project.github.io/spdx/" + name + "/" + hex,
		CreationInfo: &spdx.CreationInfo{
			Created:  created.UTC().Format(time.RFC3339),
			Creators: []common.Creator{{CreatorType: "Tool", Creator: "vordr-ctp-pack"}},
		},
		Packages: make([]*spdx.Package, 0, len(pkgs)+1),
		Files:    make([]*spdx.File, 0, len(files)),
		Relationships: append(make([]*spdx.Relationship, 0, len(pkgs)+len(files)+1), &spdx.Relationship{
			RefA:         common.DocElementID{ElementRefID: "DOCUMENT"},
			RefB:         common.DocElementID{ElementRefID: image},
			Relationship: common.TypeRelationshipDescribe,
		}),
	}
	doc.Packages = append(doc.Packages, &spdx.Package{
		PackageName: name, PackageSPDXIdentifier: image, PackageVersion: version,
		PackageDownloadLocation: "NOASSERTION", FilesAnalyzed: false, PrimaryPackagePurpose: "CONTAINER",
		PackageChecksums: []common.Checksum{{Algorithm: common.SHA256, Value: hex}},
	})
	seen := map[common.ElementID]bool{}
	for _, p := range pkgs {
		id := spdxID("Package-"+p.Type+"-", p.Name+"-"+p.Version)
		if seen[id] {
			continue
		}
		seen[id] = true
		purl := fmt.Sprintf("pkg:%s/%s@%s", p.Type, p.Name, p.Version)
		if p.Arch != "" {
			purl += "?arch=" + p.Arch
		}
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName: p.Name, PackageSPDXIdentifier: id, PackageVersion: p.Version, PackageDownloadLocation: "NOASSERTION",
			PackageExternalReferences: []*spdx.PackageExternalReference{{Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl}},
		})
		doc.Relationships = append(doc.Relationships, spdxContains(image, id))
	}
	for i, f := range files {
		id := common.ElementID(fmt.Sprintf("File-%d", i+1))
		doc.Files = append(doc.Files, &spdx.File{
			FileName: "." + f.Path, FileSPDXIdentifier: id,
			Checksums: []common.Checksum{{Algorithm: common.SHA1, Value: f.SHA1}, {Algorithm: common.SHA256, Value: f.SHA256}},
			// Required by the library's encoding; vordr makes no claim.
			FileCopyrightText: "NOASSERTION",
		})
		doc.Relationships = append(doc.Relationships, spdxContains(image, id))
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

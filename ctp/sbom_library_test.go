package ctp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/vordr-project/vordr/ctp/canonical"
)

func sbomInput(nFiles, nPkgs int) ([]fileRecord, []pkgRecord) {
	var files []fileRecord
	for i := nFiles; i > 0; i-- { // reversed: buildSPDX sorts
		files = append(files, fileRecord{Path: fmt.Sprintf("/usr/lib/f%05d.so", i), SHA256: strings.Repeat("a", 64), SHA1: strings.Repeat("b", 40), Size: int64(i)})
	}
	var pkgs []pkgRecord
	for i := 0; i < nPkgs; i++ {
		pkgs = append(pkgs, pkgRecord{Name: fmt.Sprintf("lib%03d", i), Version: "1:2.3-4+deb12u1", Arch: "amd64", Type: "deb"})
	}
	pkgs = append(pkgs,
		pkgRecord{Name: "musl", Version: "1.2.4-r2", Arch: "x86_64", Type: "apk"},
		pkgRecord{Name: "musl", Version: "1.2.4-r2", Arch: "x86_64", Type: "apk"}, // a duplicate is listed once
		pkgRecord{Name: "odd name+plus", Version: "0~rc1", Type: "deb"},
	)
	return files, pkgs
}

var sbomCreated = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// TestSPDXMatchesHandwritten: the library-backed document says what the
// hand-written one said, member for member, except that files now carry
// copyrightText NOASSERTION (the library always encodes the member).
func TestSPDXMatchesHandwritten(t *testing.T) {
	files, pkgs := sbomInput(50, 5)
	hand, err := canonical.Marshal(handBuildSPDX("app", "1.0", "sha256:"+strings.Repeat("c", 64), sbomCreated, append([]fileRecord(nil), files...), append([]pkgRecord(nil), pkgs...)))
	if err != nil {
		t.Fatal(err)
	}
	lib, err := canonical.Marshal(buildSPDX("app", "1.0", "sha256:"+strings.Repeat("c", 64), sbomCreated, files, pkgs))
	if err != nil {
		t.Fatal(err)
	}
	var h, l map[string]any
	if err := json.Unmarshal(hand, &h); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lib, &l); err != nil {
		t.Fatal(err)
	}
	for _, f := range l["files"].([]any) {
		f := f.(map[string]any)
		if f["copyrightText"] != "NOASSERTION" {
			t.Fatalf("file %v: copyrightText %v", f["fileName"], f["copyrightText"])
		}
		delete(f, "copyrightText")
	}
	if !reflect.DeepEqual(h, l) {
		t.Fatalf("documents differ:\nhand: %.600s\nlib:  %.600s", hand, lib)
	}
}

// TestSPDXReadsBack: the SBOM in a bundle parses with the SPDX library's
// own JSON reader, with the packages, purls and relationships written.
func TestSPDXReadsBack(t *testing.T) {
	files, pkgs := sbomInput(3, 2)
	data, err := canonical.Marshal(buildSPDX("app", "1.0", "sha256:"+strings.Repeat("c", 64), sbomCreated, files, pkgs))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("tools-golang cannot read the SBOM: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.SPDXIdentifier != "DOCUMENT" || doc.CreationInfo == nil || doc.CreationInfo.Created != "2025-06-01T12:00:00Z" {
		t.Fatalf("header: %+v", doc)
	}
	// image + 2 deb + musl (once) + odd name
	if len(doc.Packages) != 5 || len(doc.Files) != 3 || len(doc.Relationships) != 1+4+3 {
		t.Fatalf("%d packages, %d files, %d relationships", len(doc.Packages), len(doc.Files), len(doc.Relationships))
	}
	if p := doc.Packages[0]; p.PrimaryPackagePurpose != "CONTAINER" || p.PackageSPDXIdentifier != "Image" || p.PackageChecksums[0].Value != strings.Repeat("c", 64) {
		t.Fatalf("image package: %+v", p)
	}
	var purls []string
	for _, p := range doc.Packages[1:] {
		purls = append(purls, p.PackageExternalReferences[0].Locator)
	}
	want := []string{"pkg:deb/lib000@1:2.3-4+deb12u1?arch=amd64", "pkg:deb/lib001@1:2.3-4+deb12u1?arch=amd64", "pkg:apk/musl@1.2.4-r2?arch=x86_64", "pkg:deb/odd name+plus@0~rc1"}
	if !reflect.DeepEqual(purls, want) {
		t.Fatalf("purls %q, want %q", purls, want)
	}
	if f := doc.Files[0]; f.FileName != "./usr/lib/f00001.so" || len(f.Checksums) != 2 {
		t.Fatalf("first file: %+v", f)
	}
}

var sinkSBOM []byte

// The SBOM benchmarks build and canonically encode the document of an image
// with 10,000 files and 300 packages, as pack does once per bundle.
func benchSPDX(b *testing.B, build func(files []fileRecord, pkgs []pkgRecord) any) {
	files, pkgs := sbomInput(10000, 300)
	b.ReportAllocs()
	for b.Loop() {
		out, err := canonical.Marshal(build(append([]fileRecord(nil), files...), append([]pkgRecord(nil), pkgs...)))
		if err != nil {
			b.Fatal(err)
		}
		sinkSBOM = out
	}
	b.ReportMetric(float64(len(sinkSBOM)), "bytes/doc")
}

func BenchmarkSPDX_Handwritten(b *testing.B) {
	benchSPDX(b, func(f []fileRecord, p []pkgRecord) any {
		return handBuildSPDX("app", "1.0", "sha256:"+strings.Repeat("c", 64), sbomCreated, f, p)
	})
}

func BenchmarkSPDX_Library(b *testing.B) {
	benchSPDX(b, func(f []fileRecord, p []pkgRecord) any {
		return buildSPDX("app", "1.0", "sha256:"+strings.Repeat("c", 64), sbomCreated, f, p)
	})
}

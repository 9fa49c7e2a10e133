package ctp

import (
	"archive/tar"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pelletier/go-toml/v2"

	"github.com/vordr-project/vordr/ctp/canonical"
	"github.com/vordr-project/vordr/ctp/dsse"
	"github.com/vordr-project/vordr/ctp/keys"
)

// PackOptions describe the bundle to create.
type PackOptions struct {
	Name        string // required
	Version     string
	ImageRef    string // written to manifest.toml and the index's ref.name annotation
	Annotations map[string]string
	// Created is recorded in manifest.toml, the config (rootfs input), the
	// provenance and the SBOM. Zero means: the image config's created time for
	// OCI input, the newest mtime in the tree for a rootfs. It never defaults
	// to the clock, which would make packing irreproducible.
	Created time.Time

	// For a rootfs directory: the image config to write.
	OS, Architecture     string // default linux / runtime.GOARCH; also select a platform from an index
	Entrypoint, Cmd, Env []string
	WorkingDir, User     string
	BuilderVersion       string // recorded in the provenance
	Compression          Compression
	TempDir              string
	Signers              []*keys.Signer                        // sign right away (optional)
	Progress             func(stage string, done, total int64) // called from the packing goroutine

	platformExplicit bool

	prog struct {
		stage             string
		done, total, last int64
	}
}

func (o *PackOptions) progress(n int64) {
	if o.Progress == nil {
		return
	}
	p := &o.prog
	p.done += n
	// Report about every 4 MiB so a terminal is not flooded.
	if p.done-p.last >= 4<<20 || p.done == p.total {
		p.last = p.done
		o.Progress(p.stage, p.done, p.total)
	}
}

func (o *PackOptions) stage(name string, total int64) {
	o.prog.stage, o.prog.done, o.prog.total, o.prog.last = name, 0, total, 0
	if o.Progress != nil {
		o.Progress(name, 0, total)
	}
}

type progressWriter struct{ o *PackOptions }

func (p progressWriter) Write(b []byte) (int, error) { p.o.progress(int64(len(b))); return len(b), nil }

// PackResult summarises a packed bundle.
type PackResult struct {
	ManifestDigest digest.Digest
	SourceKind     string
	Layers         int
	Files          int
	Packages       int
}

// image is what every input kind is reduced to before a bundle is written.
type image struct {
	kind         string
	manifestJSON []byte
	configJSON   []byte
	layers       []blobSource
	deps         []resourceDescriptor
	files        []fileRecord
	pkgDBs       map[string][]byte
	created      time.Time
	cleanup      []func()
}

func (img *image) close() {
	for _, f := range img.cleanup {
		f()
	}
}

// Pack creates the bundle out from src: a rootfs directory, an OCI image
// layout directory, or an OCI / docker-save archive (optionally gzip or zstd
// compressed). out is written atomically.
func Pack(ctx context.Context, src, out string, opts PackOptions) (*PackResult, error) {
	if opts.Name == "" {
		return nil, errors.New("ctp: pack: a name is required")
	}
	opts.platformExplicit = opts.OS != "" || opts.Architecture != ""
	if opts.OS == "" {
		opts.OS = "linux"
	}
	if opts.Architecture == "" {
		opts.Architecture = runtime.GOARCH
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	var img *image
	switch {
	case fi.IsDir() && fileExists(filepath.Join(src, "oci-layout")):
		img, err = packLayout(ctx, os.DirFS(src), &opts)
		if img != nil {
			img.kind = "oci-layout"
		}
	case fi.IsDir():
		img, err = packRootfs(ctx, src, &opts)
	default:
		img, err = packArchive(ctx, src, &opts)
	}
	if img != nil {
		defer img.close()
	}
	if err != nil {
		return nil, err
	}
	c, res, err := assemble(img, &opts)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, l := range img.layers {
		total += l.desc.Size
	}
	opts.stage("write", total)
	err = writeFileAtomic(out, opts.Compression, func(w io.Writer) error {
		return writeTar(io.MultiWriter(w, progressWriter{&opts}), c)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// SLSA provenance v1 (https://slsa.dev/spec/v1.0/provenance).
type provenance struct {
	BuildDefinition struct {
		BuildType            string               `json:"buildType"`
		ExternalParameters   map[string]any       `json:"externalParameters"`
		InternalParameters   map[string]any       `json:"internalParameters"`
		ResolvedDependencies []resourceDescriptor `json:"resolvedDependencies"`
	} `json:"buildDefinition"`
	RunDetails struct {
		Builder struct {
			ID      string            `json:"id"`
			Version map[string]string `json:"version,omitempty"`
		} `json:"builder"`
		Metadata struct {
			InvocationID string `json:"invocationId"`
			StartedOn    string `json:"startedOn"`
			FinishedOn   string `json:"finishedOn"`
		} `json:"metadata"`
	} `json:"runDetails"`
}

type resourceDescriptor struct {
	Name      string            `json:"name,omitempty"`
	URI       string            `json:"uri,omitempty"`
	MediaType string            `json:"mediaType,omitempty"`
	Digest    map[string]string `json:"digest"`
}

// Subjects returns the subjects every statement of a bundle must carry.
func subjects(name string, manifestDigest digest.Digest, manifestTOML []byte) []Subject {
	return []Subject{
		{Name: name, Digest: map[string]string{"sha256": manifestDigest.Encoded()}},
		{Name: ManifestSubjectName, Digest: map[string]string{"sha256": digest.FromBytes(manifestTOML).Encoded()}},
	}
}

func newStatement(subj []Subject, predicateType string, predicate any) (*dsse.Envelope, error) {
	p, err := canonical.Marshal(predicate)
	if err != nil {
		return nil, err
	}
	payload, err := canonical.Marshal(Statement{Type: StatementType, Subject: subj, PredicateType: predicateType, Predicate: p})
	if err != nil {
		return nil, err
	}
	return dsse.New(dsse.PayloadTypeInToto, payload), nil
}

func assemble(img *image, opts *PackOptions) (contents, *PackResult, error) {
	created := opts.Created
	if created.IsZero() {
		created = img.created
	}
	created = created.UTC().Truncate(time.Second)
	md := digest.FromBytes(img.manifestJSON)
	mt := Manifest{
		CTPVersion: currentCTPVersion, Name: opts.Name, Version: opts.Version, Created: created,
		ImageRef: opts.ImageRef, ImageDigest: md.String(), Annotations: opts.Annotations,
	}
	manifestTOML, err := toml.Marshal(mt)
	if err != nil {
		return contents{}, nil, err
	}
	idx, err := indexJSON(ocispec.Descriptor{Digest: md, Size: int64(len(img.manifestJSON))}, opts.ImageRef)
	if err != nil {
		return contents{}, nil, err
	}
	subjName := opts.ImageRef
	if subjName == "" {
		subjName = opts.Name
	}
	subj := subjects(subjName, md, manifestTOML)

	var prov provenance
	bd := &prov.BuildDefinition
	bd.BuildType = BuildTypePack
	bd.ExternalParameters = map[string]any{"sourceKind": img.kind, "name": opts.Name}
	if opts.Version != "" {
		bd.ExternalParameters["version"] = opts.Version
	}
	if opts.ImageRef != "" {
		bd.ExternalParameters["imageRef"] = opts.ImageRef
	}
	bd.InternalParameters = map[string]any{"os": opts.OS, "architecture": opts.Architecture, "compression": string(opts.Compression)}
	bd.ResolvedDependencies = img.deps
	rd := &prov.RunDetails
	rd.Builder.ID = BuilderID
	if opts.BuilderVersion != "" {
		rd.Builder.Version = map[string]string{"vordr": opts.BuilderVersion}
	}
	rd.Metadata.InvocationID = "urn:vordr:ctp-pack:" + md.Encoded()
	rd.Metadata.StartedOn = created.Format(time.RFC3339)
	rd.Metadata.FinishedOn = created.Format(time.RFC3339)

	pkgs := packagesFrom(img.pkgDBs)
	sbom := buildSPDX(opts.Name, opts.Version, md.String(), created, img.files, pkgs)

	var att AttestationBundle
	att.MediaType, att.Version, att.LogEntries = BundleMediaType, currentBundleVersion, []LogEntry{}
	for _, s := range []struct {
		t string
		p any
	}{{PredicateSLSA, prov}, {PredicateSPDX, sbom}} {
		env, err := newStatement(subj, s.t, s.p)
		if err != nil {
			return contents{}, nil, err
		}
		att.Attestations = append(att.Attestations, *env)
	}
	if err := signAll(&att, opts.Signers); err != nil {
		return contents{}, nil, err
	}
	aj, err := canonical.Marshal(att)
	if err != nil {
		return contents{}, nil, err
	}
	blobs := append([]blobSource(nil), img.layers...)
	cfgDigest := digest.FromBytes(img.configJSON)
	cfg, man := img.configJSON, img.manifestJSON
	blobs = append(blobs,
		blobSource{desc: ocispec.Descriptor{Digest: cfgDigest, Size: int64(len(cfg))}, open: func() (io.ReadCloser, error) { return io.NopCloser(bytesReader(cfg)), nil }},
		blobSource{desc: ocispec.Descriptor{Digest: md, Size: int64(len(man))}, open: func() (io.ReadCloser, error) { return io.NopCloser(bytesReader(man)), nil }},
	)
	res := &PackResult{ManifestDigest: md, SourceKind: img.kind, Layers: len(img.layers), Files: len(img.files), Packages: len(pkgs)}
	return contents{manifestTOML: manifestTOML, indexJSON: idx, blobs: blobs, attestJSON: aj}, res, nil
}

// manifestFor renders a canonical OCI manifest and config for layers.
func manifestFor(cfg ocispec.Image, layers []ocispec.Descriptor) (manifestJSON, configJSON []byte, err error) {
	configJSON, err = canonical.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(configJSON), Size: int64(len(configJSON))},
		Layers:    layers,
	}
	m.SchemaVersion = 2
	manifestJSON, err = canonical.Marshal(m)
	return manifestJSON, configJSON, err
}

// ---- rootfs directory ----

type countWriter struct {
	w io.Writer
	n int64
}

func (cw *countWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}

// fileSums computes the SBOM's SHA-256 and SHA-1 of one file. For a large
// file each runs on its own goroutine, so the three digests every byte of a
// rootfs needs (two for the SBOM, one for the layer) use all cores.
type fileSums struct {
	h256, h1 hash.Hash
	w        io.Writer
	async    []*asyncWriter
}

func newFileSums(size int64) *fileSums {
	s := &fileSums{h256: sha256.New(), h1: sha1.New()}
	if size < asyncMin {
		s.w = io.MultiWriter(s.h256, s.h1)
		return s
	}
	s.async = []*asyncWriter{newAsyncWriter(s.h256), newAsyncWriter(s.h1)}
	s.w = io.MultiWriter(s.async[0], s.async[1])
	return s
}

func (s *fileSums) Write(p []byte) (int, error) { return s.w.Write(p) }

// close waits for the hashes; it must be called on every path.
func (s *fileSums) close() {
	for _, a := range s.async {
		a.Close() // hash.Hash.Write never fails
	}
}

func (s *fileSums) record(p string, n int64) fileRecord {
	s.close()
	return fileRecord{Path: p, SHA256: hex.EncodeToString(s.h256.Sum(nil)), SHA1: hex.EncodeToString(s.h1.Sum(nil)), Size: n}
}

func packRootfs(ctx context.Context, dir string, opts *PackOptions) (*image, error) {
	img := &image{kind: "rootfs", pkgDBs: map[string][]byte{}}
	var total int64
	var newest time.Time
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			total += fi.Size()
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	img.created = newest
	created := opts.Created
	if created.IsZero() {
		created = newest
	}
	created = created.UTC().Truncate(time.Second)

	// The layer is the tar of the tree. It is produced twice rather than
	// kept in a temporary file: once here, only to be measured (its digest
	// names it in the manifest, which comes first in the bundle), and again
	// while the bundle is written, where writeTar re-hashes it and refuses a
	// tree that changed in between. Reading the tree twice (usually from the
	// page cache) is cheaper than writing, syncing and re-reading a copy of
	// it, which made packing write every byte twice.
	opts.stage("layer", total)
	layerHash := sha256.New()
	hashAsync := newAsyncWriter(layerHash) // on another core than the SBOM's hashes
	cw := &countWriter{w: hashAsync}
	err = rootfsTar(ctx, dir, cw, created, img, opts)
	if cerr := hashAsync.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return img, err
	}
	layerDigest := digest.NewDigest(digest.SHA256, layerHash)
	size := cw.n
	img.layers = []blobSource{{
		desc: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: layerDigest, Size: size},
		open: func() (io.ReadCloser, error) {
			pr, pw := io.Pipe()
			go func() {
				// No img: the SBOM's inputs were recorded by the first pass
				// (and no progress is reported from this goroutine).
				pw.CloseWithError(rootfsTar(ctx, dir, pw, created, nil, nil))
			}()
			return pr, nil
		},
	}}
	env := opts.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: opts.OS, Architecture: opts.Architecture},
		Config:   ocispec.ImageConfig{Entrypoint: opts.Entrypoint, Cmd: opts.Cmd, Env: env, WorkingDir: opts.WorkingDir, User: opts.User},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDigest}},
		History:  []ocispec.History{{Created: &created, CreatedBy: "vordr ctp pack (rootfs directory)"}},
	}
	img.manifestJSON, img.configJSON, err = manifestFor(cfg, []ocispec.Descriptor{img.layers[0].desc})
	if err != nil {
		return img, err
	}
	img.deps = []resourceDescriptor{{Name: "rootfs", URI: "file:" + filepath.Base(dir), MediaType: ocispec.MediaTypeImageLayer, Digest: map[string]string{"sha256": layerDigest.Encoded()}}}
	return img, nil
}

// rootfsTar writes the layer tar of the tree at dir to w. With img, it also
// records what the SBOM needs (files with their digests, package databases)
// and reports progress; the output is the same either way.
func rootfsTar(ctx context.Context, dir string, w io.Writer, created time.Time, img *image, opts *PackOptions) error {
	tw := tar.NewWriter(w)
	inodes := map[[2]uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return addRootfsEntry(tw, img, inodes, p, rel, fi, created, opts)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func addRootfsEntry(tw *tar.Writer, img *image, inodes map[[2]uint64]string, p, rel string, fi fs.FileInfo, created time.Time, opts *PackOptions) error {
	st, _ := fi.Sys().(*syscall.Stat_t)
	var link string
	if fi.Mode()&fs.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	if fi.Mode()&fs.ModeSocket != 0 {
		return nil // sockets are runtime state, not image content
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = rel
	if fi.IsDir() {
		hdr.Name += "/"
	}
	// Only the content and the ownership/permissions that matter at run time
	// are recorded; names, atime/ctime and xattrs would leak the build host.
	hdr.Uname, hdr.Gname = "", ""
	hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = created, time.Time{}, time.Time{}
	hdr.PAXRecords = nil
	hdr.Format = tar.FormatUnknown
	if st != nil {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		if fi.Mode().IsRegular() && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := inodes[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(hdr)
			}
			inodes[key] = rel
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if img == nil {
		n, err := copyBuffered(tw, f)
		if err == nil && n != fi.Size() {
			err = fmt.Errorf("ctp: %s changed size while packing", p)
		}
		return err
	}
	sums := newFileSums(fi.Size())
	defer sums.close()
	w := io.MultiWriter(tw, sums, progressWriter{opts})
	abs := "/" + rel
	var db *strings.Builder
	if (abs == dpkgStatusPath || abs == apkDBPath) && fi.Size() <= maxPkgDB {
		db = &strings.Builder{}
		w = io.MultiWriter(w, db)
	}
	n, err := copyBuffered(w, f)
	if err != nil {
		return err
	}
	if n != fi.Size() {
		return fmt.Errorf("ctp: %s changed size while packing", p)
	}
	if db != nil {
		img.pkgDBs[abs] = []byte(db.String())
	}
	img.files = append(img.files, sums.record(abs, n))
	return nil
}

// ---- OCI image layout ----

const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	mediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
)

// readLayoutBlob reads a small blob of an input layout and checks its digest.
func readLayoutBlob(fsys fs.FS, d digest.Digest) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("ctp: input layout: bad digest %q: %w", d, err)
	}
	f, err := fsys.Open(path.Join("blobs", string(d.Algorithm()), d.Encoded()))
	if err != nil {
		return nil, fmt.Errorf("ctp: input layout: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, DefaultLimits.MaxImageJSON+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > DefaultLimits.MaxImageJSON {
		return nil, fmt.Errorf("ctp: input layout: blob %s too large for a manifest or config", d)
	}
	if d.Algorithm().FromBytes(data) != d {
		return nil, fmt.Errorf("ctp: input layout: blob %s does not match its digest", d)
	}
	return data, nil
}

func selectManifest(fsys fs.FS, descs []ocispec.Descriptor, opts *PackOptions, depth int) (ocispec.Descriptor, error) {
	if depth > 4 {
		return ocispec.Descriptor{}, errors.New("ctp: input layout: indexes nested too deeply")
	}
	var cands []ocispec.Descriptor
	for _, d := range descs {
		switch d.MediaType {
		case ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList:
			if opts.ImageRef != "" && depth == 0 && !refMatches(d, opts.ImageRef) && len(descs) > 1 {
				continue
			}
			data, err := readLayoutBlob(fsys, d.Digest)
			if err != nil {
				return ocispec.Descriptor{}, err
			}
			var idx ocispec.Index
			if err := json.Unmarshal(data, &idx); err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("ctp: input layout: index %s: %w", d.Digest, err)
			}
			sub, err := selectManifest(fsys, idx.Manifests, opts, depth+1)
			if err != nil {
				continue
			}
			cands = append(cands, sub)
		case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
			if d.Platform != nil && (d.Platform.OS != opts.OS || d.Platform.Architecture != opts.Architecture) {
				continue
			}
			if opts.ImageRef != "" && depth == 0 && len(descs) > 1 && !refMatches(d, opts.ImageRef) {
				continue
			}
			// Only blobs that are present can be packed (ctr export leaves
			// out other platforms).
			if d.Digest.Validate() != nil {
				continue
			}
			if _, err := fs.Stat(fsys, path.Join("blobs", string(d.Digest.Algorithm()), d.Digest.Encoded())); err != nil {
				continue
			}
			cands = append(cands, d)
		}
	}
	switch len(cands) {
	case 1:
		return cands[0], nil
	case 0:
		return ocispec.Descriptor{}, fmt.Errorf("ctp: input layout has no image manifest for %s/%s%s", opts.OS, opts.Architecture, refHint(opts.ImageRef))
	}
	return ocispec.Descriptor{}, fmt.Errorf("ctp: input layout has %d candidate images; choose one with an image ref", len(cands))
}

func refHint(ref string) string {
	if ref == "" {
		return ""
	}
	return " named " + ref
}

func refMatches(d ocispec.Descriptor, ref string) bool {
	return d.Annotations[ocispec.AnnotationRefName] == ref || d.Annotations["io.containerd.image.name"] == ref
}

func packLayout(ctx context.Context, fsys fs.FS, opts *PackOptions) (*image, error) {
	img := &image{pkgDBs: map[string][]byte{}}
	idxData, err := fs.ReadFile(fsys, "index.json")
	if err != nil {
		return nil, fmt.Errorf("ctp: input layout: %w", err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(idxData, &idx); err != nil {
		return nil, fmt.Errorf("ctp: input layout: index.json: %w", err)
	}
	md, err := selectManifest(fsys, idx.Manifests, opts, 0)
	if err != nil {
		return nil, err
	}
	mdata, err := readLayoutBlob(fsys, md.Digest)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mdata, &m); err != nil {
		return nil, fmt.Errorf("ctp: input layout: manifest %s: %w", md.Digest, err)
	}
	cdata, err := readLayoutBlob(fsys, m.Config.Digest)
	if err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cdata, &cfg); err != nil {
		return nil, fmt.Errorf("ctp: input layout: config %s: %w", m.Config.Digest, err)
	}
	if cfg.Created != nil {
		img.created = *cfg.Created
	}
	if opts.platformExplicit && (cfg.OS != opts.OS || cfg.Architecture != opts.Architecture) {
		return nil, fmt.Errorf("ctp: input image is for %s/%s, not the requested %s/%s", cfg.OS, cfg.Architecture, opts.OS, opts.Architecture)
	}
	if cfg.OS != "" {
		opts.OS = cfg.OS
	}
	if cfg.Architecture != "" {
		opts.Architecture = cfg.Architecture
	}
	// Keep the manifest byte for byte when it already is a v1 bundle's
	// manifest: its digest is the image's identity elsewhere (registries,
	// containerd). Docker media types are translated, which changes it.
	keep := m.MediaType == ocispec.MediaTypeImageManifest && m.Config.MediaType == ocispec.MediaTypeImageConfig
	var layers []ocispec.Descriptor
	for _, l := range m.Layers {
		mt := l.MediaType
		switch mt {
		case mediaTypeDockerLayerGzip:
			mt, keep = ocispec.MediaTypeImageLayerGzip, false
		case mediaTypeDockerLayer:
			mt, keep = ocispec.MediaTypeImageLayer, false
		}
		if !layerMediaTypes[mt] {
			return nil, fmt.Errorf("ctp: input layout: layer %s has unsupported media type %q", l.Digest, l.MediaType)
		}
		if checkDigest(l.Digest) != nil {
			return nil, fmt.Errorf("ctp: input layout: layer %s: only sha256 digests are supported", l.Digest)
		}
		layers = append(layers, ocispec.Descriptor{MediaType: mt, Digest: l.Digest, Size: l.Size, Annotations: l.Annotations})
	}
	if keep {
		img.manifestJSON, img.configJSON = mdata, cdata
	} else {
		nm := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: layers, Annotations: m.Annotations,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: m.Config.Digest, Size: m.Config.Size}}
		nm.SchemaVersion = 2
		if img.manifestJSON, err = canonical.Marshal(nm); err != nil {
			return nil, err
		}
		img.configJSON = cdata
	}
	var total int64
	for _, l := range layers {
		l := l
		p := path.Join("blobs", "sha256", l.Digest.Encoded())
		fi, err := fs.Stat(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("ctp: input layout: layer %s: %w", l.Digest, err)
		}
		if fi.Size() != l.Size {
			return nil, fmt.Errorf("ctp: input layout: layer %s is %d bytes, manifest says %d", l.Digest, fi.Size(), l.Size)
		}
		total += l.Size
		img.layers = append(img.layers, blobSource{desc: l, open: func() (io.ReadCloser, error) { return fsys.Open(p) }})
	}
	opts.stage("sbom", total)
	if err := scanLayers(ctx, img, opts); err != nil {
		return nil, err
	}
	img.deps = []resourceDescriptor{{Name: "image", URI: refOr(opts.ImageRef, "oci-layout"), MediaType: md.MediaType, Digest: map[string]string{"sha256": md.Digest.Encoded()}}}
	return img, nil
}

func refOr(ref, def string) string {
	if ref != "" {
		return ref
	}
	return def
}

// scanLayers walks the layers in order, applying whiteouts, to list the final
// filesystem's files (with digests) and package databases for the SBOM.
func scanLayers(ctx context.Context, img *image, opts *PackOptions) error {
	files := map[string]fileRecord{}
	for _, l := range img.layers {
		rc, err := l.open()
		if err != nil {
			return err
		}
		err = scanLayer(ctx, rc, l.desc, files, img.pkgDBs, opts)
		rc.Close()
		if err != nil {
			return fmt.Errorf("ctp: scanning layer %s: %w", l.desc.Digest, err)
		}
	}
	for _, f := range files {
		img.files = append(img.files, f)
	}
	sort.Slice(img.files, func(i, j int) bool { return img.files[i].Path < img.files[j].Path })
	return nil
}

func scanLayer(ctx context.Context, r io.Reader, desc ocispec.Descriptor, files map[string]fileRecord, dbs map[string][]byte, opts *PackOptions) error {
	// The blob's digest is computed on another goroutine, beside the
	// decompression and the per-file digests.
	h := sha256.New()
	ha := newAsyncWriter(h)
	defer ha.Close()
	r = io.TeeReader(r, io.MultiWriter(ha, progressWriter{opts}))
	zr, err := decompressLayer(r, desc.MediaType)
	if err != nil {
		return err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		p := path.Clean("/" + hdr.Name)
		dir, base := path.Split(p)
		switch {
		case base == ".wh..wh..opq":
			removeUnder(files, path.Clean(dir))
			continue
		case strings.HasPrefix(base, ".wh."):
			target := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			delete(files, target)
			removeUnder(files, target)
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			delete(files, p)
			continue
		}
		sums := newFileSums(hdr.Size)
		var w io.Writer = sums
		var db *strings.Builder
		if (p == dpkgStatusPath || p == apkDBPath) && hdr.Size <= maxPkgDB {
			db = &strings.Builder{}
			w = io.MultiWriter(w, db)
		}
		n, err := copyBuffered(w, tr)
		if err != nil {
			sums.close()
			return err
		}
		if db != nil {
			dbs[p] = []byte(db.String())
		}
		files[p] = sums.record(p, n)
	}
	// Drain so the whole blob is hashed, then compare with its name: the
	// SBOM must describe exactly the bytes that go into the bundle.
	if _, err := copyBuffered(io.Discard, r); err != nil {
		return err
	}
	if err := ha.Close(); err != nil {
		return err
	}
	if digest.NewDigest(digest.SHA256, h) != desc.Digest {
		return fmt.Errorf("content does not match digest %s", desc.Digest)
	}
	return nil
}

func removeUnder(files map[string]fileRecord, dir string) {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for k := range files {
		if strings.HasPrefix(k, prefix) {
			delete(files, k)
		}
	}
}

// ---- OCI / docker-save archives ----

func packArchive(ctx context.Context, src string, opts *PackOptions) (*image, error) {
	dir, err := os.MkdirTemp(opts.TempDir, "ctp-archive-*")
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := extractArchive(ctx, src, dir); err != nil {
		cleanup()
		return nil, err
	}
	var img *image
	switch {
	case fileExists(filepath.Join(dir, "oci-layout")) && fileExists(filepath.Join(dir, "index.json")):
		img, err = packLayout(ctx, os.DirFS(dir), opts)
		if img != nil {
			img.kind = "oci-archive"
		}
	case fileExists(filepath.Join(dir, "manifest.json")):
		img, err = packDockerSave(ctx, dir, opts)
	default:
		err = fmt.Errorf("ctp: %s is neither a rootfs directory, an OCI layout, an OCI archive nor a docker-save archive", src)
	}
	if img == nil {
		cleanup()
		return nil, err
	}
	img.cleanup = append(img.cleanup, cleanup)
	return img, err
}

// extractArchive unpacks regular files and directories of an input archive,
// refusing paths that leave dir. Symlinks (docker save links repeated layers)
// are resolved inside the archive and copied.
func extractArchive(ctx context.Context, src, dir string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [4]byte
	n, _ := io.ReadFull(f, magic[:])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	var r io.Reader = f
	if kind := compression(magic[:n]); kind != "" {
		zr, err := decompressLayer(f, map[string]string{"gzip": ocispec.MediaTypeImageLayerGzip, "zstd": ocispec.MediaTypeImageLayerZstd}[kind])
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	links := map[string]string{}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("ctp: reading %s: %w", src, err)
		}
		name := path.Clean(hdr.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("ctp: %s: entry %q leaves the archive", src, hdr.Name)
		}
		if name == "." {
			continue
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink, tar.TypeLink:
			t := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink {
				t = path.Join(path.Dir(name), t)
			}
			t = path.Clean(t)
			if path.IsAbs(t) || t == ".." || strings.HasPrefix(t, "../") {
				return fmt.Errorf("ctp: %s: link %q points outside the archive", src, hdr.Name)
			}
			links[name] = t
		default:
			// Anything else has no place in an image archive's metadata.
		}
	}
	for name, t := range links {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(t)))
		if err != nil {
			return fmt.Errorf("ctp: %s: link %q: %w", src, name, err)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type dockerManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

func packDockerSave(ctx context.Context, dir string, opts *PackOptions) (*image, error) {
	img := &image{kind: "docker-archive", pkgDBs: map[string][]byte{}}
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var entries []dockerManifestEntry
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("ctp: docker archive manifest.json: %w", err)
	}
	var e *dockerManifestEntry
	for i := range entries {
		if opts.ImageRef == "" && len(entries) == 1 {
			e = &entries[i]
		}
		for _, t := range entries[i].RepoTags {
			if t == opts.ImageRef {
				e = &entries[i]
			}
		}
	}
	if e == nil {
		return nil, fmt.Errorf("ctp: docker archive holds %d images; none matches %q", len(entries), opts.ImageRef)
	}
	local := func(p string) (string, error) {
		c := path.Clean(p)
		if path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
			return "", fmt.Errorf("ctp: docker archive path %q leaves the archive", p)
		}
		return filepath.Join(dir, filepath.FromSlash(c)), nil
	}
	cp, err := local(e.Config)
	if err != nil {
		return nil, err
	}
	if img.configJSON, err = os.ReadFile(cp); err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(img.configJSON, &cfg); err != nil {
		return nil, fmt.Errorf("ctp: docker archive config: %w", err)
	}
	if cfg.Created != nil {
		img.created = *cfg.Created
	}
	var descs []ocispec.Descriptor
	var total int64
	for _, lp := range e.Layers {
		p, err := local(lp)
		if err != nil {
			return nil, err
		}
		d, size, gz, err := hashFile(p)
		if err != nil {
			return nil, err
		}
		mt := ocispec.MediaTypeImageLayer
		if gz {
			mt = ocispec.MediaTypeImageLayerGzip
		}
		desc := ocispec.Descriptor{MediaType: mt, Digest: d, Size: size}
		descs = append(descs, desc)
		total += size
		img.layers = append(img.layers, blobSource{desc: desc, open: func() (io.ReadCloser, error) { return os.Open(p) }})
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: descs,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(img.configJSON), Size: int64(len(img.configJSON))}}
	m.SchemaVersion = 2
	if img.manifestJSON, err = canonical.Marshal(m); err != nil {
		return nil, err
	}
	opts.stage("sbom", total)
	if err := scanLayers(ctx, img, opts); err != nil {
		return nil, err
	}
	img.deps = []resourceDescriptor{{Name: "image", URI: refOr(opts.ImageRef, "docker-archive"), MediaType: mediaTypeDockerConfig, Digest: map[string]string{"sha256": digest.FromBytes(img.configJSON).Encoded()}}}
	return img, nil
}

func hashFile(p string) (digest.Digest, int64, bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, false, err
	}
	defer f.Close()
	var magic [2]byte
	io.ReadFull(f, magic[:])
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, false, err
	}
	h := sha256.New()
	n, err := copyBuffered(h, f)
	return digest.NewDigest(digest.SHA256, h), n, magic == [2]byte{0x1f, 0x8b}, err
}

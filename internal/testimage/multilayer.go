//go:build linux

package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LayerEntry is one header of a hand-written layer tar (LayerTar). Unlike
// File, nothing is added for it: parent directories the tar does not list
// stay unlisted (the applier creates them "implicitly"), and whiteouts are
// written as the plain entries they are (".wh.NAME", ".wh..wh..opq").
type LayerEntry struct {
	// Name as written in the tar, relative ("opt/app/bin/tool"); a
	// directory gets its trailing "/" added.
	Name string
	// Type is a tar typeflag; 0 means tar.TypeReg.
	Type byte
	// Mode holds the permission and setuid/setgid/sticky bits (tar
	// encoding, e.g. 0o4755); 0 means 0644 for a file, 0755 for a
	// directory, 0777 for a symlink.
	Mode     int64
	UID, GID int
	// Content of a regular file.
	Content []byte
	// Link is a symlink's target or a hard link's target path (tar form,
	// relative to the root). containerd applies a hard link header's owner
	// and mode to the shared inode, so give the target's.
	Link string
	// PAXRecords are written as they are, e.g.
	// "SCHILY.xattr.security.capability" for file capabilities.
	PAXRecords map[string]string
}

// LayerTar writes entries, in the order given, as an uncompressed layer tar
// with fixed times: the raw material for WithLayers and Layered.
func LayerTar(entries ...LayerEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Typeflag: e.Type,
			Name:     e.Name,
			Linkname: e.Link,
			Mode:     e.Mode,
			Uid:      e.UID,
			Gid:      e.GID,
			ModTime:  epoch,
		}
		if len(e.PAXRecords) > 0 {
			hdr.PAXRecords = maps.Clone(e.PAXRecords)
			hdr.Format = tar.FormatPAX
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			hdr.Size = int64(len(e.Content))
			if hdr.Mode == 0 {
				hdr.Mode = 0o644
			}
		case tar.TypeDir:
			if hdr.Name != "" && hdr.Name[len(hdr.Name)-1] != '/' {
				hdr.Name += "/"
			}
			if hdr.Mode == 0 {
				hdr.Mode = 0o755
			}
		case tar.TypeSymlink:
			if hdr.Mode == 0 {
				hdr.Mode = 0o777
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write layer entry %q: %w", e.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Content); err != nil {
				return nil, fmt.Errorf("write layer entry %q: %w", e.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finish layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// Layered builds the Busybox image (opts as for Busybox, opts.Files going
// into its single layer) with layers stacked on top of it, bottom first; see
// WithLayers.
func Layered(opts Options, layers ...[]byte) (*Image, error) {
	base, err := Busybox(opts)
	if err != nil {
		return nil, err
	}
	return base.WithLayers(layers...)
}

// WithLayers returns a new image: img's layers with layers appended (bottom
// first), and img's name, platform and configuration. Each layer is a tar,
// uncompressed (it is then gzipped deterministically) or already gzipped
// (kept byte for byte); its diff id is the digest of the uncompressed tar.
// The tars are not checked or normalized: hand-written ones (LayerTar) may
// use whiteouts, hard links and unlisted parent directories as they like.
func (img *Image) WithLayers(layers ...[]byte) (*Image, error) {
	var cfg ocispec.Image
	if err := json.Unmarshal(img.blobs[img.Config.Digest], &cfg); err != nil {
		return nil, fmt.Errorf("decode image config: %w", err)
	}
	out := &Image{
		Name:    img.Name,
		Layers:  append([]ocispec.Descriptor(nil), img.Layers...),
		DiffIDs: append([]digest.Digest(nil), img.DiffIDs...),
		blobs:   map[digest.Digest][]byte{},
	}
	for _, l := range img.Layers {
		out.blobs[l.Digest] = img.blobs[l.Digest]
	}
	for i, l := range layers {
		raw, blob := l, l
		if len(l) >= 2 && l[0] == 0x1f && l[1] == 0x8b {
			zr, err := gzip.NewReader(bytes.NewReader(l))
			if err != nil {
				return nil, fmt.Errorf("layer %d: %w", i, err)
			}
			if raw, err = io.ReadAll(zr); err != nil {
				return nil, fmt.Errorf("layer %d: decompress: %w", i, err)
			}
		} else {
			var err error
			if blob, err = gzipDeterministic(l); err != nil {
				return nil, fmt.Errorf("layer %d: %w", i, err)
			}
		}
		out.DiffIDs = append(out.DiffIDs, digest.FromBytes(raw))
		out.Layers = append(out.Layers, out.addBlob(ocispec.MediaTypeImageLayerGzip, blob))
	}

	cfg.RootFS = ocispec.RootFS{Type: "layers", DiffIDs: out.DiffIDs}
	configJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode image config: %w", err)
	}
	out.Config = out.addBlob(ocispec.MediaTypeImageConfig, configJSON)

	manifestJSON, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    out.Config,
		Layers:    out.Layers,
	})
	if err != nil {
		return nil, fmt.Errorf("encode image manifest: %w", err)
	}
	out.Manifest = out.addBlob(ocispec.MediaTypeImageManifest, manifestJSON)
	if img.Manifest.Platform != nil {
		p := *img.Manifest.Platform
		out.Manifest.Platform = &p
	}
	out.Manifest.Annotations = maps.Clone(img.Manifest.Annotations)

	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{out.Manifest},
	}
	if out.index, err = json.Marshal(index); err != nil {
		return nil, fmt.Errorf("encode image index: %w", err)
	}
	return out, nil
}

package ctp

import (
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// decompressLayer returns the uncompressed tar stream of a layer.
func decompressLayer(r io.Reader, mediaType string) (io.ReadCloser, error) {
	switch mediaType {
	case ocispec.MediaTypeImageLayer:
		return io.NopCloser(r), nil
	case ocispec.MediaTypeImageLayerGzip:
		return gzip.NewReader(r)
	case ocispec.MediaTypeImageLayerZstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("unsupported layer media type %q", mediaType)
}

package ctp

import (
	"bytes"
	"io"

	"github.com/opencontainers/go-digest"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }

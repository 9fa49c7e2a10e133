package layertree

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"path"
	"testing"
	"time"
)

// ent is one tar entry of a test layer.
type ent struct {
	hdr  tar.Header
	body []byte
}

type opt func(*tar.Header)

func owner(uid, gid int) opt { return func(h *tar.Header) { h.Uid, h.Gid = uid, gid } }

func withCaps(v []byte) opt {
	return func(h *tar.Header) {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords[paxCaps] = string(v)
	}
}

func mk(h tar.Header, body []byte, opts []opt) ent {
	for _, o := range opts {
		o(&h)
	}
	return ent{hdr: h, body: body}
}

func dir(name string, mode int64, opts ...opt) ent {
	return mk(tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}, nil, opts)
}

func file(name string, mode int64, body string, opts ...opt) ent {
	return mk(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, []byte(body), opts)
}

func blob(name string, mode int64, body []byte, opts ...opt) ent {
	return mk(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, body, opts)
}

func symlink(name, target string, opts ...opt) ent {
	return mk(tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}, nil, opts)
}

func hardlink(name, target string, mode int64, opts ...opt) ent {
	return mk(tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: mode}, nil, opts)
}

// whiteout deletes name ("a/b" becomes "a/.wh.b").
func whiteout(name string, opts ...opt) ent {
	d, b := path.Split(name)
	return mk(tar.Header{Typeflag: tar.TypeReg, Name: d + whiteoutPrefix + b, Mode: 0o644}, nil, opts)
}

// opaque makes dir opaque ("" for the layer root).
func opaque(dir string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: path.Join(dir, opaqueMarker), Mode: 0o644}}
}

func device(typ byte, name string, mode, major, minor int64, opts ...opt) ent {
	return mk(tar.Header{Typeflag: typ, Name: name, Mode: mode, Devmajor: major, Devminor: minor}, nil, opts)
}

func globalHeader(name string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: name, PAXRecords: map[string]string{"comment": "vordr"}}}
}

func buildTar(tb testing.TB, ents ...ent) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if len(h.PAXRecords) > 0 {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			tb.Fatalf("writing tar header %q: %v", h.Name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			tb.Fatalf("writing tar body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// capV2 and capV3 build security.capability values granting
// CAP_NET_BIND_SERVICE (effective).
func capV2() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b, 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<10)
	return b
}

func capV3(rootID uint32) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b, 0x03000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<10)
	binary.LittleEndian.PutUint32(b[20:], rootID)
	return b
}

func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b) // never fails
	return b
}

// Package layertree proves that a directory on disk holds exactly the content
// of one OCI image layer.
//
// vordr's verification gate uses it to check that the overlay lower
// directories of a container rootfs are the verified layers' content, not a
// forged snapshot that merely carries the right name: FromTar (or FromBaseTar
// for the bottom layer) replays a layer tar the way containerd's applier
// writes it and records the result as a Manifest; Compare walks a snapshot
// directory and reports the first difference.
//
// A Manifest also keeps every file's sha256, so the same data lists an
// image's executables for exec appraisal (Manifest.Executables).
//
// # Which containerd code path is modelled
//
// containerd (v2.4) writes a layer into a snapshot directory with
// archive.Apply, but not always with the same options:
//
//   - The bottom layer of a chain is applied through a bind mount of an empty
//     snapshot, WITHOUT overlay whiteout conversion: ".wh.NAME" deletes NAME
//     if this same layer created it, ".wh..wh..opq" deletes whatever under
//     that directory was not itself unpacked from the tar (implicitly created
//     parents and everything beneath them), and no whiteout device or opaque
//     xattr is ever written. Use FromBaseTar.
//   - Every other layer is applied with OverlayConvertWhiteout: ".wh.NAME"
//     becomes a 0:0 character device, ".wh..wh..opq" becomes
//     trusted.overlay.opaque="y" on the directory. Use FromTar.
//
// Parent directories that the tar does not list are created by the applier
// ("implicit" directories, Entry.Implicit). With containerd's default
// sequential unpack they copy mode, owner and non-trusted xattrs from the
// nearest lower layer that has that directory; with parallel unpack, and for
// the bottom layer, they are 0755 root:root. FromTar records the latter;
// Manifest.Inherit turns it into the former given the lower layers. A gate
// that does not know which unpack mode produced a snapshot can accept either
// exact form.
//
// # Typical use
//
//	m, err := layertree.FromTar(uncompressedLayer) // once per layer; cache the JSON
//	…
//	m, err = m.Inherit(lowerManifests...)          // sequential unpack only
//	err = layertree.Compare(snapshotDir, m)        // *MismatchError if forged
//
// Compare needs to run as root: the opaque marker lives in the trusted.*
// xattr namespace, which is invisible to unprivileged processes.
package layertree

package sigstore

import (
	"encoding/base64"
	"errors"
	"fmt"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vordr-project/vordr/ctp/dsse"
)

// Export writes a DSSE envelope of a .ctp bundle as sigstore bundles, one
// per signature (a sigstore bundle's envelope carries exactly one): the
// signature's key id becomes the public-key hint, and the signature's own
// keyid is left empty, as cosign leaves it. The .ctp's log proofs are
// not carried over — they are C2SP checkpoints of a vordr log, which a
// sigstore bundle cannot express as Rekor entries — so a verifier needs the
// signer's key and cosign's --insecure-ignore-tlog; the log evidence stays
// in the .ctp, checked by vordr ctp verify.
func Export(env dsse.Envelope) ([][]byte, error) {
	if len(env.Signatures) == 0 {
		return nil, errors.New("the envelope has no signature: sign the bundle first (vordr ctp sign)")
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("envelope payload: %w", err)
	}
	var out [][]byte
	for i, s := range env.Signatures {
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil {
			return nil, fmt.Errorf("signature %d: %w", i, err)
		}
		b := &protobundle.Bundle{
			MediaType: MediaTypeBundleV03,
			VerificationMaterial: &protobundle.VerificationMaterial{
				Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: s.KeyID}},
			},
			Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
				Payload: payload, PayloadType: env.PayloadType,
				// An empty keyid, as cosign writes: DSSE libraries that
				// compute their own key ids (go-securesystemslib: hex of
				// a different encoding) skip a signature whose keyid is
				// not theirs. The hint names the key.
				Signatures: []*protodsse.Signature{{Sig: sig}},
			}},
		}
		data, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b)
		if err != nil {
			return nil, err
		}
		out = append(out, data)
	}
	return out, nil
}

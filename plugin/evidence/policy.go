package evidence

import (
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/vordr-project/vordr/ctp/canonical"
	"github.com/vordr-project/vordr/ctp/policy"
)

// PolicyDigest is the sha256 digest of the canonical JSON of a loaded policy,
// with signers identified by key id only: two policy files that trust the same
// keys under the same rules have the same digest wherever their key files
// live, and changing a key file changes the digest.
func PolicyDigest(p *policy.Policy) (digest.Digest, error) {
	if p == nil {
		return "", fmt.Errorf("policy digest: no policy")
	}
	c := *p
	c.Signers = make([]policy.Signer, len(p.Signers))
	for i, s := range p.Signers {
		s.Key, s.PublicKey, s.Resolved = "", "", nil
		s.PQKey, s.PQPublicKey, s.PQResolved = "", "", nil
		c.Signers[i] = s
	}
	c.Logs = make([]policy.Log, len(p.Logs))
	for i, l := range p.Logs {
		l.Resolved = nil
		c.Logs[i] = l
	}
	data, err := canonical.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("policy digest: %w", err)
	}
	return digest.FromBytes(data), nil
}

// Package alerts puts vordr's alerts and guard reports on containerd's event
// bus and reads them back.
//
// The payload is a containerd.types.Descriptor whose media type names the
// vordr event and whose annotations carry its fields: every containerd client,
// `ctr events` included, can decode that type, so alerts are readable with
// stock tools; vordr's own JSON rides along in AnnotationJSON.
package alerts

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/containerd/containerd/api/types"
	"github.com/containerd/typeurl/v2"
)

// Topics on containerd's event bus.
const (
	// TopicAlert carries every alert raised for a container.
	TopicAlert = "/vordr/alert"
	// TopicGuard carries guard reports: attached (with the mechanisms in
	// force), degraded, detached (with counters).
	TopicGuard = "/vordr/guard"
)

// Media types of the payloads.
const (
	MediaTypeAlert = "application/vnd.vordr.alert.v1+json"
	MediaTypeGuard = "application/vnd.vordr.guard.v1+json"
)

// AnnotationJSON holds the full event as JSON.
const AnnotationJSON = "vordr.io/json"

// Encode turns v (an alert or guard report, JSON-encodable) into the bus
// payload. fields become annotations for readers that do not parse JSON.
func Encode(mediaType string, v any, fields map[string]string) (*types.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", mediaType, err)
	}
	ann := make(map[string]string, len(fields)+1)
	for k, val := range fields {
		ann[k] = val
	}
	ann[AnnotationJSON] = string(data)
	return &types.Descriptor{MediaType: mediaType, Annotations: ann}, nil
}

// Decode reads a bus payload back. ok is false when the event is not vordr's.
func Decode(ev typeurl.Any) (mediaType string, data []byte, ok bool) {
	if ev == nil {
		return "", nil, false
	}
	v, err := typeurl.UnmarshalAny(ev)
	if err != nil {
		return "", nil, false
	}
	d, isDesc := v.(*types.Descriptor)
	if !isDesc || !strings.HasPrefix(d.MediaType, "application/vnd.vordr.") {
		return "", nil, false
	}
	return d.MediaType, []byte(d.Annotations[AnnotationJSON]), true
}

// Summary is a one-line rendering of a payload's annotations, sorted, for
// terminals.
func Summary(d *types.Descriptor) string {
	keys := make([]string, 0, len(d.Annotations))
	for k := range d.Annotations {
		if k != AnnotationJSON {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+d.Annotations[k])
	}
	return strings.Join(parts, " ")
}

package alerts

import (
	"encoding/json"
	"testing"

	"github.com/containerd/typeurl/v2"
)

func TestRoundTrip(t *testing.T) {
	in := map[string]any{"rule": "exec-burst", "severity": "high"}
	d, err := Encode(MediaTypeAlert, in, map[string]string{"rule": "exec-burst"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := typeurl.MarshalAny(d)
	if err != nil {
		t.Fatal(err)
	}
	mt, data, ok := Decode(a)
	if !ok || mt != MediaTypeAlert {
		t.Fatalf("decode: %v %q", ok, mt)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil || out["rule"] != "exec-burst" || out["severity"] != "high" {
		t.Fatalf("round trip: %v %v", out, err)
	}
	if s := Summary(d); s != "rule=exec-burst" {
		t.Errorf("summary %q", s)
	}
}

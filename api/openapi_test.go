package api

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

type openAPIDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

// TestOpenAPIRoutes: the document lists exactly the routes the server
// registers, each with the scope it enforces.
func TestOpenAPIRoutes(t *testing.T) {
	s, _ := testServer(t, Limits{})
	var doc openAPIDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for path, item := range doc.Paths {
		for method, op := range item {
			if method == "parameters" {
				continue
			}
			var o struct {
				Scope *string `json:"x-vordr-scope"`
			}
			if err := json.Unmarshal(op, &o); err != nil || o.Scope == nil {
				t.Errorf("%s %s: no x-vordr-scope (%v)", method, path, err)
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = *o.Scope
		}
	}
	registered := map[string]string{}
	for _, r := range s.routes {
		registered[r.pattern] = r.scope
	}
	for p, scope := range registered {
		d, ok := documented[p]
		switch {
		case !ok:
			t.Errorf("route %s is not in api/openapi.json", p)
		case d != scope:
			t.Errorf("route %s needs scope %q, the document says %q", p, scope, d)
		}
	}
	for p := range documented {
		if _, ok := registered[p]; !ok {
			t.Errorf("api/openapi.json documents %s, which the server does not serve", p)
		}
	}
	if rec, _ := do(t, s.Handler(), "GET", "/openapi.json", "", ""); rec.Code != 200 || !json.Valid(rec.Body.Bytes()) {
		t.Errorf("/openapi.json: %d", rec.Code)
	}
}

// jsonFields lists the JSON names of a struct's fields.
func jsonFields(v any) []string {
	var out []string
	rt := reflect.TypeOf(v)
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPISchemas: the document's schemas have the Go types' fields,
// and its error codes are the server's.
func TestOpenAPISchemas(t *testing.T) {
	var doc openAPIDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{
		"RunRequest": RunRequest{}, "ExecRequest": ExecRequest{}, "ExecResult": ExecResult{},
		"Container": Container{}, "Verification": Verification{}, "Image": Image{}, "Choices": Choices{},
		"VerifyRequest": VerifyRequest{}, "VerifyResult": VerifyResult{}, "BundleVerifyResult": BundleVerifyResult{}, "PullRequest": PullRequest{}, "Explanation": Explanation{},
	} {
		var props []string
		for p := range doc.Components.Schemas[name].Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		if want := jsonFields(v); !slices.Equal(props, want) {
			t.Errorf("schema %s has %v, the Go type %v", name, props, want)
		}
	}
	var errSchema struct {
		Properties struct {
			Error struct {
				Properties struct {
					Code struct {
						Enum []string `json:"enum"`
					} `json:"code"`
				} `json:"properties"`
			} `json:"error"`
		} `json:"properties"`
	}
	var raw struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPI, &raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw.Components.Schemas["Error"], &errSchema); err != nil {
		t.Fatal(err)
	}
	codes := []string{CodeUnauthenticated, CodeForbidden, CodeRateLimited, CodeBodyTooLarge, CodeMalformed, CodeInvalidArgument,
		CodeNotFound, CodeAlreadyExists, CodeRefused, CodeConflict, CodeUnavailable, CodeTimeout, CodeInternal, "not_implemented", CodeMethodNotAllowed}
	got := errSchema.Properties.Error.Properties.Code.Enum
	sort.Strings(codes)
	sort.Strings(got)
	if !slices.Equal(got, codes) {
		t.Errorf("error codes in the document %v, the server's %v", got, codes)
	}
}

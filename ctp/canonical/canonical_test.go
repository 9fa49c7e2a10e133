package canonical

import (
	"errors"
	"testing"
)

func TestCanonicalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"b":1,"a":[true,false,null]}`, `{"a":[true,false,null],"b":1}`},
		{` { "x" : "a\u0041\n<>&\u2028" } `, "{\"x\":\"aA\\n<>&\u2028\"}"},
		{`[1.0, 1e21, 1e-7, -0, 123456789012]`, `[1,1e+21,1e-7,0,123456789012]`},
		{`{"\u00e9":1,"z":2,"\ud83d\ude00":3,"\uff01":4}`, "{\"z\":2,\"\u00e9\":1,\"\U0001F600\":3,\"\uff01\":4}"},
		{`"\u0001"`, `"\u0001"`},
	} {
		got, err := Canonicalize([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if string(got) != tc.want {
			t.Errorf("Canonicalize(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestUnmarshalStrict(t *testing.T) {
	type doc struct {
		A int    `json:"a"`
		B string `json:"b"`
	}
	for _, tc := range []struct {
		in        string
		canonical bool
		max       int
		want      error
	}{
		{`{"a":1,"b":"x"}`, true, 0, nil},
		{`{"a":1,"a":2}`, false, 0, ErrDuplicateKey},
		{`{"b":"x","a":1}`, true, 0, ErrNotCanonical},
		{`{"a":1, "b":"x"}`, true, 0, ErrNotCanonical},
		{`{"a":1,"b":"x","c":0}`, false, 0, ErrSyntax},
		{`{"a":1,"b":"x"} {}`, false, 0, ErrSyntax},
		{"{\"a\":1,\"b\":\"\xff\"}", false, 0, ErrSyntax},
		{`{"a":1,"b":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`, false, 32, ErrTooLarge},
	} {
		var d doc
		err := Unmarshal([]byte(tc.in), &d, Options{RequireCanonical: tc.canonical, MaxSize: tc.max})
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("Unmarshal(%q) = %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestDepthLimit(t *testing.T) {
	deep := make([]byte, 0, 2*(MaxDepth+2))
	for i := 0; i < MaxDepth+2; i++ {
		deep = append(deep, '[')
	}
	for i := 0; i < MaxDepth+2; i++ {
		deep = append(deep, ']')
	}
	if _, err := Canonicalize(deep); !errors.Is(err, ErrSyntax) {
		t.Fatalf("deep nesting: got %v, want ErrSyntax", err)
	}
}

func TestMarshalStruct(t *testing.T) {
	v := struct {
		Z string            `json:"z"`
		A map[string]string `json:"a"`
	}{"<&>", map[string]string{"y": "1", "x": "2"}}
	got, err := Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":{"x":"2","y":"1"},"z":"<&>"}`; string(got) != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

// Package canonical encodes JSON in the canonical form of RFC 8785 (JCS) and
// decodes JSON strictly: no duplicate keys, no unknown fields, bounded size
// and depth, and optionally byte-for-byte canonical input.
//
// Canonical form matters for the .ctp format because several files
// (index.json, attestations/bundle.json) are not covered by a digest of their
// own; requiring exactly one byte representation makes any change to them
// visible as an error instead of being silently re-interpreted.
package canonical

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds nesting so hostile input cannot exhaust the stack.
const MaxDepth = 64

var (
	// ErrDuplicateKey reports an object with the same member twice. Go's
	// encoding/json silently keeps the last one, which lets two parsers see
	// two different documents.
	ErrDuplicateKey = errors.New("duplicate JSON object key")
	// ErrNotCanonical reports input that parses but is not in canonical form.
	ErrNotCanonical = errors.New("JSON is not in canonical form (RFC 8785)")
	// ErrTooLarge reports input beyond the caller's size bound.
	ErrTooLarge = errors.New("JSON document too large")
	// ErrSyntax reports malformed JSON, trailing data, invalid UTF-8, or too
	// deep nesting.
	ErrSyntax = errors.New("JSON syntax error")
)

// Marshal returns the canonical encoding of v. v is first encoded with
// encoding/json (so struct tags apply) and then re-emitted canonically.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	tree, err := parse(buf.Bytes())
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := encode(&out, tree); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Canonicalize re-encodes arbitrary JSON canonically, rejecting duplicate keys.
func Canonicalize(data []byte) ([]byte, error) {
	tree, err := parse(data)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := encode(&out, tree); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// Options control Unmarshal.
type Options struct {
	MaxSize          int  // 0 means no bound
	RequireCanonical bool // input must equal its canonical re-encoding
	AllowUnknown     bool // by default unknown struct fields are an error
}

// Unmarshal decodes data into v after the strict checks described by opts.
// Errors wrap one of the package's sentinel errors.
func Unmarshal(data []byte, v any, opts Options) error {
	if opts.MaxSize > 0 && len(data) > opts.MaxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), opts.MaxSize)
	}
	tree, err := parse(data)
	if err != nil {
		return err
	}
	if opts.RequireCanonical {
		var out bytes.Buffer
		if err := encode(&out, tree); err != nil {
			return err
		}
		if !bytes.Equal(out.Bytes(), data) {
			return ErrNotCanonical
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if !opts.AllowUnknown {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	return nil
}

// parse builds a generic tree (map[string]any, []any, string, json.Number,
// bool, nil) and enforces duplicate-key, depth, UTF-8 and trailing-data rules.
func parse(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: invalid UTF-8", ErrSyntax)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after JSON value", ErrSyntax)
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("%w: nesting deeper than %d", ErrSyntax, MaxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("%w: object key is not a string", ErrSyntax)
				}
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("%w: %q", ErrDuplicateKey, k)
				}
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				m[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
			}
			return m, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
			}
			return a, nil
		}
		return nil, fmt.Errorf("%w: unexpected %v", ErrSyntax, t)
	default:
		return t, nil
	}
}

func encode(w *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case nil:
		w.WriteString("null")
	case bool:
		if t {
			w.WriteString("true")
		} else {
			w.WriteString("false")
		}
	case string:
		encodeString(w, t)
	case json.Number:
		s, err := formatNumber(t)
		if err != nil {
			return err
		}
		w.WriteString(s)
	case []any:
		w.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				w.WriteByte(',')
			}
			if err := encode(w, e); err != nil {
				return err
			}
		}
		w.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		// RFC 8785 sorts by UTF-16 code units, which differs from byte order
		// only for characters outside the BMP.
		sort.Slice(keys, func(i, j int) bool { return lessUTF16(keys[i], keys[j]) })
		w.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				w.WriteByte(',')
			}
			encodeString(w, k)
			w.WriteByte(':')
			if err := encode(w, t[k]); err != nil {
				return err
			}
		}
		w.WriteByte('}')
	default:
		return fmt.Errorf("canonical: unsupported type %T", v)
	}
	return nil
}

func lessUTF16(a, b string) bool {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
}

func encodeString(w *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	w.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			w.WriteString(`\"`)
		case r == '\\':
			w.WriteString(`\\`)
		case r == '\b':
			w.WriteString(`\b`)
		case r == '\f':
			w.WriteString(`\f`)
		case r == '\n':
			w.WriteString(`\n`)
		case r == '\r':
			w.WriteString(`\r`)
		case r == '\t':
			w.WriteString(`\t`)
		case r < 0x20:
			w.WriteString(`\u00`)
			w.WriteByte(hex[r>>4])
			w.WriteByte(hex[r&0xf])
		default:
			w.WriteRune(r)
		}
	}
	w.WriteByte('"')
}

// formatNumber renders a JSON number as ECMAScript's Number.prototype.toString
// would (RFC 8785 section 3.2.2.3).
func formatNumber(n json.Number) (string, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("%w: number %q out of range", ErrSyntax, n)
	}
	if f == 0 {
		return "0", nil
	}
	abs := math.Abs(f)
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	// Go writes e+06 / e-07; ECMAScript writes e+6 / e-7.
	mant, exp, _ := strings.Cut(s, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	return mant + "e" + string(sign) + exp, nil
}

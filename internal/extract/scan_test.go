package extract

import (
	"encoding/json"
	"testing"
)

// TestScanMatchesEncodingJSON: the scanner accepts what encoding/json
// accepts, refuses what it refuses, and reads the same top-level strings
// and numbers.
func TestScanMatchesEncodingJSON(t *testing.T) {
	for _, in := range scanSeeds {
		t.Run(in, func(t *testing.T) { compareScan(t, []byte(in)) })
	}
}

func FuzzScan(f *testing.F) {
	for _, in := range scanSeeds {
		f.Add([]byte(in))
	}
	f.Fuzz(compareScan)
}

var scanSeeds = []string{
	`{}`,
	`{"a":"plain ascii text longer than eight bytes","b":1,"c":-2.5e3,"d":true,"e":null}`,
	`{"quote":"say \"hi\" twice \"\"","slash":"a\\b\/c","ctl":"tab\there\nnew"}`,
	`{"u":"caf\u00e9 \ud83d\ude00 \u0041","raw":"café 😀 ünïcödé in the middle of a long string"}`,
	`{"bad":"lone \ud800 surrogate","nested":{"x":{"y":"deep"}},"arr":[1,"two",{"3":[]}]}`,
	"{\"invalid utf8\":\"ab\xffcdefghij\"}",
	"{\"ctl\":\"abcdefgh\x01ijk\"}",
	`{"unterminated":"abcdefghijklmnop`,
	`{"a":01}`,
	`{"a":1,}`,
	`[1,2]`,
	`{"big":12345678901234567890,"neg":-9223372036854775808,"exp":1E+2}`,
	`  {"spaced" : "out" }  `,
	`{"a":"x"} trailing`,
}

func compareScan(t *testing.T, in []byte) {
	var want any
	jsonErr := json.Unmarshal(in, &want)
	var s scanner
	err := s.scan(in)
	obj, isObj := want.(map[string]any)
	switch {
	case jsonErr != nil && err == nil:
		t.Fatalf("scan accepted %q; encoding/json: %v", in, jsonErr)
	case jsonErr == nil && isObj && err != nil:
		t.Fatalf("scan refused %q: %v", in, err)
	case jsonErr == nil && !isObj && err == nil:
		t.Fatalf("scan accepted a non-object %q", in)
	}
	if err != nil || !isObj {
		return
	}
	// Top-level members, the last of a repeated key winning, as in
	// encoding/json.
	got := map[string]jvalue{}
	for i := 0; i < len(s.vals); i++ {
		v := s.vals[i]
		got[string(v.key)] = v
		if v.kind == jObject {
			i = int(v.end) - 1
		}
	}
	if len(got) != len(obj) {
		t.Fatalf("%q: %d members, encoding/json %d", in, len(got), len(obj))
	}
	for k, w := range obj {
		v, ok := got[k]
		if !ok {
			t.Fatalf("%q: member %q missing", in, k)
		}
		switch w := w.(type) {
		case string:
			if v.kind != jString || string(v.raw) != w {
				t.Errorf("%q: member %q = %q (kind %d), want %q", in, k, v.raw, v.kind, w)
			}
		case float64:
			f := v.f
			if v.kind == jInt {
				f = float64(v.i)
			}
			if (v.kind != jInt && v.kind != jFloat) || f != w {
				t.Errorf("%q: member %q = %s, want %v", in, k, v.raw, w)
			}
		case bool:
			if v.kind != jBool || v.b != w {
				t.Errorf("%q: member %q = %s, want %v", in, k, v.raw, w)
			}
		case nil:
			if v.kind != jNull {
				t.Errorf("%q: member %q = %s, want null", in, k, v.raw)
			}
		}
	}
}

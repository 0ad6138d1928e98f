package wire

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestDecodeShape(t *testing.T) {
	cases := []struct {
		name, in string
		ok       bool
	}{
		{"ping", `{"type":"ping"}`, true},
		{"hello", `{"type":"hello","hello":{"name":"web1","max_term":3}}`, true},
		{"action", `{"type":"action","action":{"id":"a1","term":2,"kind":"run","command":"true","timeout":"5s"}}`, true},
		{"result", `{"type":"result","result":{"id":"a1","exit_code":1}}`, true},
		{"result without its field", `{"type":"result"}`, false},
		{"ping carrying an action", `{"type":"ping","action":{"id":"a1"}}`, false},
		{"two fields", `{"type":"chunk","chunk":{"id":"a"},"output":{"id":"a"}}`, false},
		{"unknown type", `{"type":"exec","action":{}}`, false},
		{"no type", `{}`, false},
		{"bad duration", `{"type":"action","action":{"timeout":"soon"}}`, false},
		{"not JSON", `hello`, false},
	}
	for _, tc := range cases {
		_, err := Decode([]byte(tc.in))
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ok=%v (errors wrapping ErrMalformed)", tc.name, err, tc.ok)
		}
	}
}

// FuzzDecode: any bytes decode or fail with ErrMalformed, never panic, and
// a frame that decodes survives a round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping"}`,
		`{"type":"hello","hello":{"name":"web1","version":"1","max_term":3,"lost":["a1"]}}`,
		`{"type":"action","action":{"id":"a1","term":2,"kind":"put","path":"/srv/x","mode":420,"size":5,"sha256":"ab"}}`,
		`{"type":"action","action":{"id":"a2","term":2,"kind":"check","check":{"http":"http://h/health","status":200}}}`,
		`{"type":"chunk","chunk":{"id":"a1","data":"aGVsbG8=","eof":true}}`,
		`{"type":"output","output":{"id":"a1","data":"b2s="}}`,
		`{"type":"result","result":{"id":"a1","exit_code":0,"rejected":true}}`,
		`{"type":"result","result":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		b, err := json.Marshal(fr)
		if err != nil {
			t.Fatalf("a decoded frame does not encode: %v", err)
		}
		again, err := Decode(b)
		if err != nil {
			t.Fatalf("a re-encoded frame does not decode: %v\n%s", err, b)
		}
		if normal(fr) != normal(again) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", fr, again)
		}
	})
}

// normal is f as JSON: empty and nil slices travel alike.
func normal(f Frame) string { b, _ := json.Marshal(f); return string(b) }

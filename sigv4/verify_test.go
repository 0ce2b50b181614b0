package sigv4

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

func TestAppendHex(t *testing.T) {
	src := make([]byte, 256)
	for i := range src {
		src[i] = byte(i)
	}
	if got, want := string(appendHex([]byte("x"), src)), "x"+hex.EncodeToString(src); got != want {
		t.Fatalf("appendHex = %q; want %q", got, want)
	}
}

// TestAppendTrimmed holds appendTrimmed's one-pass fast path to the plain
// rule (bytes.TrimSpace, then runs of spaces and tabs collapsed to one
// space) on every string of up to 5 bytes from an alphabet of the bytes
// that matter.
func TestAppendTrimmed(t *testing.T) {
	reference := func(v []byte) string {
		return strings.Join(strings.FieldsFunc(string(bytes.TrimSpace(v)), func(r rune) bool { return r == ' ' || r == '\t' }), " ")
	}
	alphabet := []byte{'a', ' ', '\t', '\n', 0xc2, 0xa0, 0x85, 0x7f}
	var walk func(v []byte)
	walk = func(v []byte) {
		if got, want := string(appendTrimmed([]byte("x:"), v)), "x:"+reference(v); got != want {
			t.Fatalf("appendTrimmed(%q) = %q; want %q", v, got, want)
		}
		if len(v) == 5 {
			return
		}
		for _, c := range alphabet {
			walk(append(v, c))
		}
	}
	walk(nil)
}

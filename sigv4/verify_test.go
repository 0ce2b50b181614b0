package sigv4

import (
	"encoding/hex"
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

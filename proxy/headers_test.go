package proxy

import (
	"strings"
	"testing"
)

// The first-letter shortcuts must not skip any listed name, whatever its case.
func TestHeaderShortcutsCoverTheLists(t *testing.T) {
	for _, p := range spoofablePrefixes {
		//lint:ignore SA1019 the names are ASCII, which strings.Title handles
		for _, name := range []string{string(p), strings.ToUpper(string(p)) + "X", strings.Title(string(p))} {
			if !isSpoofable([]byte(name)) {
				t.Errorf("isSpoofable(%q) = false", name)
			}
		}
	}
	for _, h := range hopByHop {
		for _, name := range []string{string(h), strings.ToUpper(string(h))} {
			if !isHopByHop([]byte(name)) {
				t.Errorf("isHopByHop(%q) = false", name)
			}
		}
	}
	for _, name := range []string{"", "Host", "User-Agent", "Content-Type", "Authorization", "X-Amz-Date"} {
		if isSpoofable([]byte(name)) || isHopByHop([]byte(name)) {
			t.Errorf("%q is filtered", name)
		}
	}
}

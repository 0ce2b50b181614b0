package proxy

import (
	"os"
	"strings"
	"testing"
)

// Every error code has a table row, and the README lists it.
func TestErrorTableComplete(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for code := errorCode(1); code < numErrorCodes; code++ {
		e := errorTable[code]
		if e.code == "" || e.status < 400 || e.status > 599 || e.message == "" {
			t.Errorf("error %d has an incomplete row: %+v", code, e)
		}
		if !strings.Contains(string(readme), "`"+e.code+"`") {
			t.Errorf("README does not list %s", e.code)
		}
	}
}

func TestErrorXMLEscapes(t *testing.T) {
	got := string(appendErrorXML(nil, errorTable[errMalformedQueryString], "a<b>&c\n'\"\x01\xff", []byte("req-1")))
	want := `<Code>MalformedQueryString</Code><Message>a&lt;b&gt;&amp;c` + "\n" + `'"` + "\uFFFD\uFFFD" + `</Message>`
	if !strings.Contains(got, want) {
		t.Errorf("got %q; want it to contain %q", got, want)
	}
}

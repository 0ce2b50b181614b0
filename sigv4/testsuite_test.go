package sigv4

import (
	"bufio"
	"bytes"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mapHeaders is Headers over a canonical-key map; Peek returns the first
// value, as fasthttp does.
type mapHeaders map[string][]string

func (h mapHeaders) PeekBytes(name []byte) []byte { return h.Peek(string(name)) }

func (h mapHeaders) Peek(name string) []byte {
	v := h[textproto.CanonicalMIMEHeaderKey(name)]
	if len(v) == 0 {
		return nil
	}
	return []byte(v[0])
}

// wireRequest is a raw HTTP request as a test gives it.
type wireRequest struct {
	method, path, query string
	headers             mapHeaders
	body                []byte
}

// parseWire reads "METHOD target HTTP/1.1\nHeader:value\n...\n\nbody".
// Non-ASCII bytes in the target are percent-encoded, as any HTTP client puts
// them on the wire.
func parseWire(t *testing.T, raw []byte) wireRequest {
	t.Helper()
	head, body, _ := bytes.Cut(raw, []byte("\n\n"))
	sc := bufio.NewScanner(bytes.NewReader(head))
	sc.Scan()
	fields := strings.Fields(sc.Text())
	if len(fields) < 3 {
		t.Fatalf("bad request line %q", sc.Text())
	}
	var target strings.Builder
	for _, c := range []byte(strings.Join(fields[1:len(fields)-1], " ")) {
		if c >= 0x80 || c == ' ' {
			fmt.Fprintf(&target, "%%%02X", c)
		} else {
			target.WriteByte(c)
		}
	}
	path, query, _ := strings.Cut(target.String(), "?")
	w := wireRequest{method: fields[0], path: path, query: query, headers: mapHeaders{}, body: body}
	last := ""
	for sc.Scan() {
		line := sc.Text()
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && last != "" { // obsolete folding
			vs := w.headers[last]
			vs[len(vs)-1] += "\n" + line
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		last = textproto.CanonicalMIMEHeaderKey(name)
		w.headers[last] = append(w.headers[last], strings.TrimSpace(value)) // servers drop the optional whitespace
	}
	return w
}

const (
	suiteSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	suiteDate   = "20150830T123600Z"
)

// knownDifferences are AWS suite cases ec2proxy deliberately does not pass.
// It reads one value per header (fasthttp's Peek), so a header repeated or
// folded over lines is not joined as the suite expects; no EC2 client sends
// such headers in its signed set. And it refuses a parameter given twice,
// which the EC2 backend would otherwise resolve its own way.
var knownDifferences = map[string]string{
	"get-header-key-duplicate":      "repeated header values are not joined",
	"get-header-value-multiline":    "obsolete header line folding is not joined",
	"get-header-value-order":        "repeated header values are not joined",
	"get-vanilla-query-order-key":   "duplicate parameters are refused",
	"get-vanilla-query-order-value": "duplicate parameters are refused",
}

func TestAWSTestSuite(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/aws-testsuite/*")
	cases := 0
	for _, dir := range dirs {
		name := filepath.Base(dir)
		sreq, err := os.ReadFile(filepath.Join(dir, name+".sreq"))
		if err != nil {
			continue // LICENSE, NOTICE
		}
		cases++
		t.Run(name, func(t *testing.T) {
			w := parseWire(t, sreq)
			creq, _ := os.ReadFile(filepath.Join(dir, name+".creq"))
			sts, _ := os.ReadFile(filepath.Join(dir, name+".sts"))
			now, _ := parseAmzDate([]byte(suiteDate))
			isForm := bytes.HasPrefix(w.headers.Peek("Content-Type"), []byte("application/x-www-form-urlencoded"))
			var r Request
			err := r.Parse([]byte(w.method), []byte(w.path), []byte(w.query), w.body, isForm, w.headers)
			if err == nil {
				err = r.Verify(NewSecret([]byte(suiteSecret)), now, Limits{})
			}
			if why, known := knownDifferences[name]; known {
				if err == nil {
					t.Errorf("passes now; remove it from knownDifferences (%s)", why)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v\ncanonical request:\n%s\nwant:\n%s", err, r.CanonicalRequest(), creq)
			}
			if string(r.CanonicalRequest()) != string(creq) {
				t.Errorf("canonical request:\n%s\nwant:\n%s", r.CanonicalRequest(), creq)
			}
			if string(r.StringToSign()) != string(sts) {
				t.Errorf("string to sign:\n%s\nwant:\n%s", r.StringToSign(), sts)
			}
		})
	}
	if cases < 15 {
		t.Fatalf("only %d AWS suite cases found", cases)
	}
}

//go:build linux

package proxy

import (
	"fmt"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/keystoneclient"
)

// Found by a review: ec2proxy read a body as a form whatever the case and
// spacing of its Content-Type, or with none, and forwarded that type;
// webob (nova, ec2-api) reads a body as parameters only when the type
// before ';' is exactly application/x-www-form-urlencoded (fasthttp's
// client sends an untyped body as application/octet-stream, eventlet reads
// none as text/plain). A captured SigV2 request re-sent with its
// Content-Type re-spelled and DryRun=true left alone in the body verified,
// and the backend ran it without DryRun. The backend must read the
// parameters that were verified: such a form goes as formContentType.
func TestFrontEndsFormReachesTheBackendAsAForm(t *testing.T) {
	const v4Body = "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3AName&Filter.1.Value.1=a+b"
	for _, mode := range frontEnds {
		for _, secondPass := range []bool{false, true} {
			if secondPass && mode == "goroutine" {
				continue
			}
			for _, tc := range []struct{ sent, want string }{
				{"application/x-www-form-urlencoded; charset=utf-8", ""},
				{"application/x-www-form-urlencoded; charset=UTF-8", ""}, // boto 2
				{"application/x-www-form-urlencoded", ""},                // euca2ools
				{"Application/x-www-form-urlencoded; charset=utf-8", formContentType},
				{"application/x-www-form-urlencoded ; charset=utf-8", formContentType},
				{"application/x-www-form-urlencoded;charset=latin1", formContentType},
				{"-", formContentType}, // none
			} {
				for _, version := range []int{2, 4} {
					if version == 4 && tc.sent == "-" {
						continue // signV4Typed signs a Content-Type
					}
					name := fmt.Sprintf("%s/second pass %v/SigV%d/%q", mode, secondPass, version, tc.sent)
					t.Run(name, func(t *testing.T) {
						backend := startScriptedBackend(t, answerWith("<ok/>"))
						s, body := warmServer(t, backend.addr)
						if secondPass {
							// The loop's pool refuses a connection: the request
							// verified in the loop goes to a goroutine, which
							// verifies it again, with the Content-Type as sent.
							s.cfg.Backend.MaxConns = 0
						}
						var headers []string
						if tc.sent != "-" {
							headers = append(headers, "Content-Type: "+tc.sent)
						}
						if version == 4 {
							body = v4Body
							auth, date := signV4Typed(modesHost, tc.sent, body, testAccess, testSecret, testNow)
							headers = append(headers, "Authorization: "+auth, "X-Amz-Date: "+date)
						}
						request := fmt.Sprintf("POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", modesHost, len(body))
						for _, h := range headers {
							request += h + "\r\n"
						}
						request += "\r\n" + body
						resp, answer, _ := askOnce(t, startMode(t, s, mode), request)
						if resp.StatusCode != 200 {
							t.Fatalf("%s %s", resp.Status, answer)
						}
						got := backend.received()
						if len(got) != 1 {
							t.Fatalf("the backend received %d requests", len(got))
						}
						want := tc.want
						if want == "" {
							want = tc.sent
						}
						types := contentTypes(got[0])
						if len(types) != 1 || types[0] != want || !strings.HasSuffix(got[0], "\r\n\r\n"+body) {
							t.Errorf("the backend got Content-Type %q; want %q, and the body unchanged:\n%s", types, want, got[0])
						}
					})
				}
			}
		}
	}
}

// contentTypes lists the Content-Type values of a raw request's head.
func contentTypes(raw string) []string {
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	var out []string
	for _, line := range strings.Split(head, "\r\n")[1:] {
		if name, value, ok := strings.Cut(line, ":"); ok && textproto.CanonicalMIMEHeaderKey(name) == "Content-Type" {
			out = append(out, strings.TrimSpace(value))
		}
	}
	return out
}

// A GET's body is never parameters (webob's FieldStorage reads a GET's
// query string only), so it is not signed: refused, not forwarded unsigned
// (a review's hardening).
func TestFrontEndsGetWithABodyRefused(t *testing.T) {
	for _, mode := range frontEnds {
		t.Run(mode, func(t *testing.T) {
			backend := startScriptedBackend(t, answerWith("<ok/>"))
			s, _ := warmServer(t, backend.addr)
			query := signed("GET", modesHost, "/", testSecret, nil).Encode()
			const body = "DryRun=true"
			request := fmt.Sprintf("GET /?%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", query, modesHost, len(body), body)
			addr := startMode(t, s, mode)
			resp, answer, _ := askOnce(t, addr, request)
			if resp.StatusCode != 400 || !strings.Contains(string(answer), "<Code>InvalidRequest</Code><Message>A GET request carries its parameters in the query string; this one has a body.</Message>") {
				t.Errorf("%s %s", resp.Status, answer)
			}
			if resp, answer, _ := askOnce(t, addr, rawGet(modesHost, "/?"+query)); resp.StatusCode != 200 {
				t.Errorf("without the body: %s %s", resp.Status, answer)
			}
			if got := backend.received(); len(got) != 1 {
				t.Errorf("the backend received %d requests; want 1 (the one without a body)", len(got))
			}
		})
	}
}

// X-Is-Admin-Project is always sent, as keystonemiddleware sends it: False
// when the token says is_admin_project: false, else True; never the
// client's. Left out, oslo.context read it as True, which a policy's
// is_admin_project:True took for an admin's token in any project (found by
// a review).
func TestFrontEndsSendIsAdminProject(t *testing.T) {
	for _, mode := range frontEnds {
		for _, notAdmin := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/not admin project %v", mode, notAdmin), func(t *testing.T) {
				backend := startScriptedBackend(t, answerWith("<ok/>"))
				s, form := warmServer(t, backend.addr)
				subject := *s.identity.(*cachedFake).id.Subject
				subject.NotAdminProject = notAdmin
				s.identity = &cachedFake{fakeIdentity{id: keystoneclient.NewIdentity("gAAAA", time.Time{}, &subject)}}
				spoofed := map[bool]string{false: "False", true: "True"}[notAdmin]
				resp, answer, _ := askOnce(t, startMode(t, s, mode), modesForm(form, "X-Is-Admin-Project: "+spoofed))
				if resp.StatusCode != 200 {
					t.Fatalf("%s %s", resp.Status, answer)
				}
				got := backend.received()
				want := "X-Is-Admin-Project: " + adminProjectHeader(notAdmin) + "\r\n"
				if len(got) != 1 || strings.Count(strings.ToLower(got[0]), "x-is-admin-project") != 1 || !strings.Contains(got[0], want) {
					t.Errorf("the backend got:\n%s\nwant one %q", got, want)
				}
			})
		}
	}
}

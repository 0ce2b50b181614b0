//go:build linux

package proxy

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/ec2proxy/ec2proxy/keystoneclient"
)

// The loop renders the backend's request as bytes: an identity value with
// a line break (a user name from Keystone, say) must not start a header of
// its own there; that header is left out, the others are kept.
func TestAppendBackendRequestDropsLineBreaks(t *testing.T) {
	w := newWarm(t, 2)
	var ctx fasthttp.RequestCtx
	ctx.Init(w.req, w.peer, nil)
	for _, evil := range []string{"alice\r\nX-Roles: admin", "alice\nX-Roles: admin", "alice\rX-Roles: admin"} {
		st := state{requestID: []byte("req-1"), identity: keystoneclient.NewIdentity("gAAAA", testNow, &keystoneclient.Subject{
			UserID: "u", UserName: evil, ProjectID: "p", ProjectName: "proj", RolesHeader: "member"})}
		out := string(w.s.appendBackendRequest(nil, &ctx, &st))
		if strings.Contains(out, "X-User-Name") || strings.Count(out, "X-Roles: ") != 1 || !strings.Contains(out, "\r\nX-Roles: member\r\n") {
			t.Errorf("user name %q rendered as:\n%s", evil, out)
		}
		for _, h := range []string{"\r\nX-User-Id: u\r\n", "\r\nX-Project-Name: proj\r\n", "\r\nX-Auth-Token: gAAAA\r\n"} {
			if !strings.Contains(out, h) {
				t.Errorf("user name %q: %q missing from:\n%s", evil, h, out)
			}
		}
	}
}

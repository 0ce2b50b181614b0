//go:build !race

package keystoneclient

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/internal/memtest"
	"github.com/ec2proxy/ec2proxy/sigv2"
)

// cannedKeystone is an http.RoundTripper answering like Keystone 22 behind
// uwsgi, without a network: the answer is still read by http.ReadResponse,
// so what net/textproto and encoding/json allocate is what a real
// exchange allocates. distinct gives every token its own user and project
// (a deployment with one credential per user); otherwise every token has
// the same user, project and roles (bench/fakekeystone's shape).
type cannedKeystone struct {
	distinct bool
	now      func() time.Time
	n        int
}

// keystone22Token is Keystone 22's ec2tokens answer for the demo user
// (bench/fakekeystone), catalog included; %[1]s is expires_at, %[2]s
// issued_at, %[3]s the user id, %[4]s the project id.
const keystone22Token = `{"token": {"methods": ["ec2credential"], "user": {"domain": {"id": "06e1867cc2a74451a6d5a9481e7a385c", "name": "demo"}, "id": "%[3]s", "name": "demo", "password_expires_at": null}, "audit_ids": ["4Z1wdMPlQwCOHCdyBXRXHQ"], "expires_at": "%[1]s", "issued_at": "%[2]s", "project": {"domain": {"id": "06e1867cc2a74451a6d5a9481e7a385c", "name": "demo"}, "id": "%[4]s", "name": "demo"}, "is_domain": false, "roles": [{"id": "c00b728b5298480cac532adf4fad498f", "name": "reader"}, {"id": "e58273954e5f428fa0cf256b1367b524", "name": "member"}], "catalog": [{"endpoints": [{"id": "b72f45473346421e8054d9d4420774d2", "interface": "public", "region_id": "RegionOne", "url": "http://127.0.0.1:5000/v3", "region": "RegionOne"}, {"id": "beb22b25ff6d419b980a3063cd09eda8", "interface": "internal", "region_id": "RegionOne", "url": "http://127.0.0.1:5000/v3", "region": "RegionOne"}, {"id": "595c1712b6f84d3c8c2f4bdb7d54ee27", "interface": "admin", "region_id": "RegionOne", "url": "http://127.0.0.1:5000/v3", "region": "RegionOne"}], "id": "1e6c3d1e1b4d4a8f9c0b5b0f4a1d2c3e", "type": "identity", "name": "keystone"}]}}`

func (k *cannedKeystone) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	const stamp = "2006-01-02T15:04:05.000000Z"
	now := k.now().UTC()
	var status, body string
	switch {
	case strings.HasSuffix(req.URL.Path, "/auth/tokens"):
		status = "201 Created"
		body = fmt.Sprintf(`{"token":{"methods":["password"],"expires_at":%q}}`, now.Add(time.Hour).Format(stamp))
	case strings.HasSuffix(req.URL.Path, "/ec2tokens"):
		k.n++
		user, project := "8366eb479b564fcf84861ac4b85d9e2a", "13baf27cd06e4214a505ae8d4318b5ab"
		if k.distinct {
			user, project = memtest.RandomHex(32), memtest.RandomHex(32)
		}
		status = "200 OK"
		body = fmt.Sprintf(keystone22Token, now.Add(time.Hour).Format(stamp), now.Format(stamp), user, project)
	default:
		return nil, fmt.Errorf("unexpected %s", req.URL.Path)
	}
	// A Fernet token for an ec2credential scope: 183 characters.
	tok := make([]byte, 137)
	_, _ = rand.Read(tok)
	raw := "HTTP/1.1 " + status + "\r\n" +
		"Date: " + now.Format(http.TimeFormat) + "\r\n" +
		"Content-Type: application/json\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"X-Subject-Token: gAAAAA" + base64.RawURLEncoding.EncodeToString(tok)[:177] + "\r\n" +
		"Vary: X-Auth-Token\r\n" +
		"x-openstack-request-id: req-" + memtest.RandomHex(8) + "-" + memtest.RandomHex(4) + "-" + memtest.RandomHex(4) + "-" + memtest.RandomHex(4) + "-" + memtest.RandomHex(12) + "\r\n" +
		"Connection: keep-alive\r\n\r\n" + body
	return http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), req)
}

// tokenBytesPerKey fills a client's token cache with n tokens shaped like
// Keystone 22's and returns the live heap they hold, per access key.
func tokenBytesPerKey(t testing.TB, n int, distinct bool) float64 {
	var clock testClock
	clock.t.Store(time.Now().UnixNano())
	c, err := New(Config{
		AuthURL: "http://keystone.invalid:5000", Username: "ec2proxy", Password: "svcpass",
		Timeout: 5 * time.Second, TokenMargin: 5 * time.Minute, MaxTokens: 4 * n, Now: clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.http.Transport = &cannedKeystone{distinct: distinct, now: clock.now}
	ctx := context.Background()
	// Access keys, secrets and the service token exist before the baseline.
	keys := make([]string, n)
	for i := range keys {
		keys[i] = memtest.RandomHex(32)
	}
	secret := sigv2.NewKey([]byte(memtest.RandomHex(32)))
	if _, err := c.serviceToken(ctx); err != nil {
		t.Fatal(err)
	}
	before := memtest.LiveHeap()
	for _, k := range keys {
		if _, err := c.Identity(ctx, k, secret); err != nil {
			t.Fatal(err)
		}
	}
	after := memtest.LiveHeap()
	if got := c.CachedTokens(); got != n {
		t.Fatalf("%d tokens cached, want %d", got, n)
	}
	runtime.KeepAlive(c)
	runtime.KeepAlive(keys)
	return (float64(after) - float64(before)) / float64(n)
}

// The token cache's live heap per access key: the token, the identity and
// the cache entry. bench/results.md's RSS measurement holds 100,000 of
// these next to as many credentials.
func TestTokenCacheMemory(t *testing.T) {
	n := memtest.Keys(t)
	for _, tt := range []struct {
		name     string
		distinct bool
		max      float64
	}{
		{"same user (bench shape)", false, 280},
		{"a user per key", true, 620},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := tokenBytesPerKey(t, n, tt.distinct)
			t.Logf("%d tokens: %.0f bytes of live heap per key", n, got)
			if got > tt.max {
				t.Errorf("%.0f bytes per cached token, want at most %.0f", got, tt.max)
			}
		})
	}
}

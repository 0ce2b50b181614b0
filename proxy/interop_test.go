package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv4"
)

// webob, in front of nova and ec2-api, reads a POST body as parameters when
// it is a form, untyped or multipart. A SigV2 signature covers only the
// parameters this proxy parses: a multipart body beside a signed query
// string would reach the backend unsigned (found by a review: a captured
// TerminateInstances could gain InstanceId.2). Such a body is refused; an
// untyped one is read as the form it is to webob.
func TestPostBodyMustBeAForm(t *testing.T) {
	h := newHarness(t)
	send := func(query, contentType, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, h.url+"/?"+query, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		return h.do(req)
	}
	query := signed("POST", strings.TrimPrefix(h.url, "http://"), "/", testSecret, map[string]string{"Action": "TerminateInstances", "InstanceId.1": "i-a"}).Encode()
	multipart := "--XX\r\nContent-Disposition: form-data; name=\"InstanceId.2\"\r\n\r\ni-victim\r\n--XX--\r\n"
	wantEC2Error(t, send(query, "multipart/form-data; boundary=XX", multipart), 400, "InvalidRequest", `must be application/x-www-form-urlencoded (the Query API's parameters), not "multipart/form-data"`)
	wantEC2Error(t, send(query, "application/json", `{"InstanceId.2":"i-victim"}`), 400, "InvalidRequest", `not "application/json"`)
	if got := len(h.backend.Requests()); got != 0 {
		t.Errorf("the backend received %d refused requests", got)
	}
	// Typed or not, an empty body is fine, and an untyped body is a form:
	// its parameters are verified (signed here: the signature is over all).
	if resp := send(query, "multipart/form-data; boundary=XX", ""); resp.StatusCode != 200 {
		t.Errorf("signed query, empty multipart body: %d %s", resp.StatusCode, bodyOf(resp))
	}
	form := signed("POST", strings.TrimPrefix(h.url, "http://"), "/", testSecret, nil).Encode()
	if resp := send("", "", form); resp.StatusCode != 200 {
		t.Errorf("signed form body without Content-Type: %d %s", resp.StatusCode, bodyOf(resp))
	}
	// An untyped body with an unsigned parameter added fails verification.
	wantEC2Error(t, send(query, "", "InstanceId.2=i-victim"), 403, "SignatureDoesNotMatch", "")
}

// AWS's largest calls carry about 1,100 parameters (CreateTags: 1,000
// resource IDs, 50 tags); the limit was 1,000 and its message named none
// (found by a review).
func TestManyParameters(t *testing.T) {
	h := newHarness(t)
	host := strings.TrimPrefix(h.url, "http://")
	params := func(n int) map[string]string {
		p := map[string]string{"Action": "CreateTags", "Tag.1.Key": "k", "Tag.1.Value": "v"}
		for i := 1; len(p) < n; i++ {
			p["ResourceId."+strconv.Itoa(i)] = "i-" + strconv.Itoa(i)
		}
		return p
	}
	if resp := h.post(signed("POST", host, "/", testSecret, params(1050)).Encode(), nil); resp.StatusCode != 200 {
		t.Errorf("SigV2, CreateTags on 1,000+ resources: %d %s", resp.StatusCode, bodyOf(resp))
	}
	wantEC2Error(t, h.post(signed("POST", host, "/", testSecret, params(4100)).Encode(), nil), 400, "MalformedQueryString", "The request has more than 4096 parameters.")

	v4 := func(n int) *http.Response {
		vals := url.Values{"Version": {"2016-11-15"}}
		for k, v := range params(n) {
			vals.Set(k, v)
		}
		body := vals.Encode()
		auth, date := signV4(host, body, testAccess, testSecret, testNow)
		return h.post(body, http.Header{"Authorization": {auth}, "X-Amz-Date": {date}})
	}
	if resp := v4(1050); resp.StatusCode != 200 {
		t.Errorf("SigV4, CreateTags on 1,000+ resources: %d %s", resp.StatusCode, bodyOf(resp))
	}
	wantEC2Error(t, v4(4100), 400, "MalformedQueryString", "The request has more than 4096 parameters.")
}

// A presigned URL fetched through a gateway that adds its own
// Authorization (Basic) is verified on its query (found by a review: it
// was refused "must start with AWS4-HMAC-SHA256").
func TestPresignedWithForeignAuthorization(t *testing.T) {
	h := newHarness(t)
	q, _ := sigv4.Presign(sigv4.Signing{
		Method: "GET", Host: strings.TrimPrefix(h.url, "http://"), Path: "/", Query: "Action=DescribeRegions&Version=2016-11-15",
		AccessKey: testAccess, Secret: testSecret, Region: "RegionOne", Service: "ec2", Time: testNow,
	}, 5*time.Minute)
	req, _ := http.NewRequest(http.MethodGet, h.url+"/?"+q, nil)
	req.Header.Set("Authorization", "Basic Z2F0ZXdheTpzZWNyZXQ=")
	if resp := h.do(req); resp.StatusCode != 200 {
		t.Errorf("presigned URL with a Basic Authorization header: %d %s", resp.StatusCode, bodyOf(resp))
	}
	// The gateway's credentials are not the backend's business.
	if got, _ := h.backend.Last(); strings.Contains(fmt.Sprint(got), "Z2F0ZXdheTpzZWNyZXQ") {
		t.Errorf("the backend received the gateway's Authorization: %+v", got)
	}
	// A SigV4 Authorization header still takes precedence over the query.
	req, _ = http.NewRequest(http.MethodGet, h.url+"/?"+q, nil)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=x")
	wantEC2Error(t, h.do(req), 400, "IncompleteSignature", "")
}

// An absolute-form target is what a client sends to a forward proxy: the
// refusal says so (it was a 404 naming the URL as a path).
func TestAbsoluteFormTarget(t *testing.T) {
	h := newHarness(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET http://ec2.example.com/?Action=DescribeRegions HTTP/1.1\r\nHost: ec2.example.com\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantEC2Error(t, resp, 400, "InvalidRequest", `not "http://ec2.example.com/": is an HTTP proxy set for this endpoint`)
}

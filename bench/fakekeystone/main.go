// Command fakekeystone answers the two Keystone calls ec2proxy makes
// (password authentication and POST /v3/ec2tokens) for any credential,
// with a token body shaped like Keystone 22's (catalog included, ~1.2 KB;
// see shared research keystone-samples/ec2tokens-sigv2-200.json) and a
// fresh Fernet-sized token each time. It checks no signature.
//
// The benchmark uses it only to fill ec2proxy's caches with 100,000
// credentials and tokens for the RSS measurement: doing that against the
// real Keystone would take 100,000 ec2tokens calls at ~7 ms each.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"log"
	"net/http"
	"sync/atomic"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5999", "address to listen on")
	flag.Parse()
	var exchanges atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v3", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"version":{"id":"v3.14","status":"stable"}}`)
	})
	mux.HandleFunc("POST /v3/auth/tokens", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Subject-Token", token())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token":{"methods":["password"],"expires_at":%q}}`, expiry())
	})
	mux.HandleFunc("POST /v3/ec2tokens", func(w http.ResponseWriter, _ *http.Request) {
		exchanges.Add(1)
		w.Header().Set("X-Subject-Token", token())
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, ec2Token, expiry(), time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"))
	})
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, exchanges.Load())
	})
	log.Fatal(http.ListenAndServe(*listen, mux))
}

func expiry() string {
	return time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000000Z")
}

// token is as long as a Keystone Fernet token for an ec2credential
// scope (183 characters).
func token() string {
	b := make([]byte, 137)
	_, _ = rand.Read(b)
	return "gAAAAA" + base64.RawURLEncoding.EncodeToString(b)[:177]
}

// ec2Token is Keystone 22's answer to ec2tokens for the demo user, with
// expires_at and issued_at left to fill in.
const ec2Token = `{"token": {"methods": ["ec2credential"], "user": {"domain": {"id": "06e1867cc2a74451a6d5a9481e7a385c", "name": "demo"}, "id": "8366eb479b564fcf84861ac4b85d9e2a", "name": "demo", "password_expires_at": null}, "audit_ids": ["4Z1wdMPlQwCOHCdyBXRXHQ"], "expires_at": %q, "issued_at": %q, "project": {"domain": {"id": "06e1867cc2a74451a6d5a9481e7a385c", "name": "demo"}, "id": "13baf27cd06e4214a505ae8d4318b5ab", "name": "demo"}, "is_domain": false, "roles": [{"id": "c00b728b5298480cac532adf4fad498f", "name": "reader"}, {"id": "e58273954e5f428fa0cf256b1367b524", "name": "member"}], "catalog": [{"endpoints": [{"id": "b72f45473346421e8054d9d4420774d2", "interface": "public", "region_id": "RegionOne", "url": "http://127.0.0.1:5000/v3", "region": "RegionOne"}, {"id": "beb22b25ff6d419b980a3063cd09eda8", "interface": "internal", "region_id": "RegionOne", "url": "http://127.0.0.1:5000/v3", "region": "RegionOne"}, {"id": "595c1712b6f84d3c8c2f4bdb7d54ee27", "interface": "admin", "region_id": "RegionOne", "url": "http://127.0.0.1:5000/v3", "region": "RegionOne"}], "id": "1e6c3d1e1b4d4a8f9c0b5b0f4a1d2c3e", "type": "identity", "name": "keystone"}]}}`

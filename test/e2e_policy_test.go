package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// keystoneAPI calls Keystone's REST API with a token.
type keystoneAPI struct {
	t     *testing.T
	url   string
	token string
}

func keystoneLogin(t *testing.T, ks testenv.Keystone, user, password, domainID, projectID string) *keystoneAPI {
	t.Helper()
	body := fmt.Sprintf(`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":%q,"password":%q,"domain":{"id":%q}}}},"scope":{"project":{"id":%q}}}}`,
		user, password, domainID, projectID)
	resp, err := http.Post(ks.URL+"/v3/auth/tokens?nocatalog", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 201 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("login as %s: %d %s", user, resp.StatusCode, b)
	}
	return &keystoneAPI{t: t, url: ks.URL + "/v3", token: resp.Header.Get("X-Subject-Token")}
}

func (k *keystoneAPI) do(method, path string, in any, want int) map[string]any {
	k.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, k.url+path, body)
	req.Header.Set("X-Auth-Token", k.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		k.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		k.t.Fatalf("%s %s: %d %s; want %d", method, path, resp.StatusCode, b, want)
	}
	out := map[string]any{}
	_ = json.Unmarshal(b, &out)
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Authorization with the shipped policy against the real Keystone: a member
// may act; a Heat stack user may only look; a trust-scoped EC2 credential
// (created by an admin with trust_id in its blob, keystone-real.md §3) gets
// only the trust's roles, and stops working once the trust is deleted; one
// bound to an application credential gets only that credential's roles.
func TestPolicyWithRealKeystone(t *testing.T) {
	s := startStack(t, func(c *configs.Config) { c.Policy.Enabled = true })
	ks := testenv.KeystoneEnv(t)
	demo, stackUser := demoKey(t), stackKey(t)
	putKeys(t, s.store, demo, stackUser)
	warmUp(t, s, demo)
	action := func(k keyPair, a string) ec2Result {
		return ec2Call(s.url, "/", k.access, k.secret, map[string]string{"Action": a})
	}
	wantOK(t, "member RunInstances", action(demo, "RunInstances"))
	wantOK(t, "stack user DescribeInstances", action(stackUser, "DescribeInstances"))
	r := action(stackUser, "RunInstances")
	wantFault(t, "stack user RunInstances", r, 403, "UnauthorizedOperation", 5*time.Second)
	if !strings.Contains(r.body, "RunInstances") {
		t.Errorf("the refusal does not name the action: %s", r.body)
	}

	// demo trusts demo2 with the reader role only, on the demo project.
	demoAPI := keystoneLogin(t, ks, ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEMO_USER"), ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEMO_PASSWORD"),
		ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEMO_DOMAIN_ID"), demo.project)
	trust := demoAPI.do("POST", "/OS-TRUST/trusts", map[string]any{"trust": map[string]any{
		"trustor_user_id": demo.user, "trustee_user_id": ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEMO2_USER_ID"),
		"project_id": demo.project, "impersonation": false, "roles": []map[string]string{{"name": "reader"}},
	}}, 201)["trust"].(map[string]any)
	trustID := trust["id"].(string)
	trustDeleted := false
	t.Cleanup(func() {
		if !trustDeleted {
			demoAPI.do("DELETE", "/OS-TRUST/trusts/"+trustID, nil, 204)
		}
	})

	admin := keystoneLogin(t, ks, ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_USER"), ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PASSWORD"),
		ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEFAULT_DOMAIN_ID"), ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PROJECT_ID"))
	trusted := keyPair{access: randomHex(16), secret: randomHex(16), user: ks.Var(t, "EC2PROXY_TEST_KEYSTONE_DEMO2_USER_ID"), project: demo.project}
	blob, _ := json.Marshal(map[string]string{"access": trusted.access, "secret": trusted.secret, "trust_id": trustID})
	cred := admin.do("POST", "/credentials", map[string]any{"credential": map[string]any{
		"type": "ec2", "user_id": trusted.user, "project_id": trusted.project, "blob": string(blob),
	}}, 201)["credential"].(map[string]any)
	t.Cleanup(func() { admin.do("DELETE", "/credentials/"+cred["id"].(string), nil, 204) })
	rec := credstore.Record{AccessKey: trusted.access, Secret: trusted.secret, UserID: trusted.user, ProjectID: trusted.project, TrustID: trustID, Enabled: true}
	if err := s.store.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}

	wantOK(t, "trust (reader) DescribeInstances", action(trusted, "DescribeInstances"))
	got, _ := s.backend.Last()
	if got.Header.Get("X-Trust-Id") != trustID || got.Header.Get("X-Trustee-Id") != trusted.user || got.Header.Get("X-Trustor-Id") != demo.user {
		t.Errorf("trust headers: id %q trustee %q trustor %q; want %s, %s, %s", got.Header.Get("X-Trust-Id"),
			got.Header.Get("X-Trustee-Id"), got.Header.Get("X-Trustor-Id"), trustID, trusted.user, demo.user)
	}
	if roles := got.Header.Get("X-Roles"); !strings.Contains(roles, "reader") || strings.Contains(roles, "member") {
		t.Errorf("X-Roles %q; want the trust's role reader only, not the trustor's member", roles)
	}
	wantFault(t, "trust (reader) RunInstances", action(trusted, "RunInstances"), 403, "UnauthorizedOperation", 5*time.Second)

	// An application credential of demo's limited to reader, and an EC2
	// credential bound to it (blob app_cred_id): only reader applies.
	appCred := demoAPI.do("POST", "/users/"+demo.user+"/application_credentials", map[string]any{"application_credential": map[string]any{
		"name": "ec2proxy-e2e-" + randomHex(4), "roles": []map[string]string{{"name": "reader"}},
	}}, 201)["application_credential"].(map[string]any)
	t.Cleanup(func() {
		demoAPI.do("DELETE", "/users/"+demo.user+"/application_credentials/"+appCred["id"].(string), nil, 204)
	})
	viaApp := keyPair{access: randomHex(16), secret: randomHex(16), user: demo.user, project: demo.project}
	blob, _ = json.Marshal(map[string]string{"access": viaApp.access, "secret": viaApp.secret, "app_cred_id": appCred["id"].(string)})
	appEC2 := admin.do("POST", "/credentials", map[string]any{"credential": map[string]any{
		"type": "ec2", "user_id": viaApp.user, "project_id": viaApp.project, "blob": string(blob),
	}}, 201)["credential"].(map[string]any)
	t.Cleanup(func() { admin.do("DELETE", "/credentials/"+appEC2["id"].(string), nil, 204) })
	putKeys(t, s.store, viaApp)
	wantOK(t, "application credential (reader) DescribeInstances", action(viaApp, "DescribeInstances"))
	got, _ = s.backend.Last()
	if roles := got.Header.Get("X-Roles"); !strings.Contains(roles, "reader") || strings.Contains(roles, "member") {
		t.Errorf("application credential: X-Roles %q; want its role reader only, not demo's member", roles)
	}
	wantFault(t, "application credential (reader) RunInstances", action(viaApp, "RunInstances"), 403, "UnauthorizedOperation", 5*time.Second)

	// The trust is deleted: Keystone refuses the credential at the next
	// exchange. The cached token lives until it is renewed or the record
	// changes (here: touched, as `ec2proxy creds` or sync would).
	demoAPI.do("DELETE", "/OS-TRUST/trusts/"+trustID, nil, 204)
	trustDeleted = true
	if err := s.store.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if _, ok := eventually(2*time.Second, func() bool { return action(trusted, "DescribeInstances").code == "AuthFailure" }); !ok {
		t.Errorf("the trust's credential still works after the trust was deleted: %s", action(trusted, "DescribeInstances"))
	}
	if n := s.metric("ec2proxy_policy_decisions_total", "action", "RunInstances", "result", "deny"); n != 3 {
		t.Errorf("RunInstances denials counted: %v, want 3", n)
	}
}

package test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// The service account may authenticate with an application credential
// instead of its password (keystone.application_credential): its token
// has the service role it was made with, which ec2tokens requires.
// Measured against the real Keystone: a real client's call is verified,
// exchanged and forwarded with a token of the caller's project.
func TestServiceAccountApplicationCredential(t *testing.T) {
	ks := testenv.KeystoneEnv(t)
	userID := ks.Var(t, "EC2PROXY_TEST_KEYSTONE_SERVICE_USER_ID")
	svc := keystoneLogin(t, ks, ks.ServiceUser, ks.ServicePassword,
		ks.Var(t, "EC2PROXY_TEST_KEYSTONE_SERVICE_DOMAIN_ID"), ks.Var(t, "EC2PROXY_TEST_KEYSTONE_SERVICE_PROJECT_ID"))
	created := svc.do("POST", "/users/"+userID+"/application_credentials",
		map[string]any{"application_credential": map[string]any{"name": "ec2proxy-e2e-" + randomHex(4)}}, 201)
	ac := created["application_credential"].(map[string]any)
	id, secret := ac["id"].(string), ac["secret"].(string)
	t.Cleanup(func() { svc.do("DELETE", "/users/"+userID+"/application_credentials/"+id, nil, 204) })
	secretFile := filepath.Join(t.TempDir(), "app-cred-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	s := startStack(t, func(c *configs.Config) {
		c.Keystone.ServiceUser = configs.ServiceUser{}
		c.Keystone.ApplicationCredential = configs.ApplicationCredential{ID: id, SecretFile: secretFile}
	})
	access, userSecret := s.putDemoCredential()
	if r := s.call("--endpoint", s.url+"/", "--access", access, "--secret", userSecret, "--client", "botocore", "--sigv2", "HmacSHA256"); !r.OK {
		t.Fatalf("call failed: %+v", r)
	}
	last, _ := s.backend.Last()
	if project := validateToken(t, ks, last.Header.Get("X-Auth-Token")); project != ks.Var(t, "DEMO_PROJECT_ID") {
		t.Errorf("forwarded token is scoped to project %q; want the demo project", project)
	}
	if n := s.metric("ec2proxy_keystone_requests_total", "op", "auth", "result", "ok"); n != 1 {
		t.Errorf("%v service authentications, want 1", n)
	}
	s.assertNoSecretsLogged(secret, userSecret)
}

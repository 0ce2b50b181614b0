package keystoneclient

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/sigv2"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// Against the real Keystone 22 of test/scripts/keystone-up.sh: the
// re-signed exchange is accepted, and refusals are classified.
func TestRealKeystone(t *testing.T) {
	ks := testenv.KeystoneEnv(t)
	c, err := New(Config{
		AuthURL: ks.URL, Username: ks.ServiceUser, Password: ks.ServicePassword,
		UserDomainName: ks.ServiceDomain, ProjectName: ks.ServiceProject, ProjectDomainName: ks.ServiceDomain,
		Timeout: 10 * time.Second, TokenMargin: 5 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := c.Ready(ctx); err != nil { // with the token held: GET /v3
		t.Fatalf("Ready again: %v", err)
	}
	// The service token validates itself (what a 401 from ec2tokens is
	// checked with), and a made-up one does not.
	svc, err := c.serviceToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !c.serviceTokenValid(ctx, svc) {
		t.Error("Keystone says the service token it just gave is not valid")
	}
	if c.serviceTokenValid(ctx, &serviceToken{token: "gAAAAABnot-a-token"}) {
		t.Error("a made-up service token is valid")
	}

	access, secret := ks.Var(t, "DEMO_EC2_ACCESS"), ks.Var(t, "DEMO_EC2_SECRET")
	id, err := c.Identity(ctx, access, sigv2.NewKey([]byte(secret)))
	if err != nil {
		t.Fatalf("Identity(demo): %v", err)
	}
	if id.UserID != ks.Var(t, "DEMO_USER_ID") || id.ProjectID != ks.Var(t, "DEMO_PROJECT_ID") || id.ProjectName != "demo" ||
		id.UserDomainID != ks.Var(t, "DEMO_USER_DOMAIN_ID") || !strings.Contains(","+id.RolesHeader+",", ",member,") {
		t.Errorf("demo identity = %+v", id)
	}
	if len(id.Token()) < 100 || time.Until(id.ExpiresAt()) < 30*time.Minute {
		t.Errorf("token %d chars, expires %v", len(id.Token()), id.ExpiresAt())
	}

	stack, err := c.Identity(ctx, ks.Var(t, "STACK_EC2_ACCESS"), sigv2.NewKey([]byte(ks.Var(t, "STACK_EC2_SECRET"))))
	if err != nil || stack.RolesHeader != "heat_stack_user" {
		t.Errorf("stack user identity = %+v, %v; want only role heat_stack_user", stack, err)
	}

	for _, tt := range []struct{ name, access, secret string }{
		{"unknown access key", "00000000000000000000000000000000", secret},
		{"secret differs from keystone's", access + "", "0000" + secret[4:]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c.Forget(tt.access)
			_, err := c.Identity(ctx, tt.access, sigv2.NewKey([]byte(tt.secret)))
			if !errors.Is(err, ErrRejected) {
				t.Errorf("Identity = %v; want ErrRejected", err)
			}
		})
	}
}

func TestRealKeystoneListEC2Credentials(t *testing.T) {
	ks := testenv.KeystoneEnv(t)
	admin, err := New(Config{
		AuthURL: ks.URL, Username: ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_USER"), Password: ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PASSWORD"),
		UserDomainName: "Default", ProjectName: ks.Var(t, "EC2PROXY_TEST_KEYSTONE_ADMIN_PROJECT"), ProjectDomainName: "Default", Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := admin.ListEC2Credentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range creds {
		if c.Access == ks.Var(t, "DEMO_EC2_ACCESS") {
			found = c.Secret == ks.Var(t, "DEMO_EC2_SECRET") && c.UserID == ks.Var(t, "DEMO_USER_ID") && c.ProjectID == ks.Var(t, "DEMO_PROJECT_ID")
		}
	}
	if !found {
		t.Errorf("the demo credential is not listed correctly among %d", len(creds))
	}
	// Keystone answers a non-admin's list with its own credentials only
	// (its policy filters instead of refusing): the client refuses first.
	svc, _ := New(Config{AuthURL: ks.URL, Username: ks.ServiceUser, Password: ks.ServicePassword, UserDomainName: ks.ServiceDomain,
		ProjectName: ks.ServiceProject, ProjectDomainName: ks.ServiceDomain, Timeout: 10 * time.Second})
	if own, err := svc.ListEC2Credentials(context.Background()); !errors.Is(err, ErrNotPermitted) || len(own) != 0 {
		t.Errorf("service user (role service) listing = %d credentials, %v; want ErrNotPermitted", len(own), err)
	}
}

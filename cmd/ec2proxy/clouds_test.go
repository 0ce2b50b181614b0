package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2proxy/ec2proxy/configs"
)

// A clouds.yaml cloud reads as the OS_* variables of an openrc, with its
// secure.yaml's values over it and '-' in keys read as '_'.
func TestCloudVars(t *testing.T) {
	dir := t.TempDir()
	clouds := filepath.Join(dir, "clouds.yaml")
	secure := filepath.Join(dir, "secure.yaml")
	os.WriteFile(clouds, []byte(`
clouds:
  other: {auth: {auth_url: "http://other:5000/v3"}}
  ec2admin:
    auth_type: password
    cacert: /etc/ssl/ca.pem
    auth:
      auth-url: https://keystone.example.com:5000/v3
      username: admin
      project_id: 0123abc
      user_domain_name: Default
      project_domain_id: default
`), 0o600)
	os.WriteFile(secure, []byte("clouds:\n  ec2admin:\n    auth:\n      password: s3cret\n"), 0o600)
	t.Setenv("OS_CLIENT_CONFIG_FILE", clouds)
	t.Setenv("OS_CLIENT_SECURE_FILE", secure)
	vars, path, err := cloudVars("ec2admin")
	if err != nil || path != clouds {
		t.Fatalf("cloudVars = %v, %q", err, path)
	}
	for name, want := range map[string]string{
		"OS_AUTH_URL": "https://keystone.example.com:5000/v3", "OS_USERNAME": "admin", "OS_PASSWORD": "s3cret",
		"OS_PROJECT_ID": "0123abc", "OS_PROJECT_NAME": "", "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_ID": "default",
		"OS_AUTH_TYPE": "password", "OS_CACERT": "/etc/ssl/ca.pem",
	} {
		if vars[name] != want {
			t.Errorf("%s = %q, want %q", name, vars[name], want)
		}
	}
	if _, _, err := cloudVars("missing"); err == nil || !strings.Contains(err.Error(), "no clouds.yaml names it") {
		t.Errorf("a cloud no file names: %v", err)
	}
	os.WriteFile(clouds, []byte(`clouds:
  noverify: {verify: false, auth: {auth_url: 'https://ks/v3'}}
  insecure: {insecure: true, auth: {auth_url: 'https://ks/v3'}}
  vendor: {profile: some-cloud, auth: {username: u}}
`), 0o600)
	for cloud, want := range map[string]string{"noverify": "turning TLS verification off is not supported", "insecure": "turning TLS verification off is not supported", "vendor": "profile (a vendor's settings) is not supported"} {
		if _, _, err := cloudVars(cloud); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("cloud %s: %v; want %q", cloud, err, want)
		}
	}
}

// As openstacksdk reads a cloud (found by a review): a project given
// beside auth or as a tenant, and domain_name/domain_id for both domains;
// an OS_* variable that is set wins over the file; '~' in cacert is the
// home directory.
func TestCloudVarsAsOpenstacksdk(t *testing.T) {
	dir := t.TempDir()
	clouds := filepath.Join(dir, "clouds.yaml")
	os.WriteFile(clouds, []byte(`
clouds:
  top:
    project_name: ops
    cacert: ~/ca.pem
    auth: {auth_url: "http://ks/v3", username: admin, domain_name: corp}
  tenant:
    auth: {tenant_id: t-1, domain_id: d-1, user_domain_name: Default}
`), 0o600)
	t.Setenv("OS_CLIENT_CONFIG_FILE", clouds)
	t.Setenv("OS_CLIENT_SECURE_FILE", filepath.Join(dir, "none.yaml"))
	t.Setenv("HOME", dir)
	vars, _, err := cloudVars("top")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"OS_PROJECT_NAME": "ops", "OS_USER_DOMAIN_NAME": "corp", "OS_PROJECT_DOMAIN_NAME": "corp", "OS_CACERT": filepath.Join(dir, "ca.pem")} {
		if vars[name] != want {
			t.Errorf("top: %s = %q, want %q", name, vars[name], want)
		}
	}
	if vars, _, err = cloudVars("tenant"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"OS_PROJECT_ID": "t-1", "OS_USER_DOMAIN_NAME": "Default", "OS_USER_DOMAIN_ID": "d-1", "OS_PROJECT_DOMAIN_ID": "d-1"} {
		if vars[name] != want {
			t.Errorf("tenant: %s = %q, want %q", name, vars[name], want)
		}
	}
	t.Setenv("OS_CLOUD", "top")
	t.Setenv("OS_PASSWORD", "from-env")
	t.Setenv("OS_USERNAME", "")
	get, from, err := openrcLookup()
	if err != nil || get("OS_PASSWORD") != "from-env" || get("OS_USERNAME") != "admin" || !strings.Contains(from, `cloud "top"`) {
		t.Errorf("lookup: password %q username %q from %q (%v); want the environment's password over the file", get("OS_PASSWORD"), get("OS_USERNAME"), from, err)
	}
}

// Without OS_CLIENT_CONFIG_FILE, ./clouds.yaml comes before
// ~/.config/openstack/clouds.yaml, as for the openstack CLI.
func TestCloudFilesOrder(t *testing.T) {
	home, work := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("OS_CLIENT_CONFIG_FILE", "")
	t.Setenv("OS_CLIENT_SECURE_FILE", "")
	os.MkdirAll(filepath.Join(home, ".config", "openstack"), 0o700)
	os.WriteFile(filepath.Join(home, ".config", "openstack", "clouds.yaml"), []byte("clouds: {c: {auth: {username: from-home}}}\n"), 0o600)
	t.Chdir(work)
	if vars, _, err := cloudVars("c"); err != nil || vars["OS_USERNAME"] != "from-home" {
		t.Errorf("from the home directory: %v %v", vars["OS_USERNAME"], err)
	}
	os.WriteFile(filepath.Join(work, "clouds.yaml"), []byte("clouds: {c: {auth: {username: from-cwd}}}\n"), 0o600)
	if vars, _, err := cloudVars("c"); err != nil || vars["OS_USERNAME"] != "from-cwd" {
		t.Errorf("./clouds.yaml first: %v %v", vars["OS_USERNAME"], err)
	}
	// OS_CLIENT_CONFIG_FILE comes first, but a missing one is passed over.
	t.Setenv("OS_CLIENT_CONFIG_FILE", filepath.Join(work, "missing.yaml"))
	if vars, _, err := cloudVars("c"); err != nil || vars["OS_USERNAME"] != "from-cwd" {
		t.Errorf("a missing OS_CLIENT_CONFIG_FILE: %v %v", vars["OS_USERNAME"], err)
	}
}

// Only a user's password is used: an identity provider's user name and
// password (v3oidcpassword) must not go to Keystone's password method,
// and an application credential lists no credentials.
func TestSyncAuthTypes(t *testing.T) {
	cfg := configs.Default()
	for authType, want := range map[string]string{
		"": "", "password": "", "v3password": "",
		"v3oidcpassword":          "cannot use auth type v3oidcpassword",
		"token":                   "cannot use auth type token",
		"v3applicationcredential": "cannot use an application credential",
	} {
		vars := map[string]string{"OS_AUTH_URL": "http://ks:5000/v3", "OS_USERNAME": "admin", "OS_PASSWORD": "pw", "OS_AUTH_TYPE": authType}
		_, err := adminKeystoneFrom(&cfg, func(name string) string { return vars[name] })
		if (want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("auth type %q: %v; want %q", authType, err, want)
		}
	}
}

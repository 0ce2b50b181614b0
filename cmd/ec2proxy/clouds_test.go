package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	os.WriteFile(clouds, []byte("clouds:\n  insecure: {verify: false, auth: {auth_url: 'https://ks/v3'}}\n"), 0o600)
	if _, _, err := cloudVars("insecure"); err == nil || !strings.Contains(err.Error(), "verify: false is not supported") {
		t.Errorf("verify: false: %v", err)
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
}

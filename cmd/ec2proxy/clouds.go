package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// openrcLookup returns where creds sync reads the admin account from: the
// OS_* variables, or, with OS_CLOUD set, that cloud of a clouds.yaml as
// the openstack CLI finds it (kolla-ansible and openstack-ansible write
// one), presented as the same OS_* names. from says which, for messages.
func openrcLookup() (lookup func(string) string, from string, err error) {
	cloud := os.Getenv("OS_CLOUD")
	if cloud == "" {
		return os.Getenv, "", nil
	}
	vars, path, err := cloudVars(cloud)
	if err != nil {
		return nil, "", err
	}
	return func(name string) string { return vars[name] }, fmt.Sprintf("cloud %q of %s", cloud, path), nil
}

// cloudFiles are the places a clouds.yaml (or secure.yaml) is looked for,
// in the openstack CLI's order.
func cloudFiles(name, envVar string) []string {
	if p := os.Getenv(envVar); p != "" {
		return []string{p}
	}
	files := []string{name}
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".config", "openstack", name))
	}
	return append(files, filepath.Join("/etc/openstack", name))
}

// cloudVars reads cloud from the first clouds.yaml found, with its
// secure.yaml's values (passwords, usually) over it.
func cloudVars(cloud string) (vars map[string]string, path string, err error) {
	entry, path, err := cloudEntry(cloudFiles("clouds.yaml", "OS_CLIENT_CONFIG_FILE"), cloud)
	if err != nil {
		return nil, "", err
	}
	if entry == nil {
		return nil, "", fmt.Errorf("OS_CLOUD=%s: no clouds.yaml names it (looked in %s)", cloud, strings.Join(cloudFiles("clouds.yaml", "OS_CLIENT_CONFIG_FILE"), ", "))
	}
	secure, _, err := cloudEntry(cloudFiles("secure.yaml", "OS_CLIENT_SECURE_FILE"), cloud)
	if err != nil {
		return nil, "", err
	}
	merge(entry, secure)
	if v, ok := entry["verify"].(bool); ok && !v {
		return nil, "", fmt.Errorf("cloud %q of %s: verify: false is not supported: give its CA as cacert", cloud, path)
	}
	auth, _ := entry["auth"].(map[string]any)
	vars = map[string]string{}
	for name, key := range map[string]string{
		"OS_AUTH_URL": "auth_url", "OS_USERNAME": "username", "OS_PASSWORD": "password",
		"OS_PROJECT_NAME": "project_name", "OS_PROJECT_ID": "project_id",
		"OS_USER_DOMAIN_NAME": "user_domain_name", "OS_USER_DOMAIN_ID": "user_domain_id",
		"OS_PROJECT_DOMAIN_NAME": "project_domain_name", "OS_PROJECT_DOMAIN_ID": "project_domain_id",
	} {
		vars[name] = scalar(auth[key])
	}
	for name, key := range map[string]string{"OS_AUTH_TYPE": "auth_type", "OS_CACERT": "cacert", "OS_CERT": "cert", "OS_KEY": "key"} {
		vars[name] = scalar(entry[key])
	}
	return vars, path, nil
}

// cloudEntry returns clouds.<cloud> of the first of files that exists
// (nil if none does, or it has no such cloud), with '-' in keys read as
// '_', as the openstack CLI does.
func cloudEntry(files []string, cloud string) (map[string]any, string, error) {
	for _, path := range files {
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		var doc struct {
			Clouds map[string]any `yaml:"clouds"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
		entry, _ := normalized(doc.Clouds[cloud]).(map[string]any)
		return entry, path, nil
	}
	return nil, "", nil
}

func normalized(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[strings.ReplaceAll(k, "-", "_")] = normalized(v)
	}
	return out
}

// merge copies over's values into into, maps merged key by key.
func merge(into, over map[string]any) {
	for k, v := range over {
		sub, isMap := v.(map[string]any)
		if cur, ok := into[k].(map[string]any); ok && isMap {
			merge(cur, sub)
			continue
		}
		into[k] = v
	}
}

func scalar(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

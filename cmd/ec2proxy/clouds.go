package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// openrcLookup returns where creds sync reads the admin account from: the
// OS_* variables, or, with OS_CLOUD set, that cloud of a clouds.yaml as
// the openstack CLI finds it (kolla-ansible and openstack-ansible write
// one), presented as the same OS_* names; an OS_* variable that is set
// still wins, as with the openstack CLI. from says which, for messages.
func openrcLookup() (lookup func(string) string, from string, err error) {
	cloud := os.Getenv("OS_CLOUD")
	if cloud == "" {
		return os.Getenv, "", nil
	}
	vars, path, err := cloudVars(cloud)
	if err != nil {
		return nil, "", err
	}
	lookup = func(name string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return vars[name]
	}
	return lookup, fmt.Sprintf("cloud %q of %s", cloud, path), nil
}

// cloudFiles are the files a clouds.yaml (base "clouds") or secure.yaml
// ("secure") is looked for in, in openstacksdk's order: the file envVar
// names, then the working directory, the user's and the site's
// configuration directories.
func cloudFiles(base, envVar string) []string {
	var files []string
	if p := os.Getenv(envVar); p != "" {
		files = append(files, p)
	}
	dirs := []string{"."}
	if xdg := os.Getenv("XDG_CONFIG_HOME"); xdg != "" {
		dirs = append(dirs, filepath.Join(xdg, "openstack"))
	} else if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".config", "openstack"))
	}
	dirs = append(dirs, "/etc/xdg/openstack", "/etc/openstack")
	for _, d := range dirs {
		for _, ext := range []string{".yaml", ".yml", ".json"} {
			files = append(files, filepath.Join(d, base+ext))
		}
	}
	return files
}

// cloudVars reads cloud from the first clouds.yaml found, with its
// secure.yaml's values (passwords, usually) over it, as OS_* settings.
func cloudVars(cloud string) (vars map[string]string, path string, err error) {
	entry, path, err := cloudEntry(cloudFiles("clouds", "OS_CLIENT_CONFIG_FILE"), cloud)
	if err != nil {
		return nil, "", err
	}
	if entry == nil {
		return nil, "", fmt.Errorf("OS_CLOUD=%s: no clouds.yaml names it (looked in %s)", cloud, strings.Join(cloudFiles("clouds", "OS_CLIENT_CONFIG_FILE"), ", "))
	}
	secure, _, err := cloudEntry(cloudFiles("secure", "OS_CLIENT_SECURE_FILE"), cloud)
	if err != nil {
		return nil, "", err
	}
	merge(entry, secure)
	where := fmt.Sprintf("cloud %q of %s", cloud, path)
	switch {
	case entry["verify"] == false || entry["insecure"] == true:
		return nil, "", fmt.Errorf("%s: turning TLS verification off is not supported: give Keystone's CA as cacert", where)
	case entry["profile"] != nil:
		return nil, "", fmt.Errorf("%s: profile (a vendor's settings) is not supported: give auth.auth_url", where)
	}
	auth, _ := entry["auth"].(map[string]any)
	if auth == nil {
		auth = map[string]any{}
	}
	// As openstacksdk does: a project given beside auth, or as a tenant,
	// and domain_* for both the user's and the project's domain.
	for _, alias := range [][2]string{{"tenant_name", "project_name"}, {"tenant_id", "project_id"}} {
		if auth[alias[1]] == nil {
			auth[alias[1]] = firstOf(auth[alias[0]], entry[alias[1]], entry[alias[0]])
		}
	}
	for _, kind := range []string{"user_domain_", "project_domain_"} {
		for _, field := range []string{"name", "id"} {
			if auth[kind+field] == nil {
				auth[kind+field] = auth["domain_"+field]
			}
		}
	}
	vars = map[string]string{}
	for name, key := range map[string]string{
		"OS_AUTH_URL": "auth_url", "OS_USERNAME": "username", "OS_USER_ID": "user_id", "OS_PASSWORD": "password",
		"OS_PROJECT_NAME": "project_name", "OS_PROJECT_ID": "project_id",
		"OS_USER_DOMAIN_NAME": "user_domain_name", "OS_USER_DOMAIN_ID": "user_domain_id",
		"OS_PROJECT_DOMAIN_NAME": "project_domain_name", "OS_PROJECT_DOMAIN_ID": "project_domain_id",
	} {
		vars[name] = scalar(auth[key])
	}
	for name, key := range map[string]string{"OS_AUTH_TYPE": "auth_type", "OS_CACERT": "cacert", "OS_CERT": "cert", "OS_KEY": "key"} {
		vars[name] = scalar(entry[key])
	}
	for _, name := range []string{"OS_CACERT", "OS_CERT", "OS_KEY"} {
		if rest, ok := strings.CutPrefix(vars[name], "~/"); ok {
			if home, err := os.UserHomeDir(); err == nil {
				vars[name] = filepath.Join(home, rest)
			}
		}
	}
	return vars, path, nil
}

// cloudEntry returns clouds.<cloud> of the first of files that can be
// read (nil if none can, or it has no such cloud), with '-' in keys read
// as '_', as the openstack CLI does.
func cloudEntry(files []string, cloud string) (map[string]any, string, error) {
	for _, path := range files {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			continue // as openstacksdk: someone else's file
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

func firstOf(vs ...any) any {
	for _, v := range vs {
		if v != nil {
			return v
		}
	}
	return nil
}

func scalar(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

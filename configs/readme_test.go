package configs

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every setting is documented in the README's configuration table, either by
// its path or in a `parent.{a,b}` group.
func TestREADMEDocumentsEverySetting(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	groups := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_.\\[\\]]+)\\.\\{([a-z_,]+)\\}`").FindAllStringSubmatch(readme, -1) {
		for _, leaf := range strings.Split(m[2], ",") {
			groups[m[1]+"."+leaf] = true
		}
	}
	var c Config
	for _, f := range leaves(reflectValue(&c), "") {
		path := f.path
		if strings.HasPrefix(path, "routes") {
			continue // a list of structs: documented as routes[].path_prefix / routes[].backend
		}
		parent := path[:max(strings.LastIndexByte(path, '.'), 0)]
		leaf := path[strings.LastIndexByte(path, '.')+1:]
		if !strings.Contains(readme, "`"+path+"`") && !groups[path] && !strings.Contains(readme, "`"+parent+".{") &&
			!strings.Contains(readme, "`"+parent+"`, `."+leaf+"`") {
			t.Errorf("README does not document %s", path)
		}
	}
	for _, p := range []string{"routes[].path_prefix", "routes[].backend"} {
		if !strings.Contains(readme, "`"+p+"`") {
			t.Errorf("README does not document %s", p)
		}
	}
}

package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment override. EnvConfigFile names the
// configuration file; variables under EnvTestPrefix belong to the test suite
// and are ignored here.
const (
	EnvPrefix     = "EC2PROXY_"
	EnvConfigFile = "EC2PROXY_CONFIG"
	EnvTestPrefix = "EC2PROXY_TEST_"
)

// Problems lists everything wrong with a configuration, so an operator fixes
// them in one pass.
type Problems []string

func (p Problems) Error() string {
	return "invalid configuration:\n  - " + strings.Join(p, "\n  - ")
}

// Load reads the YAML file at path (none if path is ""), applies environment
// overrides from environ (os.Environ() form) and validates the result.
// Unknown keys and unknown EC2PROXY_ variables are errors. The error, if any,
// is Problems listing every problem found.
func Load(path string, environ []string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, Problems{fmt.Sprintf("reading %s: %v", path, errors.Unwrap(err))}
		}
	}
	return Parse(data, environ)
}

// Parse is Load for YAML already in memory.
func Parse(data []byte, environ []string) (*Config, error) {
	cfg := Default()
	problems, readable := decodeYAML(data, &cfg)
	if !readable {
		// A syntax error or a repeated key: what was read is partial, and
		// checking it would report settings the file does set as missing.
		return nil, problems
	}
	problems = append(problems, applyEnv(&cfg, environ)...)
	cfg.resolveDefaults()
	problems = append(problems, cfg.Validate()...)
	if len(problems) > 0 {
		return nil, problems
	}
	return &cfg, nil
}

// decodeYAML reads data into cfg. Type errors (a wrong value, an unknown
// key) leave the rest read; readable is false when the file could not be
// read as a whole.
func decodeYAML(data []byte, cfg *Config) (p Problems, readable bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	if err == nil {
		if secondDocument(dec) {
			return Problems{oneDocument}, false
		}
		return nil, true
	}
	if errors.Is(err, io.EOF) { // an empty file
		return nil, true
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return Problems{err.Error()}, false
	}
	readable = true
	if secondDocument(dec) { // reported with the type errors, not after their fix
		p = append(p, oneDocument)
		readable = false
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	var keys []yamlKey
	collectKeys(&root, "", &keys)
	for _, e := range te.Errors {
		if strings.Contains(e, "already defined") {
			readable = false // yaml.v3 stops at a repeated key: nothing was read
		}
		e = strings.Replace(e, "in type configs.", "in section ", 1)
		if path := keyForError(keys, e); path != "" {
			e = path + ": " + e
		}
		if strings.Contains(e, "into time.Duration") {
			e += "; write durations with a unit, such as 500ms, 10s or 5m"
		}
		p = append(p, e)
	}
	return p, readable
}

// secondDocument reports whether dec, past the first document, holds
// another that is not empty: nobody reads it, and its settings would look
// set and do nothing (found by a review).
func secondDocument(dec *yaml.Decoder) bool {
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil || len(more.Content) > 0 && more.Content[0].Tag != "!!null" {
			return true
		}
	}
}

const oneDocument = "the file must hold one YAML document: remove the '---' line and merge what follows it into the settings above"

// yamlKey is one mapping key of the file, to name the setting in yaml.v3's
// type errors, which only give a line.
type yamlKey struct {
	line        int
	path, name  string
	scalarValue string
}

func collectKeys(n *yaml.Node, prefix string, out *[]yamlKey) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := prefix
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", prefix, i)
			}
			collectKeys(c, p, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + p
			}
			*out = append(*out, yamlKey{line: k.Line, path: p, name: k.Value, scalarValue: v.Value})
			collectKeys(v, p, out)
		}
	}
}

// keyForError finds the key a "line N: ..." error is about: on that line,
// the key named in "field X not found", or the one whose value is quoted.
func keyForError(keys []yamlKey, e string) string {
	var line int
	if _, err := fmt.Sscanf(e, "line %d:", &line); err != nil {
		return ""
	}
	first := ""
	for _, k := range keys {
		if k.line != line {
			continue
		}
		if strings.Contains(e, "field "+k.name+" not found") || (k.scalarValue != "" && strings.Contains(e, "`"+k.scalarValue+"`")) {
			return k.path
		}
		if first == "" {
			first = k.path
		}
	}
	return first
}

// field is one settable leaf of Config with its YAML path.
type field struct {
	path  string // e.g. keystone.service_user.password
	value reflect.Value
}

// leaves lists every scalar or list field reachable from v, with its path.
func leaves(v reflect.Value, prefix string) []field {
	var out []field
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag, opts, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		fv := v.Field(i)
		if opts == "inline" {
			out = append(out, leaves(fv, prefix)...)
			continue
		}
		if tag == "" || tag == "-" {
			continue
		}
		path := tag
		if prefix != "" {
			path = prefix + "." + tag
		}
		if fv.Kind() == reflect.Struct {
			out = append(out, leaves(fv, path)...)
			continue
		}
		out = append(out, field{path: path, value: fv})
	}
	return out
}

// EnvName is the environment variable overriding the YAML key path.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

func applyEnv(cfg *Config, environ []string) Problems {
	byName := map[string]field{}
	var scratch Config
	for _, f := range leaves(reflect.ValueOf(&scratch).Elem(), "") {
		byName[EnvName(f.path)] = f
	}
	var problems Problems
	var names []string
	values := map[string]string{}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || name == EnvConfigFile || strings.HasPrefix(name, EnvTestPrefix) {
			continue
		}
		names = append(names, name)
		values[name] = value
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := byName[name]; !ok {
			problems = append(problems, fmt.Sprintf("environment variable %s does not match any setting", name))
			continue
		}
		target := lookupField(cfg, byName[name].path)
		if err := setFromString(target, values[name]); err != nil {
			problems = append(problems, fmt.Sprintf("environment variable %s: %v", name, err))
		}
	}
	return problems
}

func lookupField(cfg *Config, path string) reflect.Value {
	for _, f := range leaves(reflect.ValueOf(cfg).Elem(), "") {
		if f.path == path {
			return f.value
		}
	}
	panic("configs: no field " + path)
}

var durationType = reflect.TypeOf(time.Duration(0))

func setFromString(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 500ms or 5m", s)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var list []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("cannot be set from the environment; use the configuration file")
	}
	return nil
}

// resolveDefaults fills settings whose default depends on other settings.
func (c *Config) resolveDefaults() {
	if c.Credentials.Store == "" {
		c.Credentials.Store = StoreFile
		if len(c.Redis.Addrs) > 0 {
			c.Credentials.Store = StoreRedis
		}
	}
}

func reflectValue(c *Config) reflect.Value { return reflect.ValueOf(c).Elem() }

package policy

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Names the engine itself looks up.
const (
	// ActionPrefix starts the name of a rule that decides one EC2 action:
	// "ec2:RunInstances".
	ActionPrefix = "ec2:"
	// DefaultRule decides the actions that have no rule of their own.
	DefaultRule = "default"
	// AdminRule, when the file defines it, decides is_admin:True; without
	// it a caller is admin if it has the role "admin".
	AdminRule = "context_is_admin"
)

// Error is one problem in a policy file.
type Error struct {
	Line int    // line in the file, from 1; 0 when unknown
	Rule string // name of the rule; "" for a problem with the whole file
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors lists every problem found in a policy file, in file order, so an
// operator fixes them in one pass. Parse returns it.
type Errors []*Error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return "invalid policy:\n  - " + strings.Join(msgs, "\n  - ")
}

// Parse compiles a policy file: a YAML or JSON mapping of rule names to rules
// in the oslo.policy language. The error, if any, is Errors listing every
// broken rule. The Policy is immutable and safe for concurrent use.
func Parse(data []byte) (*Policy, error) {
	var c compiler
	rules := c.decode(data)
	c.link(rules)
	if len(c.errs) > 0 {
		sort.SliceStable(c.errs, func(i, j int) bool { return c.errs[i].Line < c.errs[j].Line })
		return nil, c.errs
	}
	p := &Policy{rules: c.byName, actions: map[string]*rule{}}
	for _, r := range rules {
		if action, ok := strings.CutPrefix(r.name, ActionPrefix); ok {
			name, ascii := dispatchName(action)
			switch other := p.actions[name]; {
			case !ascii || len(action) > maxActionLen || name == "":
				c.errorf(r.line, r.name, "not an EC2 action name (ASCII, at most %d characters)", maxActionLen)
			case other != nil:
				c.errorf(r.line, r.name, "the same action as %s: the EC2 API runs both as %s", other.name, name)
			default:
				p.actions[name] = r
				p.names = append(p.names, action)
			}
		}
	}
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	sort.Strings(p.names)
	p.def = c.byName[DefaultRule]
	p.admin = c.byName[AdminRule]
	return p, nil
}

type compiler struct {
	errs   Errors
	byName map[string]*rule
}

func (c *compiler) errorf(line int, rule, format string, args ...any) {
	c.errs = append(c.errs, &Error{Line: line, Rule: rule, Msg: fmt.Sprintf(format, args...)})
}

// decode reads the mapping and compiles each rule on its own.
func (c *compiler) decode(data []byte) []*rule {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, after, ok := strings.Cut(rest, ": "); ok {
				if l, err := strconv.Atoi(n); err == nil {
					line, msg = l, after
				}
			}
		}
		c.errorf(line, "", "not valid YAML or JSON: %s", msg)
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		c.errorf(0, "", "the file is empty: it defines no rules")
		return nil
	}
	root := deref(doc.Content[0])
	switch {
	case root == nil, root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null":
		c.errorf(0, "", "the file is empty: it defines no rules")
		return nil
	case root.Kind != yaml.MappingNode:
		c.errorf(root.Line, "", "the file is %s, not a mapping of rule names to rules", kindName(root))
		return nil
	case len(root.Content) == 0:
		c.errorf(root.Line, "", "the file defines no rules (to refuse everything, write default: \"!\")")
		return nil
	}
	c.byName = make(map[string]*rule, len(root.Content)/2)
	var rules []*rule
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], deref(root.Content[i+1])
		if key.Kind != yaml.ScalarNode {
			c.errorf(key.Line, "", "a rule name must be a string, not %s", kindName(key))
			continue
		}
		r := &rule{name: key.Value, line: key.Line}
		if prev, ok := c.byName[r.name]; ok {
			c.errorf(r.line, r.name, "defined twice (first on line %d)", prev.line)
			continue
		}
		c.byName[r.name] = r
		rules = append(rules, r)
		if r.name == "" {
			c.errorf(r.line, "", "a rule name is empty")
			continue
		}
		if action, ok := strings.CutPrefix(r.name, ActionPrefix); ok && !isActionName(action) {
			c.errorf(r.line, r.name, "%q is not an EC2 action name (letters and digits, like ec2:RunInstances; there are no wildcards)", action)
		}
		var msgs []string
		r.root, msgs = compileValue(val)
		for _, m := range msgs {
			c.errorf(r.line, r.name, "%s", m)
		}
		if len(msgs) > 0 {
			r.root = nil
		}
	}
	return rules
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		}
		return "a " + strings.TrimLeft(n.ShortTag(), "!") + " value"
	}
	return "not a value"
}

func isActionName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// compileValue compiles one rule: a string, or oslo's old list form.
func compileValue(v *yaml.Node) (*node, []string) {
	if v == nil {
		return nil, []string{"no rule given"}
	}
	switch {
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str":
		return compileText(v.Value)
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
		return nil, []string{`no rule given (write "" to allow everyone, "!" to allow no one)`}
	case v.Kind == yaml.SequenceNode:
		return compileList(v)
	}
	return nil, []string{fmt.Sprintf("the rule is %s, not a string (quote it)", kindName(v))}
}

// compileList compiles oslo's old list form: a list of lists of checks, the
// inner lists joined by "and", the outer by "or". As in oslo, [] allows
// everyone, a string stands for a one-check list, empty inner lists are
// skipped, and a list of only empty lists allows no one.
func compileList(v *yaml.Node) (*node, []string) {
	if len(v.Content) == 0 {
		return &node{op: opTrue, text: "@"}, nil
	}
	var msgs []string
	or := &node{op: opOr}
	for _, item := range v.Content {
		item = deref(item)
		checks := []*yaml.Node{item}
		if item.Kind == yaml.SequenceNode {
			checks = item.Content
		}
		and := &node{op: opAnd}
		for _, s := range checks {
			s = deref(s)
			if s.Kind != yaml.ScalarNode || s.ShortTag() != "!!str" {
				msgs = append(msgs, fmt.Sprintf("list form: %s where a check string belongs", kindName(s)))
				continue
			}
			if s.Value == "" || strings.ContainsFunc(s.Value, unicode.IsSpace) ||
				strings.HasPrefix(s.Value, "(") || strings.HasSuffix(s.Value, ")") {
				msgs = append(msgs, fmt.Sprintf("list form: %q is not one check (each element is a single check; the inner lists are joined by and, the outer by or)", s.Value))
				continue
			}
			n, msg := parseCheck(s.Value)
			if msg != "" {
				msgs = append(msgs, msg)
				continue
			}
			and.kids = append(and.kids, n)
		}
		switch len(and.kids) {
		case 0:
		case 1:
			or.kids = append(or.kids, and.kids[0])
		default:
			or.kids = append(or.kids, and)
		}
	}
	switch {
	case len(msgs) > 0:
		return nil, msgs
	case len(or.kids) == 0:
		return &node{op: opFalse, text: "!"}, nil
	case len(or.kids) == 1:
		return or.kids[0], nil
	}
	return or, nil
}

// link resolves rule references and refuses unknown ones and cycles.
// is_admin checks refer to context_is_admin when the file defines it.
func (c *compiler) link(rules []*rule) {
	admin := c.byName[AdminRule]
	deps := make(map[*rule][]edge, len(rules))
	for _, r := range rules {
		walk(r.root, func(n *node) {
			switch {
			case n.op == opRule:
				n.ref = c.byName[n.name]
				if n.ref == nil {
					c.errorf(r.line, r.name, "%q refers to no rule%s", n.text, c.suggest(n.name))
					return
				}
				deps[r] = append(deps[r], edge{n.ref, n.text})
			case n.op == opAdmin && admin != nil:
				deps[r] = append(deps[r], edge{admin, n.text})
			}
		})
	}
	const (
		unseen = iota
		active
		done
	)
	state := make(map[*rule]int, len(rules))
	var stack []edge
	var visit func(r *rule)
	visit = func(r *rule) {
		state[r] = active
		for _, e := range deps[r] {
			switch state[e.to] {
			case unseen:
				stack = append(stack, e)
				visit(e.to)
				stack = stack[:len(stack)-1]
			case active:
				i := len(stack)
				for i > 0 && stack[i-1].to != e.to {
					i--
				}
				path := []string{e.to.name}
				for _, s := range stack[i:] {
					path = append(path, s.via)
				}
				path = append(path, e.via)
				hint := ""
				if slices.ContainsFunc(path, func(s string) bool { return strings.HasPrefix(s, "is_admin:") }) {
					hint = " (is_admin evaluates " + AdminRule + ")"
				}
				c.errorf(e.to.line, e.to.name, "cycle: %s%s", strings.Join(path, " -> "), hint)
			}
		}
		state[r] = done
	}
	for _, r := range rules {
		if state[r] == unseen {
			visit(r)
		}
	}
}

// edge is a dependency of one rule on another, via a check.
type edge struct {
	to  *rule
	via string
}

func (c *compiler) suggest(name string) string {
	for other := range c.byName {
		if strings.EqualFold(other, name) {
			return fmt.Sprintf(" (did you mean rule:%s?)", other)
		}
	}
	return ""
}

func walk(n *node, fn func(*node)) {
	if n == nil {
		return
	}
	fn(n)
	for _, k := range n.kids {
		walk(k, fn)
	}
}

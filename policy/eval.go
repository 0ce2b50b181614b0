package policy

import (
	"sort"
	"strings"
)

// Creds is the caller: the identity of the Keystone token, or of the
// credential record in standalone mode. An empty field matches nothing.
type Creds struct {
	UserID, UserDomainID       string
	ProjectID, ProjectDomainID string
	Roles                      []string
	TrustID, TrustorID         string
	TrusteeID                  string
	AppCredID                  string // application credential
}

// Target is what the action acts on; %(project_id)s and %(user_id)s in a
// rule are taken from it. For EC2 it is the caller's own project and user.
// An empty field matches nothing.
type Target struct {
	ProjectID, UserID string
}

// Policy is a compiled policy file. It is immutable and safe for concurrent
// use.
type Policy struct {
	rules   map[string]*rule
	actions map[string]*rule // "run_instances" → the rule "ec2:RunInstances" (see dispatchName)
	names   []string         // the actions rules name, as written ("RunInstances"), sorted
	def     *rule            // "default", or nil
	admin   *rule            // "context_is_admin", or nil
}

var (
	noCreds  Creds
	noTarget Target
)

// Authorize decides whether the caller c may perform the EC2 action (the
// Action parameter, like "RunInstances") on t, and returns the name of the
// rule that decided: "ec2:<action>", or "default" for an action without a
// rule of its own, or "" when neither exists (then the action is refused).
// An action is matched to its rule as the backend matches it to a method
// (dispatchName: "runInstances" is RunInstances); one with a byte outside
// ASCII, or longer than 128 bytes, is refused. It allocates nothing.
func (p *Policy) Authorize(action []byte, c *Creds, t *Target) (allowed bool, rule string) {
	r, ok := p.ruleFor(action)
	if !ok {
		return false, ""
	}
	if r == nil {
		if r = p.def; r == nil {
			return false, ""
		}
	}
	if c == nil {
		c = &noCreds
	}
	if t == nil {
		t = &noTarget
	}
	return p.eval(r.root, c, t), r.name
}

// ruleFor is the rule of action's method, nil if it has none; ok is false
// for an action that cannot be matched (see appendDispatchName), or is
// longer than any action: "_" padding is stripped from the method's name,
// so a long one may still run a method with a rule of its own.
func (p *Policy) ruleFor(action []byte) (r *rule, ok bool) {
	if len(action) > maxActionLen {
		return nil, false
	}
	var buf [2 * maxActionLen]byte // a '_' may go before each letter
	name, ok := appendDispatchName(buf[:0], action)
	if !ok {
		return nil, false
	}
	return p.actions[string(name)], true
}

func (p *Policy) eval(n *node, c *Creds, t *Target) bool {
	switch n.op {
	case opTrue:
		return true
	case opRole:
		return hasRole(c.Roles, n.name)
	case opRule:
		return p.eval(n.ref.root, c, t)
	case opAdmin:
		return p.isAdmin(c) == n.admin
	case opField:
		v := c.get(n.field)
		return v != "" && v == n.matchValue(t)
	case opLiteral:
		v := n.matchValue(t)
		return v != "" && v == n.left
	case opNot:
		return !p.eval(n.kids[0], c, t)
	case opAnd:
		for _, k := range n.kids {
			if !p.eval(k, c, t) {
				return false
			}
		}
		return true
	case opOr:
		for _, k := range n.kids {
			if p.eval(k, c, t) {
				return true
			}
		}
	}
	return false // opFalse
}

// isAdmin is is_admin:True: the rule context_is_admin, with the caller's own
// project and user as the target (as nova's check_is_admin did), or without
// that rule the role admin.
func (p *Policy) isAdmin(c *Creds) bool {
	if p.admin == nil {
		return hasRole(c.Roles, "admin")
	}
	t := Target{ProjectID: c.ProjectID, UserID: c.UserID}
	return p.eval(p.admin.root, c, &t)
}

// hasRole compares as oslo.policy does: both lower-cased (str.lower).
// strings.EqualFold also took ſ for s, ς for σ and a few more as equal,
// which Python's lower() keeps apart: a role "ſwiftoperator" passed
// role:swiftoperator (found by a review).
func hasRole(roles []string, name string) bool {
	for _, r := range roles {
		if sameLower(r, name) {
			return true
		}
	}
	return false
}

// sameLower reports whether a and b are equal once lower-cased; without
// allocating when both are ASCII, as role names are.
func sameLower(a, b string) bool {
	if !isASCII(a) || !isASCII(b) {
		//lint:ignore SA6005 EqualFold is what differed from Python's lower() (see hasRole)
		return strings.ToLower(a) == strings.ToLower(b)
	}
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func (c *Creds) get(f field) string {
	switch f {
	case fieldUserID:
		return c.UserID
	case fieldUserDomainID:
		return c.UserDomainID
	case fieldProjectID:
		return c.ProjectID
	case fieldProjectDomainID:
		return c.ProjectDomainID
	case fieldTrustID:
		return c.TrustID
	case fieldTrustorID:
		return c.TrustorID
	case fieldTrusteeID:
		return c.TrusteeID
	case fieldAppCredID:
		return c.AppCredID
	}
	return ""
}

func (n *node) matchValue(t *Target) string {
	switch n.from {
	case targetProjectID:
		return t.ProjectID
	case targetUserID:
		return t.UserID
	}
	return n.match
}

// Explain is Authorize for people: it also returns the chain of rules and
// checks that decided, like
//
//	["ec2:RunInstances", "rule:project_member", "role:member"]
//
// An "or" that holds shows the operand that held, an "and" that fails the
// operand that failed; an "and" that holds or an "or" that fails shows all
// its operands in order. A "not" shows itself ("not rule:stack_user"). The
// chain is empty when the action has no rule and there is no default rule.
func (p *Policy) Explain(action string, c *Creds, t *Target) (allowed bool, path []string) {
	r, ok := p.ruleFor([]byte(action))
	if !ok {
		return false, nil
	}
	if r == nil {
		if r = p.def; r == nil {
			return false, nil
		}
	}
	if c == nil {
		c = &noCreds
	}
	if t == nil {
		t = &noTarget
	}
	ok, sub := p.explain(r.root, c, t)
	return ok, append([]string{r.name}, sub...)
}

func (p *Policy) explain(n *node, c *Creds, t *Target) (bool, []string) {
	switch n.op {
	case opRule:
		ok, sub := p.explain(n.ref.root, c, t)
		return ok, append([]string{n.text}, sub...)
	case opAdmin:
		if p.admin == nil {
			return p.eval(n, c, t), []string{n.text, "role:admin"}
		}
		own := Target{ProjectID: c.ProjectID, UserID: c.UserID}
		admin, sub := p.explain(p.admin.root, c, &own)
		return admin == n.admin, append([]string{n.text, "rule:" + AdminRule}, sub...)
	case opNot:
		// What made the operand hold or fail would read as the opposite
		// of the outcome: the "not" is the reason.
		return !p.eval(n.kids[0], c, t), []string{n.String()}
	case opAnd, opOr:
		// The operand that short-circuits decides alone; otherwise all do.
		stop := n.op == opOr
		var all []string
		for _, k := range n.kids {
			ok, sub := p.explain(k, c, t)
			if ok == stop {
				return ok, sub
			}
			all = append(all, sub...)
		}
		return !stop, all
	}
	return p.eval(n, c, t), []string{n.text}
}

// Actions returns the EC2 actions that have a rule of their own (without the
// "ec2:" prefix), sorted. Every other action is decided by the default rule.
func (p *Policy) Actions() []string {
	return append([]string(nil), p.names...)
}

// Unused returns the rules, sorted, that decide nothing: neither an action's
// rule, nor "default", nor context_is_admin, nor referred to by one of them.
// A misspelt rule name shows up here.
func (p *Policy) Unused() []string {
	used := map[*rule]bool{}
	var mark func(r *rule)
	mark = func(r *rule) {
		if r == nil || used[r] {
			return
		}
		used[r] = true
		walk(r.root, func(n *node) {
			switch {
			case n.op == opRule:
				mark(n.ref)
			case n.op == opAdmin:
				mark(p.admin)
			}
		})
	}
	mark(p.def)
	mark(p.admin)
	for _, r := range p.actions {
		mark(r)
	}
	var unused []string
	for name, r := range p.rules {
		if !used[r] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	return unused
}

// Rules returns the names of all rules, sorted.
func (p *Policy) Rules() []string {
	names := make([]string, 0, len(p.rules))
	for name := range p.rules {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Rule returns the rule called name in canonical form: its checks as written,
// every nested "and" and "or" in parentheses, so it shows how it was parsed.
func (p *Policy) Rule(name string) (string, bool) {
	r, ok := p.rules[name]
	if !ok {
		return "", false
	}
	return r.root.String(), true
}

package policy

import (
	"fmt"
	"sort"
	"strings"
)

// maxDepth bounds the nesting of parentheses and "not" within one rule.
const maxDepth = 64

type op uint8

const (
	opTrue    op = iota // @, or an empty rule
	opFalse             // !
	opRole              // role:<name>
	opRule              // rule:<name>
	opAdmin             // is_admin:True or is_admin:False
	opField             // <caller field>:<literal or %(target field)s>
	opLiteral           // <literal>:<literal or %(target field)s>
	opNot
	opAnd
	opOr
)

// field is an attribute of the caller (Creds) a generic check compares.
type field uint8

const (
	fieldUserID field = iota + 1
	fieldUserDomainID
	fieldProjectID
	fieldProjectDomainID
	fieldTrustID
	fieldTrustorID
	fieldTrusteeID
	fieldAppCredID
)

// callerFields are the kinds of generic check, named like the keys of
// oslo.context's policy values where one exists.
var callerFields = map[string]field{
	"user_id":           fieldUserID,
	"user_domain_id":    fieldUserDomainID,
	"project_id":        fieldProjectID,
	"project_domain_id": fieldProjectDomainID,
	"trust_id":          fieldTrustID,
	"trustor_id":        fieldTrustorID,
	"trustee_id":        fieldTrusteeID,
	"app_cred_id":       fieldAppCredID,
}

// targetField is an attribute of the Target a match may substitute with
// %(name)s; targetLiteral means the match is a literal.
type targetField uint8

const (
	targetLiteral targetField = iota
	targetProjectID
	targetUserID
)

var targetFields = map[string]targetField{
	"project_id": targetProjectID,
	"user_id":    targetUserID,
}

// node is a compiled rule: a check or an operator over checks.
type node struct {
	op    op
	text  string      // a check as written
	name  string      // opRole: the role; opRule: the rule referred to
	left  string      // opLiteral: the literal on the left of ':'
	field field       // opField
	match string      // opField, opLiteral: the literal to compare with
	from  targetField // opField, opLiteral: or the target field to compare with
	admin bool        // opAdmin: is_admin:True
	ref   *rule       // opRule, once linked
	kids  []*node     // opNot (one), opAnd, opOr
}

type rule struct {
	name string
	line int
	root *node // nil if the rule is broken
}

// String is the rule in canonical form: checks as written, every nested
// and/or in parentheses, so it shows how the rule was parsed.
func (n *node) String() string {
	switch n.op {
	case opNot:
		return "not " + n.kids[0].nested()
	case opAnd, opOr:
		sep := " and "
		if n.op == opOr {
			sep = " or "
		}
		parts := make([]string, len(n.kids))
		for i, k := range n.kids {
			parts[i] = k.nested()
		}
		return strings.Join(parts, sep)
	}
	return n.text
}

func (n *node) nested() string {
	if n.op == opAnd || n.op == opOr {
		return "(" + n.String() + ")"
	}
	return n.String()
}

type tokenKind uint8

const (
	tokCheck tokenKind = iota
	tokAnd
	tokOr
	tokNot
	tokOpen
	tokClose
)

type token struct {
	kind  tokenKind
	text  string
	check *node // tokCheck; nil if the check is broken
}

// compileText compiles a rule string: the problems with each check, then the
// first problem with the structure.
func compileText(s string) (*node, []string) {
	if s == "" {
		return &node{op: opTrue, text: "@"}, nil
	}
	toks, msgs := tokenize(s)
	if len(toks) == 0 {
		return nil, []string{`the rule is blank (write "" or "@" to allow everyone, "!" to allow no one)`}
	}
	p := parser{toks: toks}
	n := p.or(0)
	if p.err == "" && p.pos < len(p.toks) {
		p.unexpected()
	}
	if p.err != "" {
		msgs = append(msgs, p.err)
	}
	if len(msgs) > 0 {
		return nil, msgs
	}
	return n, nil
}

// tokenize splits a rule the way oslo.policy does: at white space, then
// leading "(" and trailing ")" of each word are tokens of their own, and
// and/or/not in any case are operators.
func tokenize(s string) ([]token, []string) {
	var toks []token
	var msgs []string
	for _, word := range strings.Fields(s) {
		for strings.HasPrefix(word, "(") {
			toks = append(toks, token{kind: tokOpen, text: "("})
			word = word[1:]
		}
		clean := strings.TrimRight(word, ")")
		if clean != "" {
			switch strings.ToLower(clean) {
			case "and":
				toks = append(toks, token{kind: tokAnd, text: clean})
			case "or":
				toks = append(toks, token{kind: tokOr, text: clean})
			case "not":
				toks = append(toks, token{kind: tokNot, text: clean})
			default:
				n, msg := parseCheck(clean)
				if msg != "" {
					msgs = append(msgs, msg)
				}
				toks = append(toks, token{kind: tokCheck, text: clean, check: n})
			}
		}
		for range len(word) - len(clean) {
			toks = append(toks, token{kind: tokClose, text: ")"})
		}
	}
	return toks, msgs
}

// parser is a recursive-descent parser with oslo.policy's precedence:
//
//	or   = and { "or" and }
//	and  = not { "and" not }
//	not  = "not" not | "(" or ")" | check
type parser struct {
	toks []token
	pos  int
	err  string // the first problem; parsing stops there
}

func (p *parser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

func (p *parser) fail(format string, args ...any) {
	if p.err == "" {
		p.err = fmt.Sprintf(format, args...)
	}
}

func (p *parser) or(depth int) *node {
	n := &node{op: opOr}
	for {
		k := p.and(depth)
		if p.err != "" {
			return nil
		}
		n.kids = appendFlat(n.kids, k, opOr)
		if t, ok := p.peek(); !ok || t.kind != tokOr {
			break
		}
		p.pos++
	}
	if len(n.kids) == 1 {
		return n.kids[0]
	}
	return n
}

func (p *parser) and(depth int) *node {
	n := &node{op: opAnd}
	for {
		k := p.not(depth)
		if p.err != "" {
			return nil
		}
		n.kids = appendFlat(n.kids, k, opAnd)
		if t, ok := p.peek(); !ok || t.kind != tokAnd {
			break
		}
		p.pos++
	}
	if len(n.kids) == 1 {
		return n.kids[0]
	}
	return n
}

func appendFlat(kids []*node, k *node, o op) []*node {
	if k.op == o {
		return append(kids, k.kids...)
	}
	return append(kids, k)
}

func (p *parser) not(depth int) *node {
	if depth > maxDepth {
		p.fail("nested more than %d deep", maxDepth)
		return nil
	}
	t, ok := p.peek()
	if !ok {
		p.fail("%q at the end needs a check after it", p.toks[p.pos-1].text)
		return nil
	}
	switch t.kind {
	case tokCheck:
		p.pos++
		if t.check == nil { // already reported by tokenize
			return &node{op: opFalse}
		}
		return t.check
	case tokNot:
		p.pos++
		k := p.not(depth + 1)
		if p.err != "" {
			return nil
		}
		return &node{op: opNot, kids: []*node{k}}
	case tokOpen:
		p.pos++
		if t, ok := p.peek(); ok && t.kind == tokClose {
			p.fail("empty parentheses")
			return nil
		}
		n := p.or(depth + 1)
		if p.err != "" {
			return nil
		}
		if t, ok := p.peek(); !ok {
			p.fail("unbalanced parentheses: a ( is not closed")
			return nil
		} else if t.kind != tokClose {
			p.unexpected()
			return nil
		}
		p.pos++
		return n
	}
	p.unexpected()
	return nil
}

// unexpected reports the token at p.pos, which cannot follow what came
// before it.
func (p *parser) unexpected() {
	t := p.toks[p.pos]
	var prev token
	if p.pos > 0 {
		prev = p.toks[p.pos-1]
	}
	switch {
	case t.kind == tokClose && p.pos > 0 && (prev.kind == tokAnd || prev.kind == tokOr || prev.kind == tokNot):
		p.fail("%q needs a check after it, found )", prev.text)
	case t.kind == tokClose:
		p.fail("unbalanced parentheses: ) without a matching (")
	case t.kind == tokAnd || t.kind == tokOr:
		if p.pos == 0 || prev.kind == tokOpen {
			p.fail("%q needs a check before it", t.text)
		} else {
			p.fail("%q cannot follow %q", t.text, prev.text)
		}
	default: // a check, "not" or "(" right after a check or ")"
		p.fail("missing \"and\" or \"or\" between %q and %q", prev.text, t.text)
	}
}

// parseCheck compiles one check: @, !, or kind:match.
func parseCheck(s string) (*node, string) {
	switch s {
	case "@":
		return &node{op: opTrue, text: s}, ""
	case "!":
		return &node{op: opFalse, text: s}, ""
	}
	kind, match, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Sprintf("%q is not a check (write kind:value, @ or !)", s)
	}
	n := &node{text: s}
	switch kind {
	case "rule":
		if match == "" {
			return nil, fmt.Sprintf("%q names no rule", s)
		}
		n.op, n.name = opRule, match
		return n, ""
	case "role":
		if match == "" {
			return nil, fmt.Sprintf("%q names no role", s)
		}
		if strings.Contains(match, "%") {
			return nil, fmt.Sprintf("%q: a role is a name, not taken from the target", s)
		}
		n.op, n.name = opRole, match
		return n, ""
	case "is_admin":
		switch strings.ToLower(match) {
		case "true":
			n.op, n.admin = opAdmin, true
		case "false":
			n.op = opAdmin
		default:
			return nil, fmt.Sprintf("%q: is_admin is True or False", s)
		}
		return n, ""
	case "http", "https":
		return nil, fmt.Sprintf("%q: http and https checks are not supported (ec2proxy calls no service to authorize)", s)
	case "domain_id":
		return nil, fmt.Sprintf("%q: domain_id is the scope of a domain-scoped token, which an EC2 caller never has; use project_domain_id or user_domain_id", s)
	case "":
		return nil, fmt.Sprintf("%q: nothing before the colon", s)
	}
	if f, ok := callerFields[kind]; ok {
		n.op, n.field = opField, f
	} else if lit, ok := literal(kind); ok {
		n.op, n.left = opLiteral, lit
	} else {
		return nil, fmt.Sprintf("%q: unknown check kind %q (%s)", s, kind, knownKinds)
	}
	var msg string
	n.match, n.from, msg = parseMatch(s, match)
	if msg != "" {
		return nil, msg
	}
	return n, ""
}

var knownKinds = func() string {
	kinds := []string{"role", "rule", "is_admin"}
	fields := make([]string, 0, len(callerFields))
	for k := range callerFields {
		fields = append(fields, k)
	}
	sort.Strings(fields)
	kinds = append(kinds, fields...)
	return "known: " + strings.Join(kinds, ", ") + `, or a literal: 'text', "text", True, False`
}()

// literal reads the left side of oslo's literal checks ('text':%(field)s),
// which compare a constant, as Python prints it, with the target.
func literal(kind string) (string, bool) {
	switch kind {
	case "True", "False":
		return kind, true
	}
	if len(kind) >= 2 && (kind[0] == '\'' || kind[0] == '"') && kind[len(kind)-1] == kind[0] {
		return kind[1 : len(kind)-1], true
	}
	return "", false
}

// parseMatch reads the right side of a generic check: a literal, or a whole
// %(field)s naming a target field.
func parseMatch(check, match string) (string, targetField, string) {
	if match == "" {
		return "", 0, fmt.Sprintf("%q: nothing to compare with after the colon", check)
	}
	if !strings.Contains(match, "%") {
		return match, targetLiteral, ""
	}
	name, ok := strings.CutPrefix(match, "%(")
	if ok {
		name, ok = strings.CutSuffix(name, ")s")
	}
	if !ok || strings.ContainsAny(name, "%()") {
		return "", 0, fmt.Sprintf("%q: %% only in a whole %%(field)s, like project_id:%%(project_id)s", check)
	}
	f, ok := targetFields[name]
	if !ok {
		return "", 0, fmt.Sprintf("%q: unknown target field %q (known: project_id, user_id)", check, name)
	}
	return "", f, ""
}

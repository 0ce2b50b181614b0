package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/policy"
)

const policyUsage = `Usage: ec2proxy policy <command> [flags]

Check and inspect an authorization policy (see docs/policy.md).

Commands:
  check    decide one action for a caller and show the rules that decided;
           exit status 0 if allowed, 1 if refused (or the policy is broken)
  lint     validate a policy file, list its rules and actions
  default  print the shipped default policy, to copy and edit

Without -file, check and lint use the shipped default policy.
`

func policyCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 { // a usage error: the help goes with the other errors
		fmt.Fprint(stderr, policyUsage)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	sub := map[string]func([]string, io.Writer, io.Writer) error{
		"check": policyCheck, "lint": policyLint, "default": policyDefault,
	}
	run, ok := sub[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ec2proxy policy: unknown command %q\n\n%s", args[0], policyUsage)
		return errUsage
	}
	if err := run(args[1:], stdout, stderr); err != nil {
		return subcommandError{args[0], err}
	}
	return nil
}

func policyCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy check", "-action NAME [-roles R1,R2] [flags]", stderr)
	file := fs.String("file", "", "policy file (default: the shipped default policy)")
	action := fs.String("action", "", "EC2 action, like RunInstances (required)")
	roles := fs.String("roles", "", "the caller's roles, comma-separated")
	var c policy.Creds
	fs.StringVar(&c.ProjectID, "project", "caller-project", "the caller's project id")
	fs.StringVar(&c.UserID, "user", "caller-user", "the caller's user id")
	fs.StringVar(&c.ProjectDomainID, "project-domain", "default", "the domain of the caller's project")
	fs.StringVar(&c.UserDomainID, "user-domain", "default", "the caller's user domain")
	fs.StringVar(&c.TrustID, "trust", "", "trust id, for a trust-scoped caller")
	fs.StringVar(&c.TrustorID, "trustor", "", "the trustor's user id")
	fs.StringVar(&c.TrusteeID, "trustee", "", "the trustee's user id")
	fs.StringVar(&c.AppCredID, "app-cred", "", "application credential id")
	targetProject := fs.String("target-project", "", "the target's project id (default: -project, as for every EC2 request)")
	targetUser := fs.String("target-user", "", "the target's user id (default: -user)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	name := strings.TrimPrefix(*action, policy.ActionPrefix)
	if name == "" {
		fmt.Fprintln(stderr, "policy check: -action is required")
		fs.Usage()
		return errUsage
	}
	c.Roles = splitRoles(*roles)
	t := policy.Target{ProjectID: *targetProject, UserID: *targetUser}
	if t.ProjectID == "" {
		t.ProjectID = c.ProjectID
	}
	if t.UserID == "" {
		t.UserID = c.UserID
	}
	p, _, err := loadPolicy(*file)
	if err != nil {
		return err
	}
	allowed, path := p.Explain(name, &c, &t)
	verdict := "deny"
	if allowed {
		verdict = "allow"
	}
	if len(path) == 0 {
		fmt.Fprintf(stdout, "%s: no rule %s%s and no %s rule\n", verdict, policy.ActionPrefix, name, policy.DefaultRule)
	} else {
		fmt.Fprintf(stdout, "%s: %s\n", verdict, strings.Join(path, " -> "))
	}
	if !allowed {
		return fmt.Errorf("%s is refused", name)
	}
	return nil
}

func policyLint(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy lint", "[-file FILE]", stderr)
	file := fs.String("file", "", "policy file (default: the shipped default policy)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	p, source, err := loadPolicy(*file)
	if err != nil {
		return err
	}
	actions := p.Actions()
	fmt.Fprintf(stdout, "%s: OK, %d rules, %d actions with a rule of their own\n", source, len(p.Rules()), len(actions))
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "\nrules:")
	for _, name := range p.Rules() {
		if !strings.HasPrefix(name, policy.ActionPrefix) {
			text, _ := p.Rule(name)
			fmt.Fprintf(tw, "  %s\t%s\n", name, text)
		}
	}
	fmt.Fprintln(tw, "\nactions:")
	for _, name := range actions {
		text, _ := p.Rule(policy.ActionPrefix + name)
		fmt.Fprintf(tw, "  %s%s\t%s\n", policy.ActionPrefix, name, text)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, ok := p.Rule(policy.DefaultRule); !ok {
		fmt.Fprintf(stderr, "warning: no %q rule: every action without a rule of its own is refused\n", policy.DefaultRule)
	}
	for _, name := range p.Unused() {
		fmt.Fprintf(stderr, "warning: rule %q decides nothing: no action, %q or %q refers to it\n", name, policy.DefaultRule, policy.AdminRule)
	}
	return nil
}

func policyDefault(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("policy default", "", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, err := stdout.Write(configs.DefaultPolicy)
	return err
}

// loadPolicy parses the file at path, or the shipped default policy if path
// is "", and names what it read.
func loadPolicy(path string) (*policy.Policy, string, error) {
	if path == "" {
		p, err := policy.Parse(configs.DefaultPolicy)
		return p, "the shipped default policy", err
	}
	f, err := policy.Open(path, policy.FileOptions{})
	if err != nil {
		return nil, path, err
	}
	return f.Policy(), path, nil
}

// splitRoles reads a -roles flag: comma-separated, blanks around names
// dropped, as `policy check` and the proxy's X-Roles reading both need
// ("reader, member" stored as " member" would never match a rule).
func splitRoles(flag string) []string {
	var roles []string
	for _, r := range strings.Split(flag, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	return roles
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ec2proxy/ec2proxy/configs"
)

func TestPolicyCLI(t *testing.T) {
	dir := t.TempDir()
	custom := filepath.Join(dir, "policy.yaml")
	os.WriteFile(custom, []byte("context_is_admin: role:admin\nstaff: role:staff\nspare: role:x\nec2:RunInstances: \"rule:staff and project_id:%(project_id)s\"\n"), 0o600)
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("a: \"(role:x\"\nb: rule:nope\nc: http:x\n"), 0o600)

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"help", []string{"policy", "-h"}, 0, "Commands:\n  check", ""},
		{"no subcommand", []string{"policy"}, 2, "", "Usage: ec2proxy policy"},
		{"unknown subcommand", []string{"policy", "frob"}, 2, "", `unknown command "frob"`},
		{"listed", []string{"help"}, 0, "policy        check what the authorization policy allows", ""},

		{"member allowed", []string{"policy", "check", "--action", "RunInstances", "--roles", "member,reader"}, 0,
			"allow: ec2:RunInstances -> rule:project_member -> rule:member_role -> role:member -> not rule:stack_user -> rule:admin_or_owner -> rule:owner -> project_id:%(project_id)s\n", ""},
		{"ec2: prefix accepted", []string{"policy", "check", "-action", "ec2:RunInstances", "-roles", "member"}, 0, "allow: ec2:RunInstances", ""},
		{"reader refused", []string{"policy", "check", "-action", "RunInstances", "-roles", "reader"}, 1,
			"deny: ec2:RunInstances -> rule:project_member -> rule:member_role -> role:member -> role:_member_ -> role:admin\n", "ec2proxy policy check: RunInstances is refused"},
		{"stack user refused", []string{"policy", "check", "-action", "RunInstances", "-roles", "member,heat_stack_user"}, 1,
			"deny: ec2:RunInstances -> rule:project_member -> not rule:stack_user\n", ""},
		{"stack user reads", []string{"policy", "check", "-action", "DescribeInstances", "-roles", "heat_stack_user"}, 0,
			"allow: ec2:DescribeInstances -> rule:stack_user_reader -> rule:stack_user -> role:heat_stack_user -> rule:admin_or_owner", ""},
		{"other project", []string{"policy", "check", "-action", "RunInstances", "-roles", "member", "-project", "p1", "-target-project", "p2"}, 1,
			"-> rule:admin_or_owner -> is_admin:True -> rule:context_is_admin -> role:admin -> rule:owner -> project_id:%(project_id)s\n", ""},
		{"admin elsewhere", []string{"policy", "check", "-action", "RunInstances", "-roles", "admin", "-target-project", "p2"}, 0,
			"-> rule:admin_or_owner -> is_admin:True -> rule:context_is_admin -> role:admin\n", ""},
		{"default rule", []string{"policy", "check", "-action", "SomeFutureAction", "-roles", "member"}, 0, "allow: default -> rule:project_member", ""},
		{"no roles", []string{"policy", "check", "-action", "DescribeRegions"}, 1, "deny: ec2:DescribeRegions", ""},
		{"custom file", []string{"policy", "check", "-file", custom, "-action", "RunInstances", "-roles", "Staff", "-project", "p1"}, 0,
			"allow: ec2:RunInstances -> rule:staff -> role:staff -> project_id:%(project_id)s\n", ""},
		{"custom file without default", []string{"policy", "check", "-file", custom, "-action", "StopInstances", "-roles", "staff"}, 1,
			"deny: no rule ec2:StopInstances and no default rule\n", ""},
		{"broken file", []string{"policy", "check", "-file", broken, "-action", "RunInstances"}, 1, "",
			"broken.yaml: invalid policy:\n  - line 1: rule \"a\": unbalanced parentheses: a ( is not closed\n  - line 2: rule \"b\": \"rule:nope\" refers to no rule\n  - line 3: rule \"c\": \"http:x\": http and https checks are not supported"},
		{"missing file", []string{"policy", "check", "-file", filepath.Join(dir, "absent.yaml"), "-action", "RunInstances"}, 1, "", "absent.yaml: no such file"},
		{"no action", []string{"policy", "check", "-roles", "member"}, 2, "", "-action is required"},
		{"bad flag", []string{"policy", "check", "-nope"}, 2, "", "flag provided but not defined"},
		{"extra argument", []string{"policy", "check", "-action", "X", "extra"}, 2, "", `unexpected argument "extra"`},

		{"lint default", []string{"policy", "lint"}, 0, "the shipped default policy: OK, ", ""},
		{"lint default lists", []string{"policy", "lint"}, 0, "  ec2:RunInstances", ""},
		{"lint canonical form", []string{"policy", "lint"}, 0, "stack_user_reader  (rule:reader_role or rule:stack_user) and rule:admin_or_owner\n", ""},
		{"lint custom", []string{"policy", "lint", "-file", custom}, 0, custom + ": OK, 4 rules, 1 actions", `warning: no "default" rule`},
		{"lint unused", []string{"policy", "lint", "-file", custom}, 0, "", `warning: rule "spare" decides nothing`},
		{"lint broken", []string{"policy", "lint", "-file", broken}, 1, "", "unbalanced parentheses"},
		{"lint broken lists all", []string{"policy", "lint", "-file", broken}, 1, "", "http and https checks are not supported"},

		{"default", []string{"policy", "default"}, 0, "context_is_admin: \"role:admin\"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
					tt.args, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

func TestPolicyLintDefaultIsClean(t *testing.T) {
	code, stdout, stderr := runCLI("policy", "lint")
	if code != 0 || stderr != "" {
		t.Errorf("policy lint of the shipped default = %d, stderr %q; want 0 and no warning", code, stderr)
	}
	if !strings.Contains(stdout, "97 actions") {
		t.Errorf("policy lint: %s", stdout)
	}
	_, printed, _ := runCLI("policy", "default")
	if printed != string(configs.DefaultPolicy) {
		t.Error("policy default does not print configs.DefaultPolicy")
	}
}

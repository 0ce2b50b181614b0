// Package policy decides whether a caller may perform an EC2 action, with
// rules written in the oslo.policy language that nova's EC2 API used.
//
// A policy file maps rule names to rules:
//
//	context_is_admin: "role:admin"
//	owner: "project_id:%(project_id)s"
//	project_member: "(role:member or role:admin) and not role:heat_stack_user and rule:owner"
//	default: "rule:project_member"
//	ec2:DescribeInstances: "(role:reader or rule:project_member) and rule:owner"
//
// The rule named "ec2:<Action>" decides that action; an action without one is
// decided by "default"; with no default rule it is refused. [Parse] compiles a
// file once into an immutable [Policy]; [Policy.Authorize] evaluates it without
// allocating. [Open] keeps a [File] that reloads when the file changes.
//
// docs/policy.md documents the language as implemented here and how it
// differs from oslo.policy: malformed rules, unknown check kinds, unknown rule
// references and cycles are errors when the file is loaded, not checks that
// silently fail at request time.
package policy

package policy

import (
	"os"
	"testing"
)

func BenchmarkAuthorize(b *testing.B) {
	data, err := os.ReadFile("../configs/policy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	p := mustParse(b, string(data))
	keystone := Creds{UserID: "u1", ProjectID: "p1", Roles: []string{"reader", "member", "load-balancer_member", "creator"}}
	stack := Creds{UserID: "u1", ProjectID: "p1", Roles: []string{"heat_stack_user"}}
	for _, bb := range []struct {
		name   string
		action string
		creds  *Creds
	}{
		{"RunInstances/member", "RunInstances", &keystone},
		{"RunInstances/stack_user", "RunInstances", &stack},
		{"DescribeInstances/stack_user", "DescribeInstances", &stack},
		{"default/member", "SomeFutureAction", &keystone},
	} {
		b.Run(bb.name, func(b *testing.B) {
			action := []byte(bb.action)
			b.ReportAllocs()
			for b.Loop() {
				p.Authorize(action, bb.creds, &own)
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		action := []byte("RunInstances")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.Authorize(action, &keystone, &own)
			}
		})
	})
}

func BenchmarkParseDefault(b *testing.B) {
	data, err := os.ReadFile("../configs/policy.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

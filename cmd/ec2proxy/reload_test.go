package main

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ec2proxy/ec2proxy/configs"
)

// A reload that panics (a library refusing a value validation missed, as
// go-redis did with a negative pool size) is refused and logged; the
// running proxy lives on.
func TestReloadSurvivesAPanic(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	cur := configs.Default()
	next, ok := reload(&cur, func() (*configs.Config, error) { panic("makechan: size out of range") }, zap.New(core))
	if next != nil || ok {
		t.Errorf("reload = %v, %v; want nil, false", next, ok)
	}
	if logs.FilterMessage("reload failed, keeping the running configuration").Len() != 1 {
		t.Errorf("the failed reload was not logged: %v", logs.All())
	}
}

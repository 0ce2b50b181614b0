package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	next, ok := reload(&cur, nil, func() (*configs.Config, error) { panic("makechan: size out of range") }, zap.New(core))
	if next != nil || ok {
		t.Errorf("reload = %v, %v; want nil, false", next, ok)
	}
	if logs.FilterMessage("reload failed, keeping the running configuration").Len() != 1 {
		t.Errorf("the failed reload was not logged: %v", logs.All())
	}
}

// server.* keep their start values across a reload, every one of them (a
// reload applied some on some paths: found by a review).
func TestReloadKeepsServerSettings(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, []byte("credentials:\n- {access_key: AKA, secret: SKA, user_id: u, project_id: p}\n"), 0o600)
	cur := configs.Default()
	cur.Identity.Mode = configs.ModeStandalone
	cur.Credentials.File = creds
	cur.Routes = []configs.Route{{PathPrefix: "/", Backend: "http://127.0.0.1:8788"}}
	changed := cur
	changed.Server.TrustedProxies = []string{"127.0.0.1/32"}
	changed.Server.ShutdownTimeout = 2 * time.Second
	changed.Server.MaxBodyBytes = 2048
	core, logs := observer.New(zap.WarnLevel)
	next, ok := reload(&cur, nil, func() (*configs.Config, error) { c := changed; return &c, nil }, zap.New(core))
	if !ok {
		t.Fatalf("reload refused: %v", logs.All())
	}
	defer next.Close()
	if next.Config.Server.ShutdownTimeout != cur.Server.ShutdownTimeout || next.Config.Server.MaxBodyBytes != cur.Server.MaxBodyBytes || len(next.Config.Server.TrustedProxies) != 0 {
		t.Errorf("server.* after reload = %+v; want the running %+v", next.Config.Server, cur.Server)
	}
	if logs.FilterMessageSnippet("apply after a restart").Len() != 1 {
		t.Errorf("the ignored change was not logged: %v", logs.All())
	}
}

// A reload while Redis does not answer is refused: the new pipeline would
// start with empty caches, and the running one's cached credentials are
// what serves during the outage (found by a review: a SIGHUP then turned
// cached keys' 200s into 503s).
func TestReloadRefusedWhileADependencyIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing answers there now
	cur := configs.Default()
	cur.Identity.Mode = configs.ModeStandalone
	cur.Credentials.Store = configs.StoreRedis
	cur.Redis.Addrs = []string{down}
	cur.Redis.DialTimeout = 200 * time.Millisecond
	cur.Routes = []configs.Route{{PathPrefix: "/", Backend: "http://127.0.0.1:8788"}}
	core, logs := observer.New(zap.ErrorLevel)
	start := time.Now()
	next, ok := reload(&cur, nil, func() (*configs.Config, error) { c := cur; return &c, nil }, zap.New(core))
	if next != nil || ok {
		next.Close()
		t.Fatalf("reload = %v, %v; want nil, false", next, ok)
	}
	if took := time.Since(start); took > reloadCheckTimeout {
		t.Errorf("refused after %v", took)
	}
	refused := logs.FilterMessageSnippet("a dependency does not answer").All()
	if len(refused) != 1 || !strings.Contains(fmt.Sprint(refused[0].ContextMap()), "redis: ") {
		t.Errorf("the refusal was not logged with its cause: %v", logs.All())
	}
}

package main

import (
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/internal/app"
)

func checkConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check-config", "[-config FILE]", stderr)
	path := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("no configuration: pass -config FILE or set %s", configs.EnvConfigFile)
	}
	cfg, err := configs.Load(*path, os.Environ())
	if err != nil {
		return err
	}
	// Every file the configuration names (credentials, password, key and
	// CA files, the TLS pair, the policy), each problem named by its
	// setting; then building, which contacts no service, checks the rest.
	if problems := app.CheckFiles(cfg); len(problems) > 0 {
		return problems
	}
	a, err := app.Build(cfg, zap.NewNop(), buildVersion())
	if err != nil {
		return err
	}
	a.Close()
	if _, err := app.TLSListenerConfig(cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile, zap.NewNop()); err != nil {
		return err
	}
	for _, w := range app.FileWarnings(cfg) {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: OK (listen %s, identity %s, credentials %s, %d route(s))\n",
		*path, cfg.Listen, cfg.Identity.Mode, cfg.Credentials.Store, len(cfg.Routes))
	return nil
}

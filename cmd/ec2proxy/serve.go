package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/internal/app"
)

func configFlag(fs interface {
	StringVar(*string, string, string, string)
}) *string {
	path := new(string)
	fs.StringVar(path, "config", os.Getenv(configs.EnvConfigFile), "configuration file; $"+configs.EnvConfigFile+" if not given")
	return path
}

func serve(args []string, _, stderr io.Writer) error {
	fs := newFlags("serve", "[-config FILE]", stderr)
	path := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("no configuration: pass -config FILE or set %s (see configs/examples/)", configs.EnvConfigFile)
	}
	cfg, err := configs.Load(*path, os.Environ())
	if err != nil {
		return err
	}
	return serveConfig(cfg, nil)
}

// serveConfig runs ec2proxy until SIGINT or SIGTERM, then drains. started,
// if set, is called once the listeners are bound.
func serveConfig(cfg *configs.Config, started func()) error {
	logger, err := app.NewLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer logger.Sync() //nolint:errcheck // nothing to do if stderr is gone
	a, err := app.Build(cfg, logger, buildVersion())
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	var adminLn net.Listener
	if cfg.AdminListen != "" {
		if adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			ln.Close()
			return fmt.Errorf("admin_listen %s: %w", cfg.AdminListen, err)
		}
	}
	logger.Info("ec2proxy started",
		zap.String("version", buildVersion()),
		zap.String("listen", ln.Addr().String()),
		zap.String("admin_listen", cfg.AdminListen),
		zap.String("identity", cfg.Identity.Mode),
		zap.String("credentials", cfg.Credentials.Store))
	if started != nil {
		started()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = a.Run(ctx, ln, adminLn)
	logger.Info("ec2proxy stopped")
	return err
}

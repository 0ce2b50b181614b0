// Command profproxy is ec2proxy with net/http/pprof on a separate
// listener, for profiling under the benchmark's load:
//
//	profproxy -config FILE -pprof 127.0.0.1:6060
//	go tool pprof -top http://127.0.0.1:6060/debug/pprof/profile?seconds=8
//
// It wires ec2proxy exactly as `ec2proxy serve` does (internal/app), so
// the profile is of the same code; it lives here because ec2proxy itself
// has no profiling endpoint.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"os/signal"
	"syscall"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/internal/app"
)

func main() {
	path := flag.String("config", "", "ec2proxy configuration file")
	pprofAddr := flag.String("pprof", "127.0.0.1:6060", "pprof listener")
	flag.Parse()
	log.SetFlags(0)

	cfg, err := configs.Load(*path, os.Environ())
	if err != nil {
		log.Fatal(err)
	}
	logger, err := app.NewLogger(cfg.Log)
	if err != nil {
		log.Fatal(err)
	}
	app.TuneRuntime(cfg.Server, logger)
	a, err := app.Build(cfg, logger, "bench-profile")
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	ln, err := app.ListenEC2(cfg, nil, nil) // as ec2proxy serve listens (no TLS here)
	if err != nil {
		log.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(http.ListenAndServe(*pprofAddr, nil)) }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx, ln, adminLn); err != nil {
		log.Fatal(err)
	}
}

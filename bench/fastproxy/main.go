// Command fastproxy is the benchmark's Go reference point: a plain
// fasthttp reverse proxy (one HostClient, keep-alive, no verification, no
// header rewriting). Its distance to nginx is what Go and fasthttp cost on
// this machine; ec2proxy's distance to it is what ec2proxy's own work
// costs.
package main

import (
	"flag"
	"log"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8781", "address to listen on")
	backend := flag.String("backend", "127.0.0.1:8780", "backend host:port")
	flag.Parse()

	client := &fasthttp.HostClient{
		Addr:                          *backend,
		MaxConns:                      1024,
		DisablePathNormalizing:        true,
		DisableHeaderNamesNormalizing: true,
		NoDefaultUserAgentHeader:      true,
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if err := client.DoTimeout(&ctx.Request, &ctx.Response, 60*time.Second); err != nil {
				ctx.Error("bad gateway", fasthttp.StatusBadGateway)
			}
		},
		Name:                 "fastproxy",
		NoDefaultContentType: true,
	}
	log.Fatal(srv.ListenAndServe(*listen))
}

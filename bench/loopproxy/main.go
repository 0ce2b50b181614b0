//go:build linux

// Command loopproxy is a measuring stick for bench/run.sh, not a product: a
// plain HTTP/1.1 reverse proxy on one epoll event loop of raw system calls,
// written in Go, serving the way nginx does. Each client connection gets its
// own keep-alive backend connection; requests and answers framed by
// Content-Length are relayed, the request's head re-emitted without its
// Connection header.
//
// Its distance to nginx is what Go costs once the goroutine-per-connection
// server and fasthttp are gone. With -verify-creds it also does, per
// request, the work ec2proxy's warm path adds (parse, SigV2/SigV4
// verification against in-memory keys, spoofable headers dropped, identity
// headers added): an estimate of what ec2proxy could reach on such a loop.
package main

import (
	"flag"
	"log"
	"runtime"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8782", "address to listen on")
	backend := flag.String("backend", "127.0.0.1:8780", "backend host:port")
	credsFile := flag.String("verify-creds", "", "verify each request against these access<TAB>secret lines (bench/seed's creds.tsv)")
	flag.Parse()

	runtime.LockOSThread() // the loop is this thread; nothing else runs
	l, err := newLoop(*listen, *backend)
	if err != nil {
		log.Fatal(err)
	}
	if *credsFile != "" {
		v, err := loadVerifier(*credsFile)
		if err != nil {
			log.Fatal(err)
		}
		l.verify = v.verify
	}
	log.Fatal(l.run())
}

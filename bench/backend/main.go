// Command backend is the benchmark's compute EC2 stand-in: a fasthttp
// server that answers every request with one small, fixed
// DescribeInstances document. It does as little as possible so that what
// sits in front of it is what the benchmark measures.
package main

import (
	"flag"
	"log"
	"os"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// body is a realistic small EC2 answer (an empty reservation set), so the
// response has the size of a real read-only call, not of a 2-byte "ok".
const body = `<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
    <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
    <reservationSet/>
</DescribeInstancesResponse>
`

func main() {
	listen := flag.String("listen", "127.0.0.1:8780", "address to listen on")
	dump := flag.String("dump-headers", "", "write the headers of the first request carrying X-Auth-Token to this file (what a proxy added: the bench gives nginx the same)")
	flag.Parse()

	b := []byte(body)
	var dumped atomic.Bool
	dumped.Store(*dump == "")
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if !dumped.Load() && len(ctx.Request.Header.Peek("X-Auth-Token")) > 0 && !dumped.Swap(true) {
				if err := os.WriteFile(*dump, ctx.Request.Header.Header(), 0o644); err != nil {
					log.Printf("dump headers: %v", err)
				}
			}
			ctx.SetContentType("text/xml;charset=UTF-8")
			ctx.SetBody(b)
		},
		Name:                          "bench-backend",
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: true,
	}
	log.Fatal(srv.ListenAndServe(*listen))
}

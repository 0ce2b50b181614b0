// Command ec2proxy is a verifying reverse proxy for the OpenStack EC2 API.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

package configs

import _ "embed"

// DemoYAML is the embedded configuration of `ec2proxy demo`: standalone
// identity, file credentials, no Redis or Keystone needed.
//
//go:embed examples/demo.yaml
var DemoYAML []byte

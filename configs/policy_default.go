package configs

import _ "embed"

// DefaultPolicy is the shipped authorization policy (policy.yaml): members
// of a project may do everything in it, readers may describe what holds no
// secret, Heat stack users may only describe a few things, whatever else
// they hold. Compile it with policy.Parse; `ec2proxy policy default` prints it.
//
//go:embed policy.yaml
var DefaultPolicy []byte

// Package test holds ec2proxy's end-to-end suites: the real proxy wiring
// (internal/app) against a real Redis and a real Keystone started by
// test/run.sh, driven by real EC2 clients (boto 2, botocore) through
// clients/ec2call.py, in front of a backend that records what it receives.
package test

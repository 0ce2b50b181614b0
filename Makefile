.PHONY: bench

# The performance benchmark of issue 5 (needs root; about 16 minutes):
# backend, nginx and ec2proxy under the same load, Keystone/Redis load per
# request, RSS with 100k credentials, sigv2/sigv4 micro-benchmarks.
# Writes bench/results.md.
bench:
	bash bench/run.sh

"""Throughput and latency benchmarks of the performance pipeline, run with `make bench`.

Not part of `make test`: no test asserts a speed. The benchmark runs against the
local stack (deploy/stack.sh), in its own topics, consumer groups and Redis key
prefixes, and removes them when it ends. docs/benchmarks.md explains the figures.
"""

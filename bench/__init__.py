"""Benchmarks: scripts that drive the real stack and print figures (never pass/fail on time)."""

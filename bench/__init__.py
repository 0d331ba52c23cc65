"""Benchmarks: run by hand (`python -m bench.drain`), never as pass/fail tests."""

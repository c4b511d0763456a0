"""Benchmarks run by `copyengine bench` (results are recorded in `benches/`)."""

"""Provider statistics on venue time: see docs/statistics.md."""

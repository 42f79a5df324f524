"""pytest-benchmark micro-benchmarks (not collected by the default ``pytest`` run)."""

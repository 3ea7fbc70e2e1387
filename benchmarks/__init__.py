"""Benchmarks, run from the repository root as modules (``python -m benchmarks.loadgen``), so
that they import the bridge, the engine and tests.support by name."""

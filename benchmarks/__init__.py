"""Benchmarks, run from the repository root as modules (``python -m benchmarks.loadgen``), so
that they import the bridge, the engine and their peers and speech
(``audiosocket_bridge.testing``) by name."""

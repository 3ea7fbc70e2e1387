"""The test suite, a package so that its helpers (tests.support) import by name. What the
benchmarks share with it (peers, speech) is in ``audiosocket_bridge.testing``."""

"""The test suite, a package so that its helpers (tests.support) import by name, from the
tests and the benchmarks alike."""

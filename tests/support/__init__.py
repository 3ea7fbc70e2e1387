"""What the tests and the benchmarks share: real prompts, the fake peers (AudioSocket client,
AMI, AGI, engine), builders of calls and events, bridges under test, ports and processes."""

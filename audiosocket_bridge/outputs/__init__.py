"""Where transcripts go and how they are read back: the sinks, durable storage, the calls in
progress, export and the Prometheus metrics."""

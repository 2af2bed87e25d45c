"""I/O adapters that carry the engine's decisions out: local processes or Kubernetes pods."""

"""pytest fixtures for a real Prometheus server (see modelops.sandbox.prometheus)."""

"""pytest fixtures for the Kubernetes API emulator (see modelops.sandbox.apiserver)."""

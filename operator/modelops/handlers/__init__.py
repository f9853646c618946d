"""modelops.handlers."""

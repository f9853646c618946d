"""modelops.sandbox."""

"""modelops.adapters."""

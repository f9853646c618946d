"""modelops.adapters.routers."""

"""Fixtures shared across the suite live in tests/plugins/, one module per component."""

pytest_plugins = ["plugins.prometheus", "plugins.apiserver"]

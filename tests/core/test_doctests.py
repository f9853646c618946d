"""The worked examples in the core's docstrings are tests too."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["steps", "naming", "conditions", "analysis", "gates", "requests", "deployment"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"modelops.core.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0

"""Fixtures shared across the suite live in tests/plugins/, one module per component.

Property tests (hypothesis) run the same examples on every run of the suite (``derandomize``), so CI never fails on
an example no earlier run tried; ``make fuzz`` (``HYPOTHESIS_PROFILE=fuzz``) searches with fresh random examples,
many more of them, to find new failures.
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("suite", derandomize=True, deadline=None)
settings.register_profile("fuzz", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

pytest_plugins = ["plugins.prometheus", "plugins.cluster"]


#: test files whose tests are independent of each other (no module fixtures) and slow: spread over the workers
SPREAD = {"tests/e2e/test_demo.py", "tests/e2e/test_sandbox_env.py", "tests/e2e/test_sandbox_cli.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Groups for ``pytest -n N --dist loadgroup`` (``make test``): a file's tests run on one worker, in order (they
    share module fixtures), and tests/integration runs whole on one worker (its last module audits the requests of
    the ones before it); the slow independent end-to-end tests are spread one by one."""
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix()
        if path in SPREAD:
            continue
        group = "tests/integration" if path.startswith("tests/integration/") else path
        item.add_marker(pytest.mark.xdist_group(group))

"""Fixtures shared across the suite live in tests/plugins/, one module per component.

Property tests (hypothesis) run the same examples on every run of the suite (``derandomize``), so CI never fails on
an example no earlier run tried; ``make fuzz`` (``HYPOTHESIS_PROFILE=fuzz``) searches with fresh random examples,
many more of them, to find new failures.
"""

import os
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("suite", derandomize=True, deadline=None)
settings.register_profile("fuzz", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

pytest_plugins = ["plugins.prometheus", "plugins.cluster"]


#: test files whose tests are independent of each other (no module fixtures) and slow: spread over the workers
SPREAD = {"tests/e2e/test_demo.py", "tests/e2e/test_sandbox_env.py", "tests/e2e/test_sandbox_cli.py"}


def test_scope(nodeid: str) -> str:
    """What runs on one worker, in order, under ``pytest -n N`` (``make test``): a file's tests (they share module
    fixtures), tests/integration as a whole (its last module audits the operator's requests of the ones before it),
    and each test of the slow independent end-to-end files on its own.

    >>> test_scope("tests/core/test_steps.py::test_split[a]"), test_scope("tests/integration/test_operator.py::t")
    ('tests/core/test_steps.py', 'tests/integration')
    >>> test_scope("tests/e2e/test_demo.py::test_the_demo")
    'tests/e2e/test_demo.py::test_the_demo'
    """
    path = nodeid.split("::", 1)[0]
    if path in SPREAD:
        return nodeid
    return "tests/integration" if path.startswith("tests/integration/") else path


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduling with :func:`test_scope` as the scope. (Its ``loadgroup`` marks would say the same,
    but xdist 3.8 renames a test's node id to group it, which pytest 9 no longer lets a plugin do.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByScope(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return test_scope(nodeid)

    return ByScope(config, log)

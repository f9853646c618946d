"""Fixtures shared across the suite live in tests/plugins/, one module per component.

Property tests (hypothesis) run the same examples on every run of the suite (``derandomize``), so CI never fails on
an example no earlier run tried; ``make fuzz`` (``HYPOTHESIS_PROFILE=fuzz``) searches with fresh random examples,
many more of them, to find new failures.
"""

import os

from hypothesis import settings

settings.register_profile("suite", derandomize=True, deadline=None)
settings.register_profile("fuzz", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

pytest_plugins = ["plugins.prometheus", "plugins.cluster"]

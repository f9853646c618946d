"""``modelops sandbox demo``: the whole lifecycle of ``examples/recommender.yaml``, live, in the local environment.

v1 becomes stable; v2 passes its gates, canaries 5 -> 25 -> 50, waits for the product team's approval, goes to 100%
and is promoted; v3 (broken at serving time) passes its gates and is rolled back on its accuracy and error rate; the
inputs drift, monitoring marks the model Degraded, a retraining Job produces a new version that goes through gates
and canary; a replacement ModelDeployment takes over through a ModelRetirement that drains, checks for zero
traffic and removes the old model. See ``docs/demo.md``.
"""

from .main import DemoInterrupted, DemoOptions, run_demo
from .manifests import Timings, demo_deployment, demo_retirement, httproute, load_example
from .observer import Observer, Printer
from .report import plot_timeline, summary
from .scenario import ACTS, DemoFailed, Expectation, Scenario, ScenarioConfig
from .workloads import DemoData, train_replacement, train_versions

__all__ = [
    "ACTS",
    "DemoData",
    "DemoFailed",
    "DemoInterrupted",
    "DemoOptions",
    "Expectation",
    "Observer",
    "Printer",
    "Scenario",
    "ScenarioConfig",
    "Timings",
    "demo_deployment",
    "demo_retirement",
    "httproute",
    "load_example",
    "plot_timeline",
    "run_demo",
    "summary",
    "train_replacement",
    "train_versions",
]

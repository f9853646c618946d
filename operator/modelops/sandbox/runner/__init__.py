"""The local runner: Deployments and Jobs of the API (the emulator) run as local processes, status written back.

See :mod:`modelops.sandbox.runner._runner` for the rules it follows.
"""

from ._kube import Client, Kind
from ._process import Backoff, JobProcess, ProcessSpec, ServerProcess, kill_tree
from ._runner import SCRAPE_JOB, LocalRunner, ProcessInfo
from ._spec import UnrunnableError, deployment_status, local_argv, termination_message

__all__ = [
    "SCRAPE_JOB",
    "Backoff",
    "Client",
    "JobProcess",
    "Kind",
    "LocalRunner",
    "ProcessInfo",
    "ProcessSpec",
    "ServerProcess",
    "UnrunnableError",
    "deployment_status",
    "kill_tree",
    "local_argv",
    "termination_message",
]

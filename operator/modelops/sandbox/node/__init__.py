"""The node agent: a kubelet that runs the Pods bound to its Node as local processes (see :mod:`.agent`)."""

from ._kube import ApiError, Client, Kind
from ._process import Backoff, JobProcess, ProcessSpec, ServerProcess, kill_tree
from ._spec import UnrunnableError, local_argv, termination_message
from .agent import NodeAgent, PodProcess

__all__ = [
    "ApiError",
    "Backoff",
    "Client",
    "JobProcess",
    "Kind",
    "NodeAgent",
    "PodProcess",
    "ProcessSpec",
    "ServerProcess",
    "UnrunnableError",
    "kill_tree",
    "local_argv",
    "termination_message",
]

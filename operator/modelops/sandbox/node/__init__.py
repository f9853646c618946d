"""The node agent: a kubelet that runs the Pods bound to its Node as local processes (see :mod:`.agent`)."""

from .agent import NodeAgent, PodProcess

__all__ = ["NodeAgent", "PodProcess"]

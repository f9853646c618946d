"""The Go components the sandbox runs (the control plane, Traefik) are built by scripts of the source checkout, once
per version, into a cache outside it; :func:`built` runs such a script and returns the path it prints last."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["REPO", "built"]

#: the source checkout (operator/modelops/sandbox/ is three levels below it)
REPO = Path(__file__).resolve().parents[3]


def built(script: str, error: type[Exception], *, quiet: bool = False) -> Path:
    """Run ``scripts/<script>`` (a no-op when its output is cached) and return the path it printed last.

    ``error`` is raised when there is no such script (not a source checkout) or it fails; ``quiet`` hides its
    progress (stderr)."""
    path = REPO / "scripts" / script
    if not path.exists():
        raise error(f"no {path}: a source checkout builds it")
    done = subprocess.run(
        ["bash", str(path)],
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        text=True,
    )
    if done.returncode != 0:
        raise error(f"scripts/{script} failed with exit code {done.returncode}")
    return Path(done.stdout.strip().splitlines()[-1])

"""What the demo trains and the data it "delivers": artifacts v1..v3, the replacement model, the data files.

The demo plays the data pipeline: ``data/holdout.csv`` (what the gate Job evaluates on) and ``data/latest.csv``
(what the retraining Job trains on) hold the data set's ``test`` and ``train`` slices as the sensors currently report
them. When the demo shifts the input distribution of live traffic, it rewrites both files with the same shift, so a
retraining Job started afterwards learns from the new distribution, as it would from a real pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import threadpoolctl  # type: ignore[import-untyped]
from sklearn.ensemble import RandomForestClassifier

from modelops.sandbox.models import (
    FEATURES,
    FeatureReference,
    ModelArtifact,
    load_slice,
    save_artifact,
    train,
)
from modelops.sandbox.models.artifacts import ARTIFACT_FILE
from modelops.sandbox.models.data import write_csv
from modelops.sandbox.models.training import DRIFT_FEATURES

__all__ = ["DemoData", "train_replacement", "train_versions"]

#: the recipe of the replacement model (a "new architecture" for the same task)
REPLACEMENT_RECIPE = "random-forest"


@dataclass(frozen=True)
class DemoData:
    """Where the demo's data pipeline writes (see the module docstring)."""

    directory: Path

    @property
    def holdout(self) -> Path:
        return self.directory / "holdout.csv"

    @property
    def latest(self) -> Path:
        return self.directory / "latest.csv"

    def publish(self, shift: float) -> None:
        """(Re)write both files for sensors re-calibrated by ``shift``; each file is replaced atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for path, part in ((self.holdout, "test"), (self.latest, "train")):
            tmp = path.with_suffix(".tmp")
            write_csv(load_slice(part, shift), tmp)
            os.replace(tmp, path)


def train_versions(models_dir: Path, versions: tuple[str, ...] = ("v1", "v2", "v3")) -> dict[str, str]:
    """Train each version with its default recipe (baseline, improved, broken) on the ``train`` slice; their URIs."""
    rows = load_slice("train")
    uris = {}
    for version in versions:
        artifact = train(rows, version, trained_on={"data": ["builtin:train"], "shift": 0.0})
        uris[version] = save_artifact(artifact, models_dir / version / ARTIFACT_FILE)
    return uris


def train_replacement(directory: Path, version: str, shift: float) -> str:
    """The replacement model: a random forest (another architecture than the boosted trees) trained on the data
    as it is now; its URI."""
    rows = load_slice("train", shift)
    estimator = RandomForestClassifier(n_estimators=60, min_samples_leaf=2, random_state=0)
    with threadpoolctl.threadpool_limits(limits=1):
        estimator.fit(rows.x, rows.y)
    artifact = ModelArtifact(
        version=version,
        recipe=REPLACEMENT_RECIPE,
        estimator=estimator,
        reference=tuple(FeatureReference.fit(FEATURES[c], c, rows.x[:, c]) for c in DRIFT_FEATURES),
        trained_on={"data": ["builtin:train"], "shift": shift, "rows": len(rows)},
    )
    return save_artifact(artifact, directory / version / ARTIFACT_FILE)

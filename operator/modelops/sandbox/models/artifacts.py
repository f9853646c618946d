"""Model artifacts: what a trained version is, and how it is written to and read from a ``file://`` URI.

An artifact holds the fitted estimator, the serving-time preprocessing and the training distribution of a few key
features (for drift). Keeping the serving preprocessing apart from the estimator is deliberate: the ``broken``
version is a training/serving skew bug, where the model is fine offline (so the gate job, which evaluates the
estimator, passes it) but the server feeds it columns in the wrong order and rejects valid inputs (so the canary
analysis catches it on live traffic). That is the class of bug canaries exist for.

Artifacts are pickles (stdlib): loading one runs code from the file, which is acceptable only because the sandbox
reads artifacts it wrote itself.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from .data import FEATURES, FloatArray, IntArray
from .drift import FeatureReference

#: bumped when the pickled layout changes, so an old file fails with a clear message
FORMAT = 1
ARTIFACT_FILE = "model.pkl"


class InputOutOfRange(ValueError):
    """A request row failed the serving-time range check."""


@dataclass(frozen=True)
class ServingPreprocess:
    """What the server does to request rows before the estimator sees them.

    ``permutation`` reorders the columns (``x[:, permutation]``); ``ranges`` lists ``(column, low, high)`` checks
    that reject a batch holding any row outside them. A correct version has neither.
    """

    permutation: tuple[int, ...] | None = None
    ranges: tuple[tuple[int, float, float], ...] = ()

    def apply(self, x: FloatArray) -> FloatArray:
        for column, low, high in self.ranges:
            values = x[:, column]
            bad = (values < low) | (values > high)
            if bad.any():
                raise InputOutOfRange(f"feature {FEATURES[column]}={float(values[bad][0]):.3f} outside [{low}, {high}]")
        return x[:, list(self.permutation)] if self.permutation is not None else x


@dataclass(frozen=True)
class ModelArtifact:
    """One trained version of the sandbox model."""

    version: str
    recipe: str
    estimator: Any
    serving: ServingPreprocess = ServingPreprocess()
    reference: tuple[FeatureReference, ...] = ()
    #: where the training rows came from: data specs, shift, row count
    trained_on: dict[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = FEATURES
    format: int = FORMAT

    def predict(self, x: FloatArray) -> IntArray:
        """Predictions as the model server makes them (through the serving preprocessing)."""
        return self.predict_offline(self.serving.apply(x))

    def predict_offline(self, x: FloatArray) -> IntArray:
        """Predictions of the estimator itself, as the offline (gate) evaluation makes them."""
        return np.asarray(self.estimator.predict(x), dtype=np.int64)


def uri_to_path(uri: str) -> Path:
    """The local path of a ``file://`` URI (a plain path is accepted as it is).

    >>> uri_to_path("file:///tmp/models/v1/model.pkl")
    PosixPath('/tmp/models/v1/model.pkl')
    >>> uri_to_path("file:///tmp/with%20space/model.pkl")
    PosixPath('/tmp/with space/model.pkl')
    """
    parsed = urlparse(uri)
    if parsed.scheme == "":
        return Path(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise ValueError(f"unsupported artifact URI {uri!r}: only file:///path is supported in the sandbox")
    return Path(unquote(parsed.path))


def path_to_uri(path: Path) -> str:
    """The ``file://`` URI of a local path (made absolute)."""
    return path.resolve().as_uri()


def save_artifact(artifact: ModelArtifact, path: Path) -> str:
    """Write ``artifact`` to ``path`` atomically (a reader never sees half a file); returns its URI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(artifact, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path_to_uri(path)


def load_artifact(uri: str) -> ModelArtifact:
    """Read the artifact at ``uri`` (``file:///...`` or a path)."""
    path = uri_to_path(uri)
    with path.open("rb") as fh:
        artifact = pickle.load(fh)  # the sandbox loads only artifacts it wrote itself
    if not isinstance(artifact, ModelArtifact):
        raise ValueError(f"{path}: not a modelops sandbox artifact ({type(artifact).__name__})")
    if artifact.format != FORMAT:
        raise ValueError(f"{path}: artifact format {artifact.format}, this code reads {FORMAT}")
    return artifact

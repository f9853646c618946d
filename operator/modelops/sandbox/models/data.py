"""The sandbox's data: a fixed synthetic classification task, its slices, its fairness groups and its drift.

Why synthetic: scikit-learn's ``make_classification`` with a fixed seed ships with scikit-learn (nothing to
download), gives as many rows as the demo needs, and has a non-linear structure (several clusters per class) so a
quadratic baseline and a boosted-tree model differ for real (about 0.83 against 0.90 accuracy on held-out rows).

The story the demo tells with it:

* eight numeric features ``f0`` .. ``f7``; ``f0`` .. ``f5`` carry the signal, ``f6`` and ``f7`` are noise;
* the fairness group is derived from the noise feature ``f7``: ``north`` when ``f7 >= 0``, else ``south``. A model
  that ignores ``f7`` treats both groups alike; one trained on biased labels does not (see the ``biased`` recipe);
* drift is an upstream re-calibration: with shift ``s`` the sensors report ``f0 + 2s`` and ``f1 - 2s`` for the
  same underlying rows, so the true labels do not change but a model trained before the change mispredicts
  (accuracy about 0.90 -> 0.68 at ``s = 1``); a model retrained on shifted rows recovers (about 0.90).

Rows are split once, by a seeded permutation, into ``train`` (training), ``test`` (held-out evaluation of the gate
job) and ``live`` (what the traffic driver plays).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from sklearn.datasets import make_classification

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SEED = 42
N_ROWS = 12_000
N_FEATURES = 8
FEATURES: tuple[str, ...] = tuple(f"f{i}" for i in range(N_FEATURES))
LABEL = "label"
#: fractions of the rows in each slice, in order
SLICES: dict[str, tuple[float, float]] = {"train": (0.0, 0.6), "test": (0.6, 0.8), "live": (0.8, 1.0)}
#: the feature the fairness group is derived from, and the group names (``f7 >= 0`` first)
GROUP_FEATURE = 7
GROUPS: tuple[str, str] = ("north", "south")
#: per unit of shift, what the re-calibration adds to each drifting feature
DRIFT: dict[int, float] = {0: 2.0, 1: -2.0}


@dataclass(frozen=True)
class Dataset:
    """Feature rows and their true labels (0 or 1)."""

    x: FloatArray
    y: IntArray

    def __len__(self) -> int:
        return len(self.y)

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.x.shape[1] != N_FEATURES:
            raise ValueError(f"expected rows of {N_FEATURES} features, got shape {self.x.shape}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} rows but {len(self.y)} labels")

    @staticmethod
    def concat(parts: list[Dataset]) -> Dataset:
        if not parts:
            raise ValueError("no data")
        return Dataset(np.vstack([p.x for p in parts]), np.concatenate([p.y for p in parts]))


@functools.cache
def _all_rows() -> Dataset:
    x, y = make_classification(
        n_samples=N_ROWS,
        n_features=N_FEATURES,
        n_informative=4,
        n_redundant=2,
        n_repeated=0,
        n_clusters_per_class=3,
        class_sep=1.0,
        flip_y=0.02,
        shuffle=False,  # keep the column order (informative, redundant, noise); rows are permuted below
        random_state=SEED,
    )
    order = np.random.default_rng(SEED).permutation(N_ROWS)
    return Dataset(np.asarray(x, dtype=np.float64)[order], np.asarray(y, dtype=np.int64)[order])


def load_slice(name: str, shift: float = 0.0) -> Dataset:
    """One slice of the data set (``train``, ``test`` or ``live``), re-calibrated by ``shift`` (see module doc)."""
    if name not in SLICES:
        raise ValueError(f"unknown slice {name!r}; expected one of {sorted(SLICES)}")
    lo, hi = SLICES[name]
    rows = _all_rows()
    part = slice(int(lo * N_ROWS), int(hi * N_ROWS))
    return Dataset(apply_shift(rows.x[part], shift), rows.y[part].copy())


def apply_shift(x: FloatArray, shift: float) -> FloatArray:
    """The rows as sensors re-calibrated by ``shift`` report them; a copy, the input is left alone.

    >>> apply_shift(np.zeros((1, N_FEATURES)), 0.5)[0, :3].tolist()
    [1.0, -1.0, 0.0]
    """
    out = np.array(x, dtype=np.float64, copy=True)
    if shift:
        for column, per_unit in DRIFT.items():
            out[:, column] += per_unit * shift
    return out


def groups_of(x: FloatArray) -> npt.NDArray[np.str_]:
    """The fairness group of each row: ``north`` when ``f7 >= 0``, else ``south``.

    >>> groups_of(np.array([[0.0] * 7 + [0.3], [0.0] * 7 + [-0.3]])).tolist()
    ['north', 'south']
    """
    return np.where(x[:, GROUP_FEATURE] >= 0, GROUPS[0], GROUPS[1])


def read_csv(path: Path) -> Dataset:
    """Rows from a CSV file with a header naming ``f0`` .. ``f7`` and ``label`` (any column order, extras ignored)."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {*FEATURES, LABEL} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: no rows")
    x = np.array([[float(r[f]) for f in FEATURES] for r in rows], dtype=np.float64)
    y = np.array([int(float(r[LABEL])) for r in rows], dtype=np.int64)
    return Dataset(x, y)


def write_csv(data: Dataset, path: Path) -> None:
    """Write rows in the format ``read_csv`` reads."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*FEATURES, LABEL])
        for row, label in zip(data.x.tolist(), data.y.tolist(), strict=True):
            writer.writerow([*(repr(v) for v in row), label])


def load_data(spec: str, shift: float = 0.0) -> Dataset:
    """Data named by ``spec``: ``builtin:<slice>`` (re-calibrated by ``shift``) or the path of a CSV file.

    A CSV file is taken as it is (its rows are already what the sensors reported), so ``shift`` does not apply.
    """
    if spec.startswith("builtin:"):
        return load_slice(spec.removeprefix("builtin:"), shift)
    return read_csv(Path(spec))

"""Input drift: the Population Stability Index of recent inputs against the training distribution.

The training distribution of a feature is kept in the artifact as quantile bin edges and the fraction of training
rows in each bin (``FeatureReference``). The server keeps a sliding window of recent inputs (``DriftMonitor``) and
reports, per feature, the PSI of the window's bin fractions against the training fractions. Common reading:
below 0.1 no real change, 0.1 to 0.25 a moderate shift, above 0.25 a major one.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: bins are floored at this fraction so an empty bin gives a large but finite PSI instead of infinity
PSI_EPSILON = 1e-4


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """Population Stability Index of ``actual`` bin fractions against ``expected`` ones.

    ``PSI = sum((a - e) * ln(a / e))`` over the bins, each fraction floored at ``epsilon`` first. It is 0 for
    identical distributions, never negative, and symmetric in its two arguments.

    Worked example: training data spread evenly over four bins, recent inputs leaning to the right::

        bin   expected  actual  (a - e) * ln(a / e)
        1     0.25      0.10    (-0.15) * ln(0.4) = 0.1374
        2     0.25      0.20    (-0.05) * ln(0.8) = 0.0112
        3     0.25      0.30    ( 0.05) * ln(1.2) = 0.0091
        4     0.25      0.40    ( 0.15) * ln(1.6) = 0.0705
                                             PSI  = 0.2282  (a moderate shift)

    >>> round(psi([0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]), 4)
    0.2282
    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> round(psi([0.5, 0.5], [0.0, 1.0]), 2)  # an empty bin: floored at epsilon, large but finite
    4.6
    """
    if len(expected) != len(actual):
        raise ValueError(f"bin counts differ: {len(expected)} expected, {len(actual)} actual")
    if not expected:
        raise ValueError("no bins")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        if e < 0 or a < 0:
            raise ValueError("bin fractions must not be negative")
        e, a = max(e, epsilon), max(a, epsilon)
        total += (a - e) * math.log(a / e)
    return total


def bin_fractions(values: npt.ArrayLike, edges: Sequence[float]) -> list[float]:
    """The fraction of ``values`` in each of the ``len(edges) + 1`` bins the interior ``edges`` cut.

    The outer bins are open, so values beyond the training range still count (in the first or last bin). A value
    equal to an edge goes to the bin on its right.

    >>> bin_fractions([0.0, 1.0, 2.0, 3.0], [1.5])
    [0.5, 0.5]
    >>> bin_fractions([-10.0, 10.0], [0.0, 1.0])
    [0.5, 0.0, 0.5]
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values")
    counts = np.bincount(np.searchsorted(np.asarray(edges), arr, side="right"), minlength=len(edges) + 1)
    return [float(c) / arr.size for c in counts]


def quantile_edges(values: npt.ArrayLike, bins: int = 10) -> list[float]:
    """Interior edges that cut ``values`` into ``bins`` bins of (nearly) equal counts; repeated edges dropped.

    >>> quantile_edges([1.0, 2.0, 3.0, 4.0], bins=2)
    [2.5]
    """
    if bins < 2:
        raise ValueError("at least two bins")
    arr = np.asarray(values, dtype=np.float64)
    edges = np.quantile(arr, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(e) for e in edges})


@dataclass(frozen=True)
class FeatureReference:
    """The training distribution of one feature: interior bin edges and the training fraction in each bin."""

    feature: str
    column: int
    edges: tuple[float, ...]
    expected: tuple[float, ...]

    @staticmethod
    def fit(feature: str, column: int, values: npt.ArrayLike, bins: int = 10) -> FeatureReference:
        edges = quantile_edges(values, bins)
        return FeatureReference(feature, column, tuple(edges), tuple(bin_fractions(values, edges)))

    def psi_of(self, values: npt.ArrayLike) -> float:
        return psi(self.expected, bin_fractions(values, self.edges))


class DriftMonitor:
    """A sliding window of the most recent input rows and the PSI of each reference feature over it.

    Thread-safe: the server's request threads add rows while a scrape reads the PSI. No PSI is reported until the
    window holds ``min_samples`` rows: a PSI of a handful of rows is noise, and "no data" is not "no drift".
    """

    def __init__(self, references: Sequence[FeatureReference], window: int = 500, min_samples: int = 100) -> None:
        if window < 1 or not 1 <= min_samples <= window:
            raise ValueError(f"need 1 <= min_samples ({min_samples}) <= window ({window})")
        self.references = tuple(references)
        self.min_samples = min_samples
        self._rows: deque[tuple[float, ...]] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, rows: Sequence[Sequence[float]]) -> None:
        columns = [r.column for r in self.references]
        picked = [tuple(float(row[c]) for c in columns) for row in rows]
        with self._lock:
            self._rows.extend(picked)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def current(self) -> dict[str, float]:
        """PSI of each reference feature over the window; empty while the window holds too few rows."""
        with self._lock:
            if len(self._rows) < self.min_samples:
                return {}
            window = np.array(self._rows, dtype=np.float64)
        return {ref.feature: ref.psi_of(window[:, i]) for i, ref in enumerate(self.references)}

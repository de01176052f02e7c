"""Float64 ``x <= t`` rules -> the IR's float32 ``x < t'`` rule, exactly."""

from __future__ import annotations

import numpy as np


def float32_above(threshold: np.ndarray) -> np.ndarray:
    """The smallest float32 strictly above each float64 threshold (``+inf`` past the float32
    range, ``-float32 max`` for ``-inf``), so that for every float32 ``x``, ``x <= t`` iff
    ``x < float32_above(t)`` (except ``x = t = +inf``, which each loader settles).

    Rounding to nearest lands on ``t`` or on one of its two float32 neighbours: if above
    ``t`` it is the first float32 above it; otherwise the next float32 up is.
    """
    t = np.asarray(threshold, dtype=np.float64)
    with np.errstate(over="ignore"):  # past float32 max: +inf, as wanted
        nearest = t.astype(np.float32)
        return np.where(nearest > t, nearest, np.nextafter(nearest, np.float32(np.inf)))

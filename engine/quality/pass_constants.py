"""Sizes shared by the profiling pass (:mod:`engine.quality._pass`, compiled with Numba)
and the Python that calls it and reads its output (no Numba import)."""

from __future__ import annotations

import numpy as np

#: HyperLogLog precision: 2**12 registers, relative standard error 1.04 / 64 = 1.6%.
HLL_P = 12
HLL_M = 1 << HLL_P
#: Distinct values a discrete column may have before its exact category table gives up.
MAX_CATEGORIES = 64
SLOTS = 2 * MAX_CATEGORIES  # open addressing at load <= 0.5
#: Sampled values per column and batch fed to the KLL sketch (a stride, deterministic).
SAMPLE_PER_BATCH = 1024
#: Marks an empty category slot: a NaN bit pattern, never the key of a finite value.
EMPTY_KEY = np.uint32(0xFFFFFFFF)


def hll_estimate(registers: np.ndarray) -> float:
    """The HyperLogLog estimate (Flajolet et al.) with linear counting for small sets."""
    m = registers.shape[0]
    # sum(2^-r): each register count times an exact power of two
    counts = np.bincount(registers, minlength=1)
    total = float(np.dot(counts, np.ldexp(1.0, -np.arange(len(counts)))))
    zeros = int(counts[0])
    alpha = 0.7213 / (1.0 + 1.079 / m)
    estimate = alpha * m * m / total
    if estimate <= 2.5 * m and zeros > 0:
        estimate = m * np.log(m / zeros)
    return float(estimate)

"""One Numba pass over a batch's feature-major float32 matrix: the exact part of a profile.

Per column (one row of the matrix) it counts finite values, NaN, +inf and -inf, takes min
and max, and sums deviations from a shift (the column's first finite value, so the sums
stay well conditioned) for the mean and M2; it counts values against the reference's
histogram edges; for discrete (integer or boolean) columns it updates HyperLogLog
registers and a small exact table of categories. It also copies a strided sample of
finite values, which feeds the KLL quantile sketch: DataSketches' ``update`` costs about
35 ns a value, too much for every value (1.75 s per 50 features x 1M rows), so only the
sample goes in.

Workers call it through :mod:`engine._native` (a cached object: no Numba import); this
module is its source, compiled there.

The loops are written without data-dependent branches so that LLVM vectorises them
(``fastmath`` allows reassociating the sums only: NaN and inf checks stay exact). The
kernel is single-threaded and releases the GIL: the local executor already runs one task
per core, and the scoring kernel's own parallel launches are serialised.
"""

from __future__ import annotations

import numba
import numpy as np

from engine.quality.pass_constants import EMPTY_KEY, HLL_M, HLL_P, MAX_CATEGORIES, SLOTS

__all__ = ["EMPTY_KEY", "HLL_M", "HLL_P", "MAX_CATEGORIES", "SLOTS", "profile_matrix"]

_REASSOC = {"reassoc", "contract"}


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _special(row):
    """NaN and +inf counts (one vectorised loop: no reduction of mixed types)."""
    nan = 0
    pinf = 0
    for i in range(row.shape[0]):
        v = row[i]
        nan += v != v
        pinf += v == np.inf
    return nan, pinf


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _min_max(row, skip_inf):
    """Min and max of the non-NaN values (NaN compares false); of the finite ones when
    ``skip_inf`` (a slower loop, only for columns that hold infinities)."""
    lo = np.float32(np.inf)
    hi = np.float32(-np.inf)
    if skip_inf:
        for i in range(row.shape[0]):
            v = row[i]
            if v - v == 0:
                lo = min(lo, v)
                hi = max(hi, v)
        return lo, hi
    for i in range(row.shape[0]):
        v = row[i]
        lo = v if v < lo else lo
        hi = v if v > hi else hi
    return lo, hi


@numba.njit(nogil=True, cache=True, fastmath=_REASSOC, boundscheck=False)
def _sums(row, shift):
    """Sums of deviations of the finite values from ``shift`` and of their squares."""
    s1 = 0.0
    s2 = 0.0
    for i in range(row.shape[0]):
        v = row[i]
        d = np.float64(v) - shift if v - v == 0 else 0.0
        s1 += d
        s2 += d * d
    return s1, s2


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _moments(row, out_counts, out_moments):
    n = row.shape[0]
    shift = 0.0
    for i in range(n):  # the first finite value: sums of deviations from it stay small
        if row[i] - row[i] == 0:
            shift = np.float64(row[i])
            break
    nan, pinf = _special(row)
    lo, hi = _min_max(row, False)
    ninf = 0
    if lo == -np.inf or hi == np.inf:  # infinities present: count them, take finite bounds
        for i in range(n):
            ninf += row[i] == -np.inf
        lo, hi = _min_max(row, True)
    s1, s2 = _sums(row, shift)
    out_counts[0] = n - nan - pinf - ninf
    out_counts[1] = nan
    out_counts[2] = pinf
    out_counts[3] = ninf
    out_moments[0] = lo
    out_moments[1] = hi
    out_moments[2] = shift
    out_moments[3] = s1
    out_moments[4] = s2


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _at_least(row, edge) -> int:
    """Values >= ``edge`` (NaN compares false; +inf counts)."""
    c = 0
    for i in range(row.shape[0]):
        c += row[i] >= edge
    return c


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _above(row, edge) -> int:
    c = 0
    for i in range(row.shape[0]):
        c += row[i] > edge
    return c


@numba.njit(nogil=True, cache=True, inline="always")
def _mix64(x):
    """splitmix64's finaliser: a well-spread 64-bit hash of the value's bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _discrete(row, bits, hll, cat_keys, cat_counts, cat_n):
    """HyperLogLog registers and the exact category table of one discrete column."""
    n_cats = cat_n[0]
    for i in range(row.shape[0]):
        v = row[i]
        if v - v != 0:  # NaN, +-inf
            continue
        key = bits[i] if v != 0 else np.uint32(0)  # -0.0 and 0.0 are one value
        h = _mix64(np.uint64(key))
        idx = h >> np.uint64(64 - HLL_P)
        w = (h << np.uint64(HLL_P)) | np.uint64(1 << (HLL_P - 1))
        rank = 1
        while w < np.uint64(1 << 63):
            w <<= np.uint64(1)
            rank += 1
        if rank > hll[idx]:
            hll[idx] = rank
        if n_cats >= 0:
            slot = h & np.uint64(SLOTS - 1)
            while True:
                if cat_keys[slot] == key:
                    cat_counts[slot] += 1
                    break
                if cat_keys[slot] == EMPTY_KEY:
                    if n_cats == MAX_CATEGORIES:
                        n_cats = -1  # too many values to be categories
                    else:
                        cat_keys[slot] = key
                        cat_counts[slot] = 1
                        n_cats += 1
                    break
                slot = (slot + np.uint64(1)) & np.uint64(SLOTS - 1)
    cat_n[0] = n_cats


@numba.njit(nogil=True, cache=True, boundscheck=False)
def profile_matrix(
    X,  # (n_cols, n) float32, C-contiguous: one column per row
    edges,  # (n_cols, max_edges) float64: histogram edges, ascending (reference min .. max)
    n_edges,  # (n_cols,) int64: edges in use per column (0: no histogram)
    discrete,  # (n_cols,) bool
    stride,  # sample every stride-th row
    counts,  # out (n_cols, 4) int64: finite, nan, +inf, -inf
    moments,  # out (n_cols, 5) float64: min, max, shift, sum(v - shift), sum((v - shift)^2)
    hist,  # out (n_cols, max_edges + 1) int64, accumulated: below edge 0, bins, above last
    hll,  # out (n_cols, HLL_M) uint8, accumulated (max)
    cat_keys,  # out (n_cols, SLOTS) uint32 float32 bit patterns, accumulated
    cat_counts,  # out (n_cols, SLOTS) int64, accumulated
    cat_n,  # out (n_cols,) int64: categories held, -1 once there were too many
    sample,  # out (n_cols, ceil(n / stride)) float32
    sample_n,  # out (n_cols,) int64
):
    n_cols, n = X.shape
    for j in range(n_cols):
        row = X[j]
        _moments(row, counts[j], moments[j])
        m = n_edges[j]
        if m > 0:
            # hist[0]: below edges[0]; hist[k]: [edges[k-1], edges[k]) for k < m - 1, the
            # last bin closed; hist[m]: above edges[m-1]. Counted as "values >= edge"
            # (vectorised) and differenced; +inf is in every count and is taken out.
            finite = counts[j, 0]
            pinf = counts[j, 2]
            prev = finite
            for k in range(m - 1):
                ge = _at_least(row, edges[j, k]) - pinf
                hist[j, k] += prev - ge
                prev = ge
            above = _above(row, edges[j, m - 1]) - pinf
            hist[j, m - 1] += prev - above
            hist[j, m] += above
        if discrete[j]:
            _discrete(row, X[j].view(np.uint32), hll[j], cat_keys[j], cat_counts[j], cat_n[j:])
        c = 0
        for i in range(0, n, stride):
            v = row[i]
            if v - v == 0:
                sample[j, c] = v
                c += 1
        sample_n[j] = c

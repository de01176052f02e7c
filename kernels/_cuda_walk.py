"""The CUDA backend's walk: the IR's nodes with branches, one GPU thread per row.

Every node kind of :mod:`kernels.ir` (numeric splits, categorical splits in all three
modes, LightGBM's zero band), with the branches of
:func:`kernels._numba_cpu.predict_reference`; leaf values are added in float64 in tree
order. :mod:`kernels._numba_cuda` launches it for the forests its perfect traversal does
not take, and :data:`WALK_ARRAYS` names the device arrays it reads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

#: LightGBM's zero band, as :data:`kernels._numba_cpu.ZERO_BAND` (``float32(1e-35)``).
ZERO_BAND = float(np.float32(1e-35))


@cuda.jit(device=True)
def _goes_left(v, node, forest):
    """The IR's rule for one node, every node kind: the CPU reference kernel's branches."""
    threshold, default_left, zero_missing = forest[1], forest[4], forest[9]
    categorical, cat_start, cat_len, cat_bits = forest[10], forest[11], forest[12], forest[13]
    # NaN fails every comparison, so it takes the node's default branch instead; so does a
    # value in LightGBM's zero band where the node counts zero as missing.
    if math.isnan(v) or (zero_missing[node] != 0 and v >= -ZERO_BAND and v <= ZERO_BAND):
        return default_left[node] != 0
    mode = categorical[node]
    if mode == 0:
        return v < threshold[node]
    # The category is v truncated toward zero, below 2**31. Mode 1 (LightGBM): (-1, 0) is
    # category 0; 2 (sklearn): whole numbers only; 3 (XGBoost): no negatives. Anything
    # else, and categories past the bitset, go right.
    if v >= 2147483648.0:
        return False
    if mode == 1:
        if not v > -1.0:
            return False
    elif not (v >= 0.0 and (mode == 3 or v == math.floor(v))):
        return False
    c = int(v)
    word = c >> 5
    if word >= cat_len[node]:
        return False
    return (cat_bits[cat_start[node] + word] >> (c & 31)) & 1 != 0


@cuda.jit(device=True)
def _row_margin(x, k, forest):
    """The margin of output ``k`` for one row ``x``: the CPU kernel's walk, tree by tree."""
    feature, left, right, value, offsets, group, base = (
        forest[0], forest[2], forest[3], forest[5], forest[6], forest[7], forest[8]
    )  # fmt: skip
    acc = base[k]
    for t in range(offsets.shape[0] - 1):
        if group[t] != k:
            continue
        root = offsets[t]
        node = root
        f = feature[node]
        while f >= 0:
            node = root + (left[node] if _goes_left(x[f], node, forest) else right[node])
            f = feature[node]
        acc += value[node]
    return acc


#: The Forest.arrays() that ``_row_margin`` reads, in its order.
WALK_ARRAYS = (
    "feature", "threshold", "left", "right", "default_left", "value", "tree_offsets",
    "tree_group", "base_margin", "zero_missing", "categorical", "cat_start", "cat_len",
    "cat_bits",
)  # fmt: skip


# ``forest`` is the tuple of WALK_ARRAYS on the device. Kernels compile on first launch
# for the argument types (eager signatures would compile when this module is imported);
# cache=True keeps the machine code on disk for the next process.
@cuda.jit(cache=True)
def predict_shared(X, forest, out):
    """One thread per row; the block's rows are staged in (dynamic) shared memory."""
    rows = cuda.shared.array(0, dtype=float32)
    n_features = X.shape[1]
    tid = cuda.threadIdx.x
    first = cuda.blockIdx.x * cuda.blockDim.x
    n = min(cuda.blockDim.x, X.shape[0] - first)
    # The block's rows are contiguous in X: consecutive threads load consecutive floats.
    for i in range(tid, n * n_features, cuda.blockDim.x):
        rows[i] = X[first + i // n_features, i % n_features]
    cuda.syncthreads()
    if tid < n:
        x = rows[tid * n_features : (tid + 1) * n_features]
        for k in range(out.shape[1]):
            out[first + tid, k] = _row_margin(x, k, forest)


@cuda.jit(cache=True)
def predict_global(X, forest, out):
    """One thread per row, features read from global memory (rows too wide for shared)."""
    row = cuda.grid(1)
    if row < X.shape[0]:
        for k in range(out.shape[1]):
            out[row, k] = _row_margin(X[row], k, forest)

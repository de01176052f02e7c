"""The Numba CPU kernel: a parallel loop over row blocks, trees inside each block.

Each block of rows walks every tree in turn, so one tree's nodes stay in L1 while the
block's rows pass through it, and each parallel iteration writes only its own rows of
``out`` (no shared accumulators). Margins accumulate in float64.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from kernels.ir import Forest

#: Rows per block: small enough that a block's rows stay in L1/L2 across all trees.
BLOCK_ROWS = 64


@numba.njit(parallel=True, nogil=True, cache=True)
def predict_margin(
    X: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    default_left: np.ndarray,
    value: np.ndarray,
    tree_offsets: np.ndarray,
    tree_group: np.ndarray,
    base_margin: np.ndarray,
    out: np.ndarray,
) -> None:
    n_rows = X.shape[0]
    n_trees = tree_offsets.shape[0] - 1
    n_out = base_margin.shape[0]
    n_blocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    for block in numba.prange(n_blocks):
        start = block * BLOCK_ROWS
        stop = min(n_rows, start + BLOCK_ROWS)
        acc = np.empty((stop - start, n_out), dtype=np.float64)
        for r in range(stop - start):
            for k in range(n_out):
                acc[r, k] = base_margin[k]
        for t in range(n_trees):
            root = tree_offsets[t]
            group = tree_group[t]
            for r in range(stop - start):
                row = start + r
                node = 0
                while True:
                    f = feature[root + node]
                    if f < 0:
                        break
                    x = X[row, f]
                    if np.isnan(x):
                        go_left = default_left[root + node] != 0
                    else:
                        go_left = x < threshold[root + node]
                    node = left[root + node] if go_left else right[root + node]
                acc[r, group] += value[root + node]
        for r in range(stop - start):
            for k in range(n_out):
                out[start + r, k] = acc[r, k]


# Numba's default (workqueue) threading layer aborts the process when two threads launch
# parallel kernels at once; the engine overlaps IO in threads, so launches are serialised
# here. One launch already uses every core.
_LAUNCH_LOCK = threading.Lock()


class CpuLauncher:
    """The forest's arrays bound to :func:`predict_margin`, with a thread count."""

    def __init__(self, forest: Forest, *, n_threads: int | None = None) -> None:
        self._args = tuple(np.ascontiguousarray(a) for a in forest.arrays().values())
        self.n_threads = n_threads

    def __call__(self, X: np.ndarray, out: np.ndarray) -> None:
        with _LAUNCH_LOCK:
            previous = numba.get_num_threads()
            try:
                if self.n_threads is not None:
                    numba.set_num_threads(min(self.n_threads, numba.config.NUMBA_NUM_THREADS))
                predict_margin(X, *self._args, out)
            finally:
                numba.set_num_threads(previous)

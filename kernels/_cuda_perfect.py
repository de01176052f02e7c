"""The perfect CUDA traversal: complete trees, branch-free steps (see
:mod:`kernels._numba_cuda` for the design and its measurements).

The rows of a block are staged column-major in shared memory; a node is a float32
threshold and a uint32 code (twice the staged column's offset, plus 1 when a missing value
goes right); the children of node ``q`` are ``2q + c`` and ``2q + c + 1``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numba import cuda, float32

from kernels._cpu_layout import MAX_PERFECT_DEPTH, TILE_ROWS, perfect_layout
from kernels.ir import Forest

U32 = np.uint32


@cuda.jit(device=True)
def _stage_rows(X, columns, rows, first, n):
    """Copy the block's rows' split columns to ``rows``, column-major (column j at j * B):
    thread r copies row r (its loads hit L1 after the first column; a warp copying whole
    rows with coalesced loads but conflicting stores was 2% slower)."""
    tid = cuda.threadIdx.x
    block = cuda.blockDim.x
    if tid < n:
        for j in range(columns.shape[0]):
            rows[j * block + tid] = X[first + tid, columns[j]]
    cuda.syncthreads()


@cuda.jit(device=True)
def _step(rows, tid, node, threshold, q, c):
    """One level down from node ``q`` (an index into ``node``) of a tree whose root is at
    ``1 - c``: its children are ``2q + c`` and ``2q + c + 1``.

    ``node[q]`` is twice the staged column's offset, plus 1 if NaN goes right. Index
    arithmetic is truncated to uint32 at every step, so it compiles to 32-bit operations
    (Numba widens integers to 64 bits, which costs two or more instructions each, and a
    signed index costs a wraparound check per load).
    """
    code = node[q]
    x = rows[U32((code >> U32(1)) + tid)]
    go_right = (x >= threshold[q]) | ((x != x) & ((code & U32(1)) != U32(0)))
    return U32(U32(2) * q + c + U32(go_right))


@cuda.jit(device=True)
def _add_trees(acc, rows, tid, node, threshold, first_node, leaf, first_leaf, count, depth, pair):
    """``acc`` plus the leaf values of ``count`` consecutive trees, in tree order.

    ``first_node`` and ``first_leaf`` index the first tree's records in ``node``/``threshold``
    and ``leaf``; with ``pair``, two trees descend together (independent loads that the
    scheduler can overlap).
    """
    n_inner = U32((U32(1) << U32(depth)) - U32(1))
    tid = U32(tid)
    a = U32(first_node)  # root of tree t
    z = U32(first_leaf - n_inner - a)  # tree t's leaf below q: leaf[z + q]
    t = 0
    if pair:
        while t + 1 < count:
            b = U32(a + n_inner)
            p = a
            q = b
            for _ in range(depth):
                p = _step(rows, tid, node, threshold, p, U32(U32(1) - a))
                q = _step(rows, tid, node, threshold, q, U32(U32(1) - b))
            acc += leaf[U32(z + p)]
            acc += leaf[U32(z + U32(1) + q)]
            a = U32(b + n_inner)
            z = U32(z + U32(2))
            t += 2
    while t < count:
        p = a
        for _ in range(depth):
            p = _step(rows, tid, node, threshold, p, U32(U32(1) - a))
        acc += leaf[U32(z + p)]
        a = U32(a + n_inner)
        z = U32(z + U32(1))
        t += 1
    return acc


@cuda.jit(cache=True)
def predict_perfect(X, columns, node, threshold, leaf, group_start, base, depth, pair, out):
    """The perfect traversal (see :func:`perfect_arrays` for the arrays).

    Trees are sorted by output: those of output ``k`` are ``group_start[k]`` up to
    ``group_start[k + 1]``.
    """
    rows = cuda.shared.array(0, dtype=float32)
    tid = cuda.threadIdx.x
    first = cuda.blockIdx.x * cuda.blockDim.x
    n = min(cuda.blockDim.x, X.shape[0] - first)
    _stage_rows(X, columns, rows, first, n)
    if tid < n:
        n_inner = (1 << depth) - 1
        for k in range(out.shape[1]):
            t = group_start[k]
            out[first + tid, k] = _add_trees(
                base[k], rows, tid, node, threshold, t * n_inner, leaf, t * (n_inner + 1),
                group_start[k + 1] - t, depth, pair,
            )  # fmt: skip


def perfect_arrays(forest: Forest, block: int) -> dict[str, Any] | None:
    """The perfect traversal's arrays for blocks of ``block`` rows, or None if inexact.

    ``node[t * n_inner + p]`` is tree ``t``'s code at complete-tree position ``p``: where
    its column sits among the staged rows (its position in ``columns`` times ``block``),
    doubled, plus 1 when NaN goes right; ``threshold`` is laid out alike, a NaN threshold
    as ``-inf`` (both send every number right). Trees are sorted by output, stably, so
    each output keeps its trees' order. Leaf values are float32 where that is exact
    (XGBoost's are), else float64. None for categorical splits and the zero band (the
    walk's node kinds) and for trees too deep to pad.
    """
    inner = forest.feature >= 0
    if forest.num_trees == 0 or not inner.any():
        return None
    if forest.has_categorical or forest.has_zero_missing:
        return None
    if np.isnan(forest.threshold[inner]).any():
        threshold = np.where(np.isnan(forest.threshold), np.float32(-np.inf), forest.threshold)
        forest = dataclasses.replace(forest, threshold=threshold.astype(np.float32))
    depth = int(forest.tree_depths().max())
    if depth > MAX_PERFECT_DEPTH:
        return None
    layout = perfect_layout(forest, depth)
    # TileColumns.offsets is (position + (width if NaN goes right else 0)) * TILE_ROWS.
    copy = layout.feature_offset.astype(np.int64) // TILE_ROWS
    right = copy >= layout.tiles.width
    code = 2 * (copy - np.where(right, layout.tiles.width, 0)) * block + right
    order = np.argsort(forest.tree_group, kind="stable")
    leaf = layout.leaf_value
    if np.array_equal(leaf.astype(np.float32).astype(np.float64), leaf):
        leaf = leaf.astype(np.float32)
    return {
        "columns": layout.tiles.columns.astype(np.int32),
        "node": np.ascontiguousarray(code[order].ravel().astype(np.uint32)),
        "threshold": np.ascontiguousarray(layout.threshold[order].ravel()),
        "leaf": np.ascontiguousarray(leaf[order].ravel()),
        "group_start": np.searchsorted(
            forest.tree_group[order], np.arange(forest.num_outputs + 1)
        ).astype(np.int64),
        "base": np.ascontiguousarray(forest.base_margin, dtype=np.float64),
        "depth": depth,
    }


#: The output links :meth:`CudaLauncher.score` applies on the device (kernels.ir.LINKS).

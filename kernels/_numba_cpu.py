"""The Numba CPU kernels: parallel over row tiles, every tree traversed per tile.

A tile of ``TILE_ROWS`` rows is transposed to feature-major order once (with missing
values resolved, see :mod:`kernels._cpu_layout`), then each tree moves all the tile's
rows one level at a time. The inner loop over rows has no branches and no dependency
between iterations, so the CPU overlaps many rows' loads; one tree's nodes and the tile
stay in L1 throughout. Each parallel iteration writes only its own rows of ``out``.

Indices are unsigned: Numba adds a wraparound check to every signed index, which costs
more than the traversal step itself.

Margins accumulate in float64 (the native libraries sum float32 or float64; float64 sits
within their rounding). ``fastmath`` is off: it could change a comparison with NaN or inf.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from kernels._cpu_layout import (
    MAX_PERFECT_DEPTH,
    TILE_ROWS,
    perfect_layout,
    sparse_layout,
)
from kernels.ir import Forest

U = np.uint64
#: Levels of a complete tree evaluated with vector compares instead of per-row lookups.
SELECT_LEVELS = 3
#: Tiles a deep (sparse-layout) tree walks before the next tree: 16 x 26 KiB of tiles for
#: 50 features stay in L2 while the tree's upper levels stay in L1.
SPARSE_CHUNK_TILES = 16


@numba.njit(inline="always", nogil=True, boundscheck=False)
def _fill_tile(X, start, m, columns, xt):
    """Feature-major tile: rows [0, W) as read (NaN stays NaN), rows [W, 2W) with NaN ->
    +inf, row 2W all -inf (the sparse layout's leaves read it and never move)."""
    width = columns.shape[0]
    for j in range(width):
        col = columns[j]
        lo = j * TILE_ROWS
        hi = (width + j) * TILE_ROWS
        for r in range(m):
            v = X[start + r, col]
            nan = v != v
            xt[lo + r] = v
            xt[hi + r] = np.inf if nan else v
        for r in range(m, TILE_ROWS):
            xt[lo + r] = 0.0
            xt[hi + r] = 0.0
    for r in range(TILE_ROWS):
        xt[2 * width * TILE_ROWS + r] = -np.inf


@numba.njit(inline="always", nogil=True, boundscheck=False)
def _open_tile(X, tile, columns, n_out):
    """A tile's first row, row count, filled feature-major tile and zeroed accumulators."""
    start = tile * TILE_ROWS
    m = min(X.shape[0], start + TILE_ROWS) - start
    xt = np.empty((2 * columns.shape[0] + 1) * TILE_ROWS, dtype=np.float32)
    _fill_tile(X, start, m, columns, xt)
    return start, m, xt, np.zeros(n_out * TILE_ROWS, dtype=np.float64)


@numba.njit(inline="always", nogil=True, boundscheck=False)
def _close_tile(acc, start, m, base_margin, out):
    """Write a tile's margins (plus the base margin) to its own rows of ``out``."""
    for k in range(base_margin.shape[0]):
        for r in range(m):
            out[start + r, k] = acc[k * TILE_ROWS + r] + base_margin[k]


@numba.njit(parallel=True, nogil=True, cache=True, boundscheck=False)
def predict_perfect(
    X, columns, feature_offset, threshold, leaf_value, tree_group, base_margin, out
):
    n_rows = X.shape[0]
    n_trees = feature_offset.shape[0]
    depth = int(np.log2(leaf_value.shape[1]))
    n_inner = feature_offset.shape[1]
    n_out = base_margin.shape[0]
    select_levels = min(SELECT_LEVELS, depth)
    n_tiles = (n_rows + TILE_ROWS - 1) // TILE_ROWS
    for tile in numba.prange(n_tiles):
        start, m, xt, acc = _open_tile(X, tile, columns, n_out)
        pos = np.zeros(TILE_ROWS, dtype=U)
        go = np.zeros(TILE_ROWS, dtype=U)
        for t in range(n_trees):
            fo = feature_offset[t]
            th = threshold[t]
            for r in range(TILE_ROWS):
                pos[r] = 0
            # Top levels: few distinct nodes, so compare every row against each of them with
            # contiguous loads (vectorised) and keep the answer of the row's own node.
            for level in range(select_levels):
                first = (1 << level) - 1
                for c in range(1 << level):
                    node = U(first + c)
                    off = U(fo[node])
                    cut = th[node]
                    for r in range(TILE_ROWS):
                        g = U(xt[off + U(r)] >= cut)
                        go[r] = g if pos[r] == node else go[r]
                for r in range(TILE_ROWS):
                    pos[r] = U(2) * pos[r] + U(1) + go[r]
            for _ in range(select_levels, depth):
                for r in range(TILE_ROWS):
                    p = pos[r]
                    pos[r] = U(2) * p + U(1) + U(xt[U(fo[p]) + U(r)] >= th[p])
            leaves = leaf_value[t]
            row0 = tree_group[t] * TILE_ROWS
            for r in range(TILE_ROWS):
                acc[row0 + r] += leaves[pos[r] - U(n_inner)]
        _close_tile(acc, start, m, base_margin, out)


@numba.njit(parallel=True, nogil=True, cache=True, boundscheck=False)
def predict_sparse(
    X, columns, left, feature_offset, threshold, value, roots, depths, tree_group, base_margin, out
):
    n_rows = X.shape[0]
    n_trees = roots.shape[0]
    n_out = base_margin.shape[0]
    width = (2 * columns.shape[0] + 1) * TILE_ROWS
    n_tiles = (n_rows + TILE_ROWS - 1) // TILE_ROWS
    n_chunks = (n_tiles + SPARSE_CHUNK_TILES - 1) // SPARSE_CHUNK_TILES
    for chunk in numba.prange(n_chunks):
        # Deep trees do not fit in cache: walk each tree for several tiles in turn, so its
        # upper levels stay hot, instead of every tree for one tile.
        first = chunk * SPARSE_CHUNK_TILES
        n_here = min(n_tiles, first + SPARSE_CHUNK_TILES) - first
        xts = np.empty(n_here * width, dtype=np.float32)
        accs = np.zeros(n_here * n_out * TILE_ROWS, dtype=np.float64)
        for j in range(n_here):
            start = (first + j) * TILE_ROWS
            m = min(n_rows, start + TILE_ROWS) - start
            _fill_tile(X, start, m, columns, xts[j * width : (j + 1) * width])
        idx = np.zeros(TILE_ROWS, dtype=U)
        for t in range(n_trees):
            root = U(roots[t])
            row0 = tree_group[t] * TILE_ROWS
            for j in range(n_here):
                xt = xts[j * width : (j + 1) * width]
                for r in range(TILE_ROWS):
                    idx[r] = root
                for _ in range(depths[t]):
                    moved = U(0)
                    for r in range(TILE_ROWS):
                        i = idx[r]
                        step = U(left[i]) + U(xt[U(feature_offset[i]) + U(r)] >= threshold[i])
                        moved |= step ^ i
                        idx[r] = step
                    if moved == 0:  # every row of the tile is on its leaf (leaves self-loop)
                        break
                acc = accs[j * n_out * TILE_ROWS : (j + 1) * n_out * TILE_ROWS]
                for r in range(TILE_ROWS):
                    acc[row0 + r] += value[idx[r]]
        for j in range(n_here):
            start = (first + j) * TILE_ROWS
            m = min(n_rows, start + TILE_ROWS) - start
            _close_tile(
                accs[j * n_out * TILE_ROWS : (j + 1) * n_out * TILE_ROWS],
                start,
                m,
                base_margin,
                out,
            )


#: LightGBM's zero band, ``-k <= x <= k`` with ``k = kZeroThreshold``, a double set from
#: the float literal ``1e-35f`` (so k is float32(1e-35), a little above 1e-35).
ZERO_BAND = float(np.float32(1e-35))


@numba.njit(parallel=True, nogil=True, cache=True)
def predict_reference(
    X, feature, threshold, left, right, default_left, value, tree_offsets, tree_group,
    zero_missing, categorical, cat_start, cat_len, cat_bits, base_margin, out,
):  # fmt: skip
    """The plain per-row walk with branches: exact for every forest the IR can hold, used
    where the branch-free layouts are not (categorical splits, LightGBM's zero band), and as
    the tests' second opinion."""
    n_rows = X.shape[0]
    n_trees = tree_offsets.shape[0] - 1
    n_out = base_margin.shape[0]
    for row in numba.prange(n_rows):
        for k in range(n_out):
            out[row, k] = base_margin[k]
        for t in range(n_trees):
            root = tree_offsets[t]
            node = root
            while feature[node] >= 0:
                x = X[row, feature[node]]
                missing = np.isnan(x) or (
                    zero_missing[node] != 0 and x >= -ZERO_BAND and x <= ZERO_BAND
                )
                if missing:
                    go_left = default_left[node] != 0
                elif categorical[node] != 0:
                    go_left = False
                    # The category is x truncated toward zero, below 2**31 (the native
                    # libraries read an int). Mode 1 (LightGBM): (-1, 0) is category 0;
                    # 2 (sklearn): whole numbers only; 3 (XGBoost): negatives are invalid.
                    # Anything else goes right.
                    mode = categorical[node]
                    if x < 2147483648.0 and (
                        x > -1.0 if mode == 1 else (x >= 0.0 and (mode == 3 or x == np.floor(x)))
                    ):
                        c = np.int64(x)
                        word = c >> 5
                        if word < cat_len[node]:
                            go_left = (cat_bits[cat_start[node] + word] >> (c & 31)) & 1 != 0
                else:
                    go_left = x < threshold[node]
                node = root + (left[node] if go_left else right[node])
            out[row, tree_group[t]] += value[node]


# Numba's default (workqueue) threading layer aborts the process when two threads launch
# parallel kernels at once; the engine overlaps IO in threads, so launches are serialised
# here. One launch already uses every core.
_LAUNCH_LOCK = threading.Lock()


def choose_layout(forest: Forest) -> str:
    """``perfect`` for boosted trees, ``sparse`` for deep ones, ``reference`` otherwise."""
    if forest.num_trees == 0 or forest.has_categorical or forest.has_zero_missing:
        return "reference"
    if int(forest.tree_depths().max()) <= MAX_PERFECT_DEPTH:
        return "perfect"
    return "sparse"


class CpuLauncher:
    """The forest laid out for one CPU kernel, launched with a fixed thread count.

    It takes row-major and feature-major (F-contiguous) matrices alike: the tile fill reads
    ``X[row, column]`` through Numba's strides, contiguous along rows for the latter.
    """

    accepts_feature_major = True

    def __init__(
        self, forest: Forest, *, n_threads: int | None = None, layout: str | None = None
    ) -> None:
        self.layout = layout or choose_layout(forest)
        self.n_threads = n_threads
        group = np.ascontiguousarray(forest.tree_group, dtype=np.int64)
        base = np.ascontiguousarray(forest.base_margin, dtype=np.float64)
        if self.layout == "perfect":
            p = perfect_layout(forest, int(forest.tree_depths().max()))
            self._fn = predict_perfect
            self._args = (p.tiles.columns, p.feature_offset, p.threshold, p.leaf_value, group, base)
        elif self.layout == "sparse":
            s = sparse_layout(forest)
            self._fn = predict_sparse
            self._args = (
                s.tiles.columns,
                s.left,
                s.feature_offset,
                s.threshold,
                s.value,
                s.roots,
                s.depths,
                group,
                base,
            )
        elif self.layout == "reference":
            self._fn = predict_reference
            self._args = (
                forest.feature,
                forest.threshold,
                forest.left,
                forest.right,
                forest.default_left,
                forest.value,
                forest.tree_offsets.astype(np.int64),
                group,
                forest.zero_missing,
                forest.categorical,
                forest.cat_start,
                forest.cat_len,
                forest.cat_bits,
                base,
            )
        else:
            raise ValueError(f"unknown CPU layout {self.layout!r}")
        self._args = tuple(_read_only(a) for a in self._args)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._args)

    def __call__(self, X: np.ndarray, out: np.ndarray) -> None:
        with _LAUNCH_LOCK:
            previous = numba.get_num_threads()
            try:
                if self.n_threads is not None:
                    numba.set_num_threads(
                        max(1, min(self.n_threads, numba.config.NUMBA_NUM_THREADS))
                    )
                self._fn(_read_only(X), *self._args, out)
            finally:
                numba.set_num_threads(previous)


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only C-contiguous view: Numba compiles (and caches) one specialisation per
    mutability, so every launch passes the same kind and no call pays a second compile."""
    view = (a if a.flags.f_contiguous and a.ndim == 2 else np.ascontiguousarray(a)).view()
    view.flags.writeable = False
    return view

"""The Numba CPU kernels: row tiles, every tree traversed per tile.

A tile of ``TILE_ROWS`` rows is transposed to feature-major order once (with missing
values resolved, see :mod:`kernels._cpu_layout`), then each tree moves all the tile's
rows one level at a time. The inner loop over rows has no branches and no dependency
between iterations, so the CPU overlaps many rows' loads; one tree's nodes and the tile
stay in L1 throughout.

Each kernel scores a range of tiles (or rows) and writes only those rows of ``out``;
:func:`kernels._threads.run_ranges` runs ranges on several threads (the kernels release
the GIL). The kernels are serial ``@njit`` functions, not ``parallel=True``: Numba's parfor
passes were most of a cold compile (see benchmarks/README.md, "Compile time").

The input matrix reaches a kernel as its flat buffer plus element strides, so row-major
and feature-major (F-ordered) input share one compiled specialisation, and every other
argument has one fixed type: each kernel compiles (or loads from Numba's cache) once.

Indices are unsigned: Numba adds a wraparound check to every signed index, which costs
more than the traversal step itself.

Margins accumulate in float64 (the native libraries sum float32 or float64; float64 sits
within their rounding). ``fastmath`` is off: it could change a comparison with NaN or inf.
"""

from __future__ import annotations

import numba
import numpy as np

from kernels._cpu_layout import (
    MAX_PERFECT_DEPTH,
    TILE_ROWS,
    perfect_layout,
    sparse_layout,
)
from kernels._threads import default_threads, run_ranges
from kernels.ir import Forest

U = np.uint64
#: Levels of a complete tree evaluated with vector compares instead of per-row lookups.
SELECT_LEVELS = 3
#: Tiles a deep (sparse-layout) tree walks before the next tree: 16 x 26 KiB of tiles for
#: 50 features stay in L2 while the tree's upper levels stay in L1.
SPARSE_CHUNK_TILES = 16


@numba.njit(inline="always", nogil=True, boundscheck=False)
def _fill_tile(x, row_step, col_step, start, m, columns, xt):
    """Feature-major tile of rows ``start .. start + m``: tile rows [0, W) as read (NaN stays
    NaN), rows [W, 2W) with NaN -> +inf, row 2W all -inf (the sparse layout's leaves read it
    and never move). ``x`` is the matrix's flat buffer, element ``(row, col)`` at
    ``row * row_step + col * col_step``, so row- and column-major input share one compile."""
    width = columns.shape[0]
    for j in range(width):
        at = U(start) * row_step + U(columns[j]) * col_step
        lo = j * TILE_ROWS
        hi = (width + j) * TILE_ROWS
        for r in range(m):
            v = x[at + U(r) * row_step]
            nan = v != v
            xt[lo + r] = v
            xt[hi + r] = np.inf if nan else v
        for r in range(m, TILE_ROWS):
            xt[lo + r] = 0.0
            xt[hi + r] = 0.0
    for r in range(TILE_ROWS):
        xt[2 * width * TILE_ROWS + r] = -np.inf


@numba.njit(inline="always", nogil=True, boundscheck=False)
def _close_tile(acc, start, m, base_margin, out):
    """Write a tile's margins (plus the base margin) to its own rows of ``out``."""
    for k in range(base_margin.shape[0]):
        for r in range(m):
            out[start + r, k] = acc[k * TILE_ROWS + r] + base_margin[k]


@numba.njit(nogil=True, cache=True, boundscheck=False)
def predict_perfect(
    x, row_step, col_step, n_rows, tile_lo, tile_hi,
    columns, feature_offset, threshold, leaf_value, tree_group, base_margin, depth, out,
):  # fmt: skip
    """Tiles ``[tile_lo, tile_hi)`` of the input through every complete tree."""
    n_trees = feature_offset.shape[0]
    n_inner = feature_offset.shape[1]
    n_out = base_margin.shape[0]
    select_levels = min(SELECT_LEVELS, depth)
    xt = np.empty((2 * columns.shape[0] + 1) * TILE_ROWS, dtype=np.float32)
    acc = np.empty(n_out * TILE_ROWS, dtype=np.float64)
    pos = np.zeros(TILE_ROWS, dtype=U)
    go = np.zeros(TILE_ROWS, dtype=U)
    for tile in range(tile_lo, tile_hi):
        start = tile * TILE_ROWS
        m = min(n_rows, start + TILE_ROWS) - start
        _fill_tile(x, row_step, col_step, start, m, columns, xt)
        acc[:] = 0.0
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


@numba.njit(nogil=True, cache=True, boundscheck=False)
def predict_sparse(
    x, row_step, col_step, n_rows, chunk_lo, chunk_hi,
    columns, left, feature_offset, threshold, value, roots, depths, tree_group, base_margin,
    out,
):  # fmt: skip
    """Chunks of ``SPARSE_CHUNK_TILES`` tiles ``[chunk_lo, chunk_hi)`` through every tree."""
    n_trees = roots.shape[0]
    n_out = base_margin.shape[0]
    width = (2 * columns.shape[0] + 1) * TILE_ROWS
    n_tiles = (n_rows + TILE_ROWS - 1) // TILE_ROWS
    xts = np.empty(SPARSE_CHUNK_TILES * width, dtype=np.float32)
    accs = np.empty(SPARSE_CHUNK_TILES * n_out * TILE_ROWS, dtype=np.float64)
    idx = np.zeros(TILE_ROWS, dtype=U)
    for chunk in range(chunk_lo, chunk_hi):
        # Deep trees do not fit in cache: walk each tree for several tiles in turn, so its
        # upper levels stay hot, instead of every tree for one tile.
        first = chunk * SPARSE_CHUNK_TILES
        n_here = min(n_tiles, first + SPARSE_CHUNK_TILES) - first
        accs[:] = 0.0
        for j in range(n_here):
            start = (first + j) * TILE_ROWS
            m = min(n_rows, start + TILE_ROWS) - start
            _fill_tile(x, row_step, col_step, start, m, columns, xts[j * width : (j + 1) * width])
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


@numba.njit(nogil=True, cache=True, boundscheck=False)
def predict_reference(
    flat, row_step, col_step, n_rows, row_lo, row_hi,
    feature, threshold, left, right, default_left, value, tree_offsets, tree_group,
    zero_missing, categorical, cat_start, cat_len, cat_bits, base_margin, out,
):  # fmt: skip
    """The plain per-row walk with branches: exact for every forest the IR can hold, used
    where the branch-free layouts are not (categorical splits, LightGBM's zero band), and as
    the tests' second opinion."""
    n_trees = tree_offsets.shape[0] - 1
    n_out = base_margin.shape[0]
    for row in range(row_lo, row_hi):
        for k in range(n_out):
            out[row, k] = base_margin[k]
        for t in range(n_trees):
            root = tree_offsets[t]
            node = root
            while feature[node] >= 0:
                x = flat[U(row) * row_step + U(feature[node]) * col_step]
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


def choose_layout(forest: Forest) -> str:
    """``perfect`` for boosted trees, ``sparse`` for deep ones, ``reference`` otherwise."""
    if forest.num_trees == 0 or forest.has_categorical or forest.has_zero_missing:
        return "reference"
    if int(forest.tree_depths().max()) <= MAX_PERFECT_DEPTH:
        return "perfect"
    return "sparse"


class CpuLauncher:
    """The forest laid out for one CPU kernel, launched with a fixed thread count.

    It takes row-major and feature-major (F-contiguous) float32 matrices alike, without a
    copy: the kernels read the flat buffer through the matrix's strides.
    """

    accepts_feature_major = True

    def __init__(
        self, forest: Forest, *, n_threads: int | None = None, layout: str | None = None
    ) -> None:
        self.layout = layout or choose_layout(forest)
        self.n_threads = n_threads
        group = np.ascontiguousarray(forest.tree_group, dtype=np.int64)
        base = np.ascontiguousarray(forest.base_margin, dtype=np.float64)
        #: rows of one work item (a tile, a chunk of tiles, a row) and the fewest items a
        #: thread is given (about 1k rows: a kernel call costs tens of microseconds)
        self._item_rows, self._min_chunk = TILE_ROWS, 16
        if self.layout == "perfect":
            depth = int(forest.tree_depths().max())
            p = perfect_layout(forest, depth)
            self._fn = predict_perfect
            args = (p.tiles.columns, p.feature_offset, p.threshold, p.leaf_value, group, base)
            self._extra: tuple[object, ...] = (depth,)
        elif self.layout == "sparse":
            s = sparse_layout(forest)
            self._fn = predict_sparse
            self._item_rows, self._min_chunk = TILE_ROWS * SPARSE_CHUNK_TILES, 1
            args = (s.tiles.columns, s.left, s.feature_offset, s.threshold, s.value,
                    s.roots, s.depths, group, base)  # fmt: skip
            self._extra = ()
        elif self.layout == "reference":
            self._fn = predict_reference
            self._item_rows, self._min_chunk = 1, 256
            args = (
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
            self._extra = ()
        else:
            raise ValueError(f"unknown CPU layout {self.layout!r}")
        self._args = tuple(_read_only(a) for a in args)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._args)

    def __call__(self, X: np.ndarray, out: np.ndarray) -> None:
        if X.dtype != np.float32 or X.ndim != 2:
            raise ValueError("the CPU kernels take a 2-D float32 matrix")
        n_rows, n_cols = X.shape
        if not X.flags.c_contiguous and not X.flags.f_contiguous:
            X = np.ascontiguousarray(X)
        # element strides of the flat buffer; a one-column or one-row matrix is both C and
        # F contiguous, and either reading is right for it
        row_step, col_step = (n_cols, 1) if X.flags.c_contiguous else (1, n_rows)
        flat = _read_only(X.ravel(order="K"))
        steps = (U(row_step), U(col_step), n_rows)

        def work(lo: int, hi: int) -> None:
            self._fn(flat, *steps, lo, hi, *self._args, *self._extra, out)

        n_items = -(-n_rows // self._item_rows)
        run_ranges(work, n_items, self.n_threads or default_threads(), min_chunk=self._min_chunk)


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only C-contiguous view: Numba compiles (and caches) one specialisation per
    mutability, so every launch passes the same kind and no call pays a second compile."""
    view = np.ascontiguousarray(a).view()
    view.flags.writeable = False
    return view

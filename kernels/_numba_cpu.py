"""The Numba CPU kernels: row tiles, every tree traversed per tile.

A tile of ``TILE_ROWS`` rows is transposed to feature-major order once (with missing
values resolved, see :mod:`kernels._cpu_layout`), then each tree moves all the tile's
rows one level at a time. The inner loop over rows has no branches and no dependency
between iterations, so the CPU overlaps many rows' loads; one tree's nodes and the tile
stay in L1 throughout.

Each kernel scores a range of tiles (or rows) and writes only those rows of ``out``;
:func:`kernels._threads.run_ranges` runs ranges on several threads (the kernels release
the GIL). The kernels are serial ``@njit`` functions, not ``parallel=True``: Numba's parfor
passes were most of a cold compile (see benchmarks/README.md, "Compile time"). They
allocate nothing: scratch comes from the caller, so the compiled code needs no Numba
runtime (:mod:`kernels._cpu_cfuncs` compiles them, :mod:`kernels._cpu_native` loads them,
:mod:`kernels._cpu_launch` calls them).

The input matrix reaches a kernel as its flat buffer plus element strides, so row-major
and feature-major (F-ordered) input share one compiled kernel.

Indices are unsigned: Numba adds a wraparound check to every signed index, which costs
more than the traversal step itself.

Margins accumulate in float64 (the native libraries sum float32 or float64; float64 sits
within their rounding). ``fastmath`` is off: it could change a comparison with NaN or inf.
"""

from __future__ import annotations

import numba
import numpy as np

from kernels._cpu_launch import CpuLauncher, choose_layout  # noqa: F401 (their old home)
from kernels._cpu_layout import SPARSE_CHUNK_TILES, TILE_ROWS

U = np.uint64
#: Levels of a complete tree evaluated with vector compares instead of per-row lookups.
SELECT_LEVELS = 3


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


@numba.njit(nogil=True, boundscheck=False)
def predict_perfect(
    x, row_step, col_step, n_rows, tile_lo, tile_hi,
    columns, feature_offset, threshold, leaf_value, tree_group, base_margin, depth, out,
    xt, acc, pos, go,
):  # fmt: skip
    """Tiles ``[tile_lo, tile_hi)`` of the input through every complete tree; ``xt``,
    ``acc``, ``pos`` and ``go`` are the caller's scratch (see :mod:`kernels._cpu_abi`)."""
    n_trees = feature_offset.shape[0]
    n_inner = feature_offset.shape[1]
    select_levels = min(SELECT_LEVELS, depth)
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


@numba.njit(nogil=True, boundscheck=False)
def predict_sparse(
    x, row_step, col_step, n_rows, chunk_lo, chunk_hi,
    columns, left, feature_offset, threshold, value, roots, depths, tree_group, base_margin,
    out, xts, accs, idx,
):  # fmt: skip
    """Chunks of ``SPARSE_CHUNK_TILES`` tiles ``[chunk_lo, chunk_hi)`` through every tree;
    ``xts``, ``accs`` and ``idx`` are the caller's scratch."""
    n_trees = roots.shape[0]
    n_out = base_margin.shape[0]
    width = (2 * columns.shape[0] + 1) * TILE_ROWS
    n_tiles = (n_rows + TILE_ROWS - 1) // TILE_ROWS
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


@numba.njit(nogil=True, boundscheck=False)
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

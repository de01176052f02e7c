"""The CPU backend's launcher: a forest laid out for one kernel, scored on a few threads.

The kernels (:mod:`kernels._numba_cpu`) are reached through their compiled C entry points
(:mod:`kernels._cpu_native`), so this module, and a process that finds the kernel in the
cache, never imports Numba.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kernels._cpu_abi import KERNEL_ARGS, POINTER_DTYPES
from kernels._cpu_layout import (
    MAX_PERFECT_DEPTH,
    SPARSE_CHUNK_TILES,
    TILE_ROWS,
    perfect_layout,
    sparse_layout,
)
from kernels._cpu_native import kernel_function
from kernels._threads import default_threads, run_ranges
from kernels.ir import Forest


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
        self.n_out = forest.num_outputs
        group = forest.tree_group
        base = forest.base_margin
        n_trees, n_nodes = forest.num_trees, forest.num_nodes
        #: rows of one work item (a tile, a chunk of tiles, a row) and the fewest items a
        #: thread is given (about 1k rows: a kernel call costs microseconds)
        self._item_rows, self._min_chunk = TILE_ROWS, 16
        if self.layout == "perfect":
            p = perfect_layout(forest, int(forest.tree_depths().max()))
            values: tuple[object, ...] = (
                p.tiles.columns, p.tiles.width, p.feature_offset, p.threshold, p.leaf_value,
                n_trees, p.depth, group, base, self.n_out,
            )  # fmt: skip
            width = (2 * p.tiles.width + 1) * TILE_ROWS
            self._scratch = (
                (width, np.float32),
                (self.n_out * TILE_ROWS, np.float64),
                (TILE_ROWS, np.uint64),
                (TILE_ROWS, np.uint64),
            )
        elif self.layout == "sparse":
            s = sparse_layout(forest)
            self._item_rows, self._min_chunk = TILE_ROWS * SPARSE_CHUNK_TILES, 1
            values = (
                s.tiles.columns, s.tiles.width, s.left, s.feature_offset, s.threshold,
                s.value, n_nodes, s.roots, s.depths, n_trees, group, base, self.n_out,
            )  # fmt: skip
            width = (2 * s.tiles.width + 1) * TILE_ROWS
            self._scratch = (
                (SPARSE_CHUNK_TILES * width, np.float32),
                (SPARSE_CHUNK_TILES * self.n_out * TILE_ROWS, np.float64),
                (TILE_ROWS, np.uint64),
            )
        elif self.layout == "reference":
            self._item_rows, self._min_chunk = 1, 256
            values = (
                forest.feature, forest.threshold, forest.left, forest.right,
                forest.default_left, forest.value, n_nodes, forest.tree_offsets, n_trees,
                group, forest.zero_missing, forest.categorical, forest.cat_start,
                forest.cat_len, forest.cat_bits, forest.cat_bits.shape[0], base, self.n_out,
            )  # fmt: skip
            self._scratch = ()
        else:
            raise ValueError(f"unknown CPU layout {self.layout!r}")
        kinds = [kind for _, kind in KERNEL_ARGS[self.layout]][: len(values)]
        # Each array is kept (in the dtype the kernel reads) for as long as the launcher,
        # and passed by address.
        self._arrays = tuple(
            np.ascontiguousarray(v, dtype=POINTER_DTYPES[kind])
            for v, kind in zip(values, kinds, strict=True)
            if kind in POINTER_DTYPES
        )
        arrays = iter(self._arrays)
        self._bound = tuple(
            next(arrays).ctypes.data if kind in POINTER_DTYPES else int(v)  # type: ignore[call-overload]
            for v, kind in zip(values, kinds, strict=True)
        )
        # The compiled kernel is fetched on the first call, so laying a model out (as
        # ``lakescore inspect`` does) never compiles.
        self._fn: Callable[..., None] | None = None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays)

    def __call__(self, X: np.ndarray, out: np.ndarray) -> None:
        if X.dtype != np.float32 or X.ndim != 2:
            raise ValueError("the CPU kernels take a 2-D float32 matrix")
        if out.dtype != np.float64 or out.shape != (X.shape[0], self.n_out):
            raise ValueError(f"out must be float64 of shape ({X.shape[0]}, {self.n_out})")
        if not X.flags.c_contiguous and not X.flags.f_contiguous:
            X = np.ascontiguousarray(X)
        target = out if out.flags.c_contiguous else np.empty_like(out, order="C")
        if self._fn is None:
            self._fn = kernel_function(self.layout)
        fn = self._fn
        n_rows, n_cols = X.shape
        # element strides of the flat buffer; a one-column or one-row matrix is both C and
        # F contiguous, and either reading is right for it
        row_step, col_step = (n_cols, 1) if X.flags.c_contiguous else (1, n_rows)
        head = (X.ctypes.data, X.size, row_step, col_step, n_rows)
        tail = (*self._bound, target.ctypes.data)

        def work(lo: int, hi: int) -> None:
            scratch = [np.empty(size, dtype) for size, dtype in self._scratch]
            fn(*head, lo, hi, *tail, *(a.ctypes.data for a in scratch))

        n_items = -(-n_rows // self._item_rows)
        run_ranges(work, n_items, self.n_threads or default_threads(), min_chunk=self._min_chunk)
        if target is not out:
            out[:] = target

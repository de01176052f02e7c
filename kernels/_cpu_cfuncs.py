"""Compile a CPU kernel to a relocatable object with Numba (imported only to compile).

Each kernel of :mod:`kernels._numba_cpu` gets a C-ABI wrapper (a Numba ``cfunc`` with the
signature of :mod:`kernels._cpu_abi`) that views its pointers as arrays and calls it; LLVM
inlines the kernel into the wrapper. The wrapper's machine code is returned as an ELF
object, which :mod:`kernels._cpu_native` caches and loads with llvmlite alone: a process
that finds the object in the cache never imports Numba, whose start-up (import, target
registries, a scipy import for its BLAS check) costs more than the 0.5 s budget of a
cached kernel.

The kernels allocate nothing (scratch comes from the caller) and raise nothing, so the
object needs no Numba runtime; the only references it keeps to Numba's helpers are on
error paths that the inputs, validated in Python, never take.
"""

from __future__ import annotations

from collections.abc import Callable

from numba import carray

from kernels import _numba_cpu as k
from kernels import native_build
from kernels._cpu_abi import signature

TILE = k.TILE_ROWS


def _perfect(x, x_len, row_step, col_step, n_rows, lo, hi,
             columns, width, feature_offset, threshold, leaf_value, n_trees, depth,
             tree_group, base_margin, n_out, out, xt, acc, pos, go):  # fmt: skip
    n_inner = (1 << depth) - 1
    k.predict_perfect(
        carray(x, (x_len,)), row_step, col_step, n_rows, lo, hi,
        carray(columns, (width,)),
        carray(feature_offset, (n_trees, n_inner)),
        carray(threshold, (n_trees, n_inner)),
        carray(leaf_value, (n_trees, n_inner + 1)),
        carray(tree_group, (n_trees,)),
        carray(base_margin, (n_out,)),
        depth,
        carray(out, (n_rows, n_out)),
        carray(xt, ((2 * width + 1) * TILE,)),
        carray(acc, (n_out * TILE,)),
        carray(pos, (TILE,)),
        carray(go, (TILE,)),
    )  # fmt: skip


def _sparse(x, x_len, row_step, col_step, n_rows, lo, hi,
            columns, width, left, feature_offset, threshold, value, n_nodes, roots, depths,
            n_trees, tree_group, base_margin, n_out, out, xts, accs, idx):  # fmt: skip
    k.predict_sparse(
        carray(x, (x_len,)), row_step, col_step, n_rows, lo, hi,
        carray(columns, (width,)),
        carray(left, (n_nodes,)),
        carray(feature_offset, (n_nodes,)),
        carray(threshold, (n_nodes,)),
        carray(value, (n_nodes,)),
        carray(roots, (n_trees,)),
        carray(depths, (n_trees,)),
        carray(tree_group, (n_trees,)),
        carray(base_margin, (n_out,)),
        carray(out, (n_rows, n_out)),
        carray(xts, (k.SPARSE_CHUNK_TILES * (2 * width + 1) * TILE,)),
        carray(accs, (k.SPARSE_CHUNK_TILES * n_out * TILE,)),
        carray(idx, (TILE,)),
    )  # fmt: skip


def _reference(x, x_len, row_step, col_step, n_rows, lo, hi,
               feature, threshold, left, right, default_left, value, n_nodes,
               tree_offsets, n_trees, tree_group, zero_missing, categorical, cat_start,
               cat_len, cat_bits, n_cat_words, base_margin, n_out, out):  # fmt: skip
    k.predict_reference(
        carray(x, (x_len,)), row_step, col_step, n_rows, lo, hi,
        carray(feature, (n_nodes,)),
        carray(threshold, (n_nodes,)),
        carray(left, (n_nodes,)),
        carray(right, (n_nodes,)),
        carray(default_left, (n_nodes,)),
        carray(value, (n_nodes,)),
        carray(tree_offsets, (n_trees + 1,)),
        carray(tree_group, (n_trees,)),
        carray(zero_missing, (n_nodes,)),
        carray(categorical, (n_nodes,)),
        carray(cat_start, (n_nodes,)),
        carray(cat_len, (n_nodes,)),
        carray(cat_bits, (n_cat_words,)),
        carray(base_margin, (n_out,)),
        carray(out, (n_rows, n_out)),
    )  # fmt: skip


_WRAPPERS: dict[str, Callable[..., None]] = {
    "perfect": _perfect,
    "sparse": _sparse,
    "reference": _reference,
}


def compile_object(kernel: str) -> bytes:
    """``kernel``'s C-ABI wrapper compiled for this CPU, as an ELF object whose one
    ``cfunc.*`` symbol is the entry point."""
    return native_build.compile_object(_WRAPPERS[kernel], signature(kernel))

"""The Numba side of :mod:`engine._native`: the feature fill and C-ABI wrappers of it and
of the profiling pass, compiled to cached objects (imported only to compile them)."""

from __future__ import annotations

import numba
import numpy as np
from numba import carray

from engine.quality._pass import profile_matrix
from kernels import native_build


@numba.njit(nogil=True, boundscheck=False)
def fill_masked(out, values, validity, offset):
    """``out[i] = values[i]`` where Arrow's validity bit ``offset + i`` is set, else NaN:
    one pass, no filled temporary. With the bits byte-aligned (a decoded batch's are), it
    goes a validity byte at a time: eight fixed lanes that LLVM vectorises, and a plain
    copy where all eight are valid. 3.4x faster than a bit per row (1M x 50 values with 2%
    nulls, in cache: 0.017 against 0.058 CPU s)."""
    nan = np.float32(np.nan)
    n = out.shape[0]
    done = 0
    if offset & 7 == 0:
        first = offset >> 3
        done = n & ~7
        for b in range(done >> 3):
            byte = validity[first + b]
            i = b << 3
            if byte == 0xFF:
                for k in range(8):
                    out[i + k] = np.float32(values[i + k])
            else:
                for k in range(8):
                    out[i + k] = np.float32(values[i + k]) if (byte >> k) & 1 else nan
    for i in range(done, n):  # the tail, or every row of unaligned bits
        k = i + offset
        valid = (validity[k >> 3] >> (k & 7)) & 1
        out[i] = np.float32(values[i]) if valid else nan


def _fill(out, values, validity, offset, n):  # values from Arrow's offset, validity from 0
    fill_masked(
        carray(out, (n,)), carray(values, (n,)), carray(validity, ((offset + n + 7) >> 3,)), offset
    )


def _profile(X, k, n, first, n_block, edges, max_edges, n_edges, discrete, stride, counts,
             moments, hist, hll, hll_width, cat_keys, cat_counts, cat_n, sample, sample_width,
             sample_n, slots):  # fmt: skip
    """Columns ``first .. first + k`` of a block of ``n_block`` columns' accumulators."""
    cols = slice(first, first + k)
    profile_matrix(
        carray(X, (k, n)),
        carray(edges, (n_block, max_edges))[cols],
        carray(n_edges, (n_block,))[cols],
        carray(discrete, (n_block,))[cols],
        stride,
        carray(counts, (n_block, 4))[cols],
        carray(moments, (n_block, 5))[cols],
        carray(hist, (n_block, max_edges + 1))[cols],
        carray(hll, (n_block, hll_width))[cols],
        carray(cat_keys, (n_block, slots))[cols],
        carray(cat_counts, (n_block, slots))[cols],
        carray(cat_n, (n_block,))[cols],
        carray(sample, (n_block, sample_width))[cols],
        carray(sample_n, (n_block,))[cols],
    )


WRAPPERS = {"fill_f32": _fill, "fill_f64": _fill, "profile": _profile}


def compile_object(name: str, kinds: tuple[str, ...]) -> bytes:
    return native_build.compile_object(WRAPPERS[name], kinds)

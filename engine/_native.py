"""The engine's per-batch loops, called without importing Numba.

The feature fill (:func:`fill_masked`) and the profiling pass (:class:`ProfilePass`) run
in every worker, so a worker that loaded them through Numba paid Numba's start-up:
about 0.3 CPU s to import it and 0.6 s to load the first cached function, per CLI run and
per new Ray actor. They are compiled once to objects in the kernel cache, as the scoring
kernels are (:mod:`kernels.native`; sources in :mod:`engine._native_build` and
:mod:`engine.quality._pass`), and called through ctypes, which releases the GIL.

The wrappers check what the compiled code cannot: dtypes and C-contiguity of every
array (an output is written in place, so it is never copied to make it contiguous).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.quality.pass_constants import SLOTS
from kernels import native

_HERE = Path(__file__).parent
_SOURCES = (
    _HERE / "_native.py",
    _HERE / "_native_build.py",
    _HERE / "quality" / "_pass.py",
    _HERE / "quality" / "pass_constants.py",
    _HERE.parent / "kernels" / "native_build.py",
)

_KINDS = {
    "fill_f32": ("f32*", "f32*", "u8*", "i64", "i64"),
    "fill_f64": ("f32*", "f64*", "u8*", "i64", "i64"),
    "profile": ("f32*", "i64", "i64", "i64", "i64", "f64*", "i64", "i64*", "u8*", "i64",
                "i64*", "f64*", "i64*", "u8*", "i64", "u32*", "i64*", "i64*", "f32*", "i64",
                "i64*", "i64"),
}  # fmt: skip


@functools.cache
def _function(name: str) -> Callable[..., None]:
    return native.cached_function(
        f"engine-{name}", _KINDS[name], _code_key(), lambda: _compile(name)
    )


@functools.lru_cache(maxsize=1)
def _code_key() -> str:
    return native.code_key(_SOURCES)


def _compile(name: str) -> bytes:
    from engine._native_build import compile_object

    return compile_object(name, _KINDS[name])


def _pointer(array: np.ndarray, dtype: type, what: str) -> int:
    if array.dtype != dtype or not array.flags.c_contiguous:
        raise ValueError(f"{what}: expected a C-contiguous {np.dtype(dtype)} array")
    return array.__array_interface__["data"][0]


def fill_masked(
    out: np.ndarray, values: int, dtype: type, validity: int, offset: int, sizes: tuple[int, int]
) -> None:
    """``out[i] = values[i]`` (float32 or float64, cast to float32) where Arrow's validity
    bit ``offset + i`` is set, else NaN. ``values`` and ``validity`` are the addresses of
    an Arrow array's buffers (the values already at the array's offset); ``sizes`` are
    those buffers' sizes in bytes from there, checked against ``len(out)``."""
    n = out.shape[0]
    itemsize = np.dtype(dtype).itemsize
    if itemsize not in (4, 8) or np.dtype(dtype).kind != "f":
        raise ValueError(f"fill_masked: values are {np.dtype(dtype)}, expected float32 or float64")
    if sizes[0] < n * itemsize or sizes[1] * 8 < offset + n:
        raise ValueError("fill_masked: values or validity shorter than out")
    name = "fill_f32" if itemsize == 4 else "fill_f64"
    _function(name)(_pointer(out, np.float32, "out"), values, validity, offset, n)


class ProfilePass:
    """The profiling pass (:func:`engine.quality._pass.profile_matrix`) into one block of
    accumulators: their shapes are checked and their addresses taken once, so a call per
    column and batch passes two arrays, not fourteen (each address costs microseconds).

    The accumulators are kept referenced here and must not be replaced, only updated in
    place. ``run`` profiles columns ``first .. first + len(X)`` of the block.
    """

    def __init__(self, edges: np.ndarray, n_edges: np.ndarray, discrete: np.ndarray,
                 counts: np.ndarray, moments: np.ndarray, hist: np.ndarray, hll: np.ndarray,
                 cat_keys: np.ndarray, cat_counts: np.ndarray, cat_n: np.ndarray,
                 sample_width: int) -> None:  # fmt: skip
        n_cols = n_edges.shape[0]
        max_edges = edges.shape[1]
        self.n_cols = n_cols
        #: each column's strided sample of the last run, and its length
        self.sample = np.empty((n_cols, sample_width), dtype=np.float32)
        self.sample_n = np.zeros(n_cols, dtype=np.int64)
        shapes = {
            "edges": (edges, (n_cols, max_edges)),
            "discrete": (discrete, (n_cols,)),
            "counts": (counts, (n_cols, 4)),
            "moments": (moments, (n_cols, 5)),
            "hist": (hist, (n_cols, max_edges + 1)),
            "cat_keys": (cat_keys, (n_cols, SLOTS)),
            "cat_counts": (cat_counts, (n_cols, SLOTS)),
            "cat_n": (cat_n, (n_cols,)),
        }
        for what, (array, shape) in shapes.items():
            if array.shape != shape:
                raise ValueError(f"ProfilePass: {what} has shape {array.shape}, expected {shape}")
        if hll.shape[0] != n_cols:
            raise ValueError("ProfilePass: hll needs a row per column")
        self._arrays = (edges, n_edges, discrete, counts, moments, hist, hll, cat_keys,
                        cat_counts, cat_n)  # fmt: skip
        self._block = (
            n_cols,
            _pointer(edges, np.float64, "edges"), max_edges,
            _pointer(n_edges, np.int64, "n_edges"),
            _pointer(discrete.view(np.uint8), np.uint8, "discrete"),
        )  # fmt: skip
        self._accumulators = (
            _pointer(counts, np.int64, "counts"),
            _pointer(moments, np.float64, "moments"),
            _pointer(hist, np.int64, "hist"),
            _pointer(hll, np.uint8, "hll"), hll.shape[1],
            _pointer(cat_keys, np.uint32, "cat_keys"),
            _pointer(cat_counts, np.int64, "cat_counts"),
            _pointer(cat_n, np.int64, "cat_n"),
            _pointer(self.sample, np.float32, "sample"), sample_width,
            _pointer(self.sample_n, np.int64, "sample_n"),
            SLOTS,
        )  # fmt: skip

    def __reduce__(self) -> None:  # type: ignore[override]
        # Its addresses are this process's: a copy would write into freed memory.
        raise TypeError("a ProfilePass holds memory addresses and cannot be copied")

    def run(self, first: int, X: np.ndarray, stride: int) -> None:
        """Profile ``X`` (``(k, n)`` float32, C-contiguous) as columns ``first ..
        first + k``; their samples are then ``sample[first + i, :sample_n[first + i]]``."""
        k, n = X.shape
        if first < 0 or first + k > self.n_cols:
            raise ValueError(f"ProfilePass: columns {first}..{first + k} outside the block")
        if stride < 1 or self.sample.shape[1] * stride < n:
            raise ValueError("ProfilePass: sample too small for the stride")
        _function("profile")(
            _pointer(X, np.float32, "X"), k, n, first, *self._block, stride, *self._accumulators
        )

"""The C calling convention of the compiled CPU kernels, shared by the Numba side that
compiles them (:mod:`kernels._cpu_cfuncs`) and the side that loads and calls them without
Numba (:mod:`kernels._cpu_native`).

Every kernel is ``void f(args...)`` over pointers and 64-bit integers. The first seven
arguments are the same for all: the input's flat float32 buffer and its length, its row and
column strides in elements, the row count, and the range of work items to score. Then come
the layout's arrays (with their sizes), ``out`` (float64, ``n_rows x n_out``, C order) and
the scratch buffers of one call.
"""

from __future__ import annotations

from kernels.native import POINTER_DTYPES, SCALARS

__all__ = ["INPUT", "KERNEL_ARGS", "POINTER_DTYPES", "SCALARS", "signature"]

INPUT = (("x", "f32*"), ("x_len", "i64"), ("row_step", "u64"), ("col_step", "u64"),
         ("n_rows", "i64"), ("lo", "i64"), ("hi", "i64"))  # fmt: skip

#: kernel -> (name, kind) of each argument after :data:`INPUT`
KERNEL_ARGS: dict[str, tuple[tuple[str, str], ...]] = {
    "perfect": (
        ("columns", "i64*"), ("width", "i64"), ("feature_offset", "u32*"),
        ("threshold", "f32*"), ("leaf_value", "f64*"), ("n_trees", "i64"), ("depth", "i64"),
        ("tree_group", "i64*"), ("base_margin", "f64*"), ("n_out", "i64"),
        ("out", "f64*"), ("xt", "f32*"), ("acc", "f64*"), ("pos", "u64*"), ("go", "u64*"),
    ),
    "sparse": (
        ("columns", "i64*"), ("width", "i64"), ("left", "u32*"), ("feature_offset", "u32*"),
        ("threshold", "f32*"), ("value", "f64*"), ("n_nodes", "i64"), ("roots", "u32*"),
        ("depths", "i64*"), ("n_trees", "i64"), ("tree_group", "i64*"),
        ("base_margin", "f64*"), ("n_out", "i64"),
        ("out", "f64*"), ("xts", "f32*"), ("accs", "f64*"), ("idx", "u64*"),
    ),
    "reference": (
        ("feature", "i32*"), ("threshold", "f32*"), ("left", "i32*"), ("right", "i32*"),
        ("default_left", "u8*"), ("value", "f64*"), ("n_nodes", "i64"),
        ("tree_offsets", "i64*"), ("n_trees", "i64"), ("tree_group", "i64*"),
        ("zero_missing", "u8*"), ("categorical", "u8*"), ("cat_start", "i32*"),
        ("cat_len", "i32*"), ("cat_bits", "u32*"), ("n_cat_words", "i64"),
        ("base_margin", "f64*"), ("n_out", "i64"),
        ("out", "f64*"),
    ),
}  # fmt: skip


def signature(kernel: str) -> tuple[str, ...]:
    """The kinds of all of ``kernel``'s arguments, in order."""
    return tuple(kind for _, kind in (*INPUT, *KERNEL_ARGS[kernel]))

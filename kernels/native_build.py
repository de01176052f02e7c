"""Compile a C-ABI wrapper to a relocatable object with Numba (imported only to compile;
:mod:`kernels.native` caches and loads the object without it).

A wrapper takes pointers and 64-bit integers (the kinds of :data:`kernels.native.
POINTER_DTYPES` and :data:`~kernels.native.SCALARS`), views the pointers as arrays with
``numba.carray`` and calls the real function, which LLVM inlines into it. The functions
compiled this way allocate nothing and raise nothing, so the object needs no Numba
runtime; the only references it keeps to Numba's helpers are on error paths that the
inputs, validated in Python, never take.
"""

from __future__ import annotations

from collections.abc import Callable

from numba import cfunc, types

TYPES = {
    "f32*": types.CPointer(types.float32),
    "f64*": types.CPointer(types.float64),
    "i32*": types.CPointer(types.int32),
    "i64*": types.CPointer(types.int64),
    "u8*": types.CPointer(types.uint8),
    "u32*": types.CPointer(types.uint32),
    "u64*": types.CPointer(types.uint64),
    "i64": types.int64,
    "u64": types.uint64,
}


def compile_object(wrapper: Callable[..., None], kinds: tuple[str, ...]) -> bytes:
    """``wrapper`` compiled for this CPU as an ELF object whose one ``cfunc.*`` symbol is
    the entry point."""
    sig = types.void(*(TYPES[kind] for kind in kinds))
    compiled = cfunc(sig, nogil=True, boundscheck=False)(wrapper)
    # Numba keeps no public way to emit a JIT library's object code; this is what its own
    # on-disk cache stores (CPUCodeLibrary.serialize_using_object_code), without the
    # bitcode it keeps for inlining into other Numba functions.
    library = compiled._library
    library._ensure_finalized()
    return bytes(library._codegen._tm.emit_object(library._final_module))

"""Compiled CPU kernels as cached objects (:mod:`kernels.native`), called through ctypes.

A kernel's machine code does not depend on the model (the forest is data), so one object
per kernel, lakescore source, Numba/llvmlite version and CPU serves every model. The first
process compiles it with Numba (:mod:`kernels._cpu_cfuncs`, about 1.5 CPU s for the
perfect kernel) and stores it in the kernel cache; later processes map it in milliseconds
and never import Numba. ctypes releases the GIL during the call, so
:func:`kernels._threads.run_ranges` runs ranges side by side.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from kernels import native
from kernels._cpu_abi import signature

_SOURCES = ("_numba_cpu.py", "_cpu_cfuncs.py", "_cpu_abi.py", "_cpu_layout.py", "native_build.py")


@functools.lru_cache(maxsize=1)
def code_key() -> str:
    """What a compiled kernel depends on besides the kernel's name: lakescore's kernel
    sources, Numba's and llvmlite's versions, and the CPU."""
    here = Path(__file__).parent
    return native.code_key(here / name for name in _SOURCES)


@functools.cache
def kernel_function(kernel: str) -> Callable[..., None]:
    """``kernel``'s entry point, loaded from the kernel cache or compiled (once across
    processes, under the cache entry's build lock)."""
    return native.cached_function(
        f"cpu-{kernel}", signature(kernel), code_key(), lambda: _compile(kernel)
    )


def _compile(kernel: str) -> bytes:
    from kernels._cpu_cfuncs import compile_object

    return compile_object(kernel)

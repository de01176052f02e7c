"""Compiled CPU kernels as cached objects, loaded with llvmlite and called through ctypes.

A kernel's machine code does not depend on the model (the forest is data), so one object
per kernel, lakescore source, Numba/llvmlite version and CPU serves every model. The first
process compiles it with Numba (:mod:`kernels._cpu_cfuncs`, about 1.5 CPU s for the
perfect kernel) and stores it in the kernel cache (:class:`kernels.cache.LibraryCache`,
written aside and renamed, a corrupt entry discarded and rebuilt); later processes map it
with llvmlite's MCJIT in milliseconds and never import Numba. ctypes releases the GIL
during the call, so :func:`kernels._threads.run_ranges` runs ranges side by side.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.metadata
import logging
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernels._cpu_abi import POINTER_DTYPES, signature
from kernels.cache import LibraryCache, cache_enabled, cpu_signature

log = logging.getLogger("lakescore.kernels.cpu_native")

_CTYPES = {kind: ctypes.c_void_p for kind in POINTER_DTYPES} | {
    "i64": ctypes.c_int64,
    "u64": ctypes.c_uint64,
}
#: Numba helpers an object references only on error paths (raising an exception, freeing
#: memory the kernels never allocate). Where Numba has not registered them in this process
#: they resolve to abort(): a path that cannot be taken must not fail silently if it is.
_ERROR_PATH_SYMBOLS = (
    "NRT_Free",
    "NRT_MemInfo_call_dtor",
    "numba_do_raise",
    "numba_gil_ensure",
    "numba_gil_release",
    "numba_runtime_build_excinfo_struct",
    "numba_unpickle",
)
_SOURCES = ("_numba_cpu.py", "_cpu_cfuncs.py", "_cpu_abi.py", "_cpu_layout.py")

_lock = threading.Lock()
_engines: list[Any] = []  # the MCJIT engines own the loaded code: kept for the process


@functools.lru_cache(maxsize=1)
def code_key() -> str:
    """What a compiled kernel depends on besides the kernel's name: lakescore's kernel
    sources, Numba's and llvmlite's versions, and the CPU."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _SOURCES:
        digest.update((here / name).read_bytes())
    for package in ("numba", "llvmlite"):
        digest.update(importlib.metadata.version(package).encode())
    digest.update(cpu_signature().encode())
    return digest.hexdigest()


@functools.cache
def kernel_function(kernel: str) -> Callable[..., None]:
    """``kernel``'s entry point, loaded from the kernel cache or compiled (once across
    processes, under the cache entry's build lock)."""
    if not cache_enabled():
        return _as_function(kernel, _compile(kernel))
    store = LibraryCache()
    key = hashlib.sha256(f"cpu-{kernel}\n{code_key()}".encode()).hexdigest()[:40]
    if (function := _load_cached(store, key, kernel)) is not None:
        return function
    with store.building(key):
        if (function := _load_cached(store, key, kernel)) is not None:
            return function
        data = _compile(kernel)
        with tempfile.TemporaryDirectory(prefix="lakescore-cpu-") as tmp:
            built = Path(tmp) / "kernel.o"
            built.write_bytes(data)
            store.put(key, built)
        return _as_function(kernel, data)


def _compile(kernel: str) -> bytes:
    from kernels._cpu_cfuncs import compile_object

    log.info("compiling the %s CPU kernel with Numba", kernel)
    return compile_object(kernel)


def _load_cached(store: LibraryCache, key: str, kernel: str) -> Callable[..., None] | None:
    path = store.get(key)
    if path is None:
        return None
    try:
        return _as_function(kernel, path.read_bytes())
    except Exception as exc:  # not an object llvmlite can link, no entry point
        log.warning("discarding kernel cache entry %s that does not load (%s)", path, exc)
        store.discard(key)
        return None


def _as_function(kernel: str, data: bytes) -> Callable[..., None]:
    """Link the object ``data`` into a new MCJIT engine; its entry point as a ctypes
    function (which releases the GIL while it runs)."""
    import llvmlite.binding as llvm

    with _lock:
        if not _engines:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            abort = ctypes.cast(ctypes.CDLL(None).abort, ctypes.c_void_p).value
            for name in _ERROR_PATH_SYMBOLS:
                if not llvm.address_of_symbol(name):
                    llvm.add_symbol(name, abort)
        obj = llvm.ObjectFileRef.from_data(data)
        # Numba names a cfunc's C entry point "cfunc.<mangled name>": the one such name in
        # the object's string table (llvmlite lists no symbols)
        entries = sorted(set(re.findall(rb"cfunc\.[A-Za-z0-9_$.]+(?=\x00)", data)))
        if len(entries) != 1:
            raise ValueError(f"expected one cfunc entry point, found {len(entries)}")
        machine = llvm.Target.from_default_triple().create_target_machine(codemodel="jitdefault")
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
        engine.add_object_file(obj)
        engine.finalize_object()
        address = engine.get_function_address(entries[0].decode())
        if not address:
            raise ValueError(f"entry point {entries[0]} did not link")
        _engines.append(engine)
    prototype = ctypes.CFUNCTYPE(None, *(_CTYPES[kind] for kind in signature(kernel)))
    return prototype(address)

"""Numba-compiled functions as cached objects, loaded with llvmlite and called through
ctypes: a process that finds them in the cache never imports Numba.

Numba's start-up in a fresh process (import, target registries, then loading even a
cached function) costs about 0.9 CPU s, paid by every CLI run and every new Ray actor. A
function compiled here is a C-ABI ``cfunc`` (:mod:`kernels.native_build`) over pointers
and 64-bit integers, stored as an ELF object in the kernel cache
(:class:`kernels.cache.LibraryCache`, written aside and renamed, a corrupt entry discarded
and rebuilt) and mapped with llvmlite's MCJIT in milliseconds. ctypes releases the GIL
during the call. The scoring kernels (:mod:`kernels._cpu_native`) and the engine's feature
fill and profiling pass (:mod:`engine._native`) load this way.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import logging
import re
import struct
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kernels.cache import LibraryCache, cache_enabled, cpu_signature

log = logging.getLogger("lakescore.kernels.native")

#: kind -> numpy dtype of a pointer argument; ``i64``/``u64`` are scalars
POINTER_DTYPES = {
    "f32*": np.float32,
    "f64*": np.float64,
    "i32*": np.int32,
    "i64*": np.int64,
    "u8*": np.uint8,
    "u32*": np.uint32,
    "u64*": np.uint64,
}
SCALARS = ("i64", "u64")

_CTYPES = {kind: ctypes.c_void_p for kind in POINTER_DTYPES} | {
    "i64": ctypes.c_int64,
    "u64": ctypes.c_uint64,
}
#: Numba helpers an object references only on error paths (raising an exception, freeing
#: memory the functions never allocate). Where Numba has not registered them in this
#: process they resolve to abort(): a path that cannot be taken must not fail silently.
_ERROR_PATH_SYMBOLS = (
    "NRT_Free",
    "NRT_MemInfo_call_dtor",
    "numba_do_raise",
    "numba_gil_ensure",
    "numba_gil_release",
    "numba_runtime_build_excinfo_struct",
    "numba_unpickle",
)

_lock = threading.Lock()
_engines: list[Any] = []  # the MCJIT engines own the loaded code: kept for the process


def code_key(sources: Iterable[Path]) -> str:
    """What a compiled function depends on besides its name: its Python sources, Numba's
    and llvmlite's versions, and the CPU."""
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.read_bytes())
    for package in ("numba", "llvmlite"):
        digest.update(importlib.metadata.version(package).encode())
    digest.update(cpu_signature().encode())
    return digest.hexdigest()


def cached_function(
    name: str, kinds: tuple[str, ...], key: str, build: Callable[[], bytes]
) -> Callable[..., None]:
    """The function ``name`` (arguments of ``kinds``) from the cache entry of ``name`` and
    ``key``; ``build()`` compiles its object when the entry is missing (once across
    processes, under the entry's build lock). Each call maps the object anew: callers
    keep the function."""
    if not cache_enabled():
        return _as_function(kinds, build())
    entry = hashlib.sha256(f"{name}\n{key}".encode()).hexdigest()[:40]
    store = LibraryCache()
    if (function := _load_cached(store, entry, kinds)) is not None:
        return function
    with store.building(entry):
        if (function := _load_cached(store, entry, kinds)) is not None:
            return function
        log.info("compiling %s with Numba", name)
        data = build()
        function = _as_function(kinds, data)  # an object that does not link is not kept
        with tempfile.TemporaryDirectory(prefix="lakescore-cpu-") as tmp:
            built = Path(tmp) / "function.o"
            built.write_bytes(data)
            store.put(entry, built)
        return function


def _load_cached(
    store: LibraryCache, key: str, kinds: tuple[str, ...]
) -> Callable[..., None] | None:
    path = store.get(key)
    if path is None:
        return None
    try:
        return _as_function(kinds, path.read_bytes())
    except Exception as exc:  # not an object llvmlite can link, no entry point
        log.warning("discarding cache entry %s that does not load (%s)", path, exc)
        store.discard(key)
        return None


def undefined_symbols(data: bytes) -> set[str]:
    """The names an ELF64 (little-endian) object uses but does not define: the entries of
    its symbol table whose section index is SHN_UNDEF. Empty for another format (Mach-O,
    COFF): those are left unchecked. A truncated object raises."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return set()
    (section_offset,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, section_offset + k * entry_size)
        for k in range(count)
    ]
    names: set[str] = set()
    for _, kind, _, _, offset, size, link, _, _, sym_size in sections:
        if kind != 2:  # SHT_SYMTAB
            continue
        strings = sections[link][4]
        for at in range(offset + sym_size, offset + size, sym_size):  # entry 0 is null
            name, _, _, section = struct.unpack_from("<IBBH", data, at)
            if section == 0 and name:
                end = data.index(b"\x00", strings + name)
                names.add(data[strings + name : end].decode())
    return names


def _as_function(kinds: tuple[str, ...], data: bytes) -> Callable[..., None]:
    """Link the object ``data`` into a new MCJIT engine; its entry point as a ctypes
    function (which releases the GIL while it runs)."""
    import llvmlite.binding as llvm

    helpers = {n for n in undefined_symbols(data) if n.startswith(("numba_", "NRT_"))}
    needed = sorted(helpers - set(_ERROR_PATH_SYMBOLS))
    if needed:
        # A helper on a path the inputs take (math.ldexp calls numba_ldexp, say) would
        # resolve to nothing where Numba is not imported, and crash the process when called.
        raise ValueError(f"the object calls Numba's {needed[0]}, absent without Numba")
    with _lock:
        if not _engines:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            abort = ctypes.cast(ctypes.CDLL(None).abort, ctypes.c_void_p).value
            for symbol in _ERROR_PATH_SYMBOLS:
                if not llvm.address_of_symbol(symbol):
                    llvm.add_symbol(symbol, abort)
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
    prototype = ctypes.CFUNCTYPE(None, *(_CTYPES[kind] for kind in kinds))
    return prototype(address)

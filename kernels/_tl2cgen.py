"""The TL2cgen backend: the forest as C (TL2cgen), compiled by gcc into a shared library.

The library is built once per model and CPU and kept in the kernel cache
(:class:`kernels.cache.LibraryCache`); compiling is slow (500 trees of depth 8: 151
gcc CPU s at -O1, so about 80 s on two idle cores; -O3 took 16 minutes on the loaded
machine), loading a cached library takes milliseconds. The treelite model
comes from the IR (:mod:`kernels._treelite_model`), so every format lakescore reads can
be compiled, with the same split rule as the Numba kernels.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from kernels._treelite_model import build_treelite_model, check_expressible
from kernels.cache import LibraryCache, cache_enabled, kernel_key
from kernels.errors import BackendUnavailableError
from kernels.ir import Forest

log = logging.getLogger("lakescore.kernels.tl2cgen")

#: Appended to TL2cgen's ``-O3``, so they win. Measured on the first 50 trees of the DESIGN
#: reference model (benchmarks/README.md, "TL2cgen build"): -O1 compiles in 9.0 gcc CPU s
#: against 22.9 at -O3 and scores 1.8x faster (87.7k against 49.0k rows/s, 1 thread):
#: nested branches that big only bloat at -O2/-O3. Results are bitwise identical: no
#: flag that changes floating-point semantics is used.
GCC_OPTIONS = ("-O1",)
#: Rows per call into the library: bounds the float64 copy of the input (25 MiB for 50
#: features) while each call still has enough rows for every thread.
CHUNK_ROWS = 65_536


def unavailable_reason() -> str | None:
    """Why this machine cannot compile with TL2cgen, or None when it can."""
    try:
        import tl2cgen  # noqa: F401
        import treelite  # noqa: F401
    except ImportError as exc:
        return f"backend 'tl2cgen' needs the tl2cgen and treelite packages ({exc})"
    if shutil.which("gcc") is None:
        return "backend 'tl2cgen' needs gcc on PATH to compile the model"
    return None


def compile_library(forest: Forest, libpath: Path) -> None:
    """Generate the forest's C code and compile it with gcc into ``libpath``.

    TL2cgen prints progress to stdout and raises warnings (its bundled treelite reading a
    newer treelite's model); both go to this module's logger instead, so a command's
    stdout stays its own.
    """
    import tl2cgen

    model = build_treelite_model(forest)
    cores = os.cpu_count() or 1
    # One translation unit per core, so that gcc compiles on every core at once.
    params = {"parallel_comp": cores} if forest.num_trees >= 2 * cores else {}
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tl2cgen.export_lib(
            model, toolchain="gcc", libpath=libpath, params=params, nthread=cores,
            options=list(GCC_OPTIONS),
        )  # fmt: skip
    for line in [*chatter.getvalue().splitlines(), *(str(w.message) for w in caught)]:
        if line.strip():
            log.debug("tl2cgen: %s", line.strip())


class Tl2cgenLauncher:
    """A compiled forest in a shared library, loaded through ``tl2cgen.Predictor``.

    Parameters
    ----------
    forest
        The model; categorical splits and LightGBM's zero band are refused.
    n_threads
        Threads per prediction call (default: every core).
    cache_root
        The kernel cache's root (default :func:`kernels.cache.default_cache_dir`);
        ``LAKESCORE_CACHE=0`` compiles into a temporary folder instead.
    """

    layout = "tl2cgen"

    def __init__(
        self, forest: Forest, *, n_threads: int | None = None, cache_root: Path | None = None
    ) -> None:
        reason = unavailable_reason()
        if reason:
            raise BackendUnavailableError(reason)
        check_expressible(forest)
        self.n_outputs = forest.num_outputs
        self.base_margin = np.ascontiguousarray(forest.base_margin, dtype=np.float64)
        self.n_threads = n_threads
        self.library: Path | None = None
        self._predictor: Any = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        # Predictor.predict may be called by one thread at a time (TL2cgen's rule).
        self._lock = threading.Lock()
        if forest.num_trees:  # a linear model has no trees: nothing to compile
            self.library = self._library(forest, cache_root)

    def _library(self, forest: Forest, cache_root: Path | None) -> Path:
        """The compiled library's path (loaded as ``self._predictor``): from the kernel
        cache, else compiled (once across processes, under the entry's build lock)."""
        if not cache_enabled():
            self._tempdir = tempfile.TemporaryDirectory(prefix="lakescore-tl2cgen-")
            path = Path(self._tempdir.name) / "model.so"
            compile_library(forest, path)
            self._predictor = self._load(path)
            return path
        store = LibraryCache(cache_root)
        key = kernel_key(forest, "tl2cgen")
        if (cached := self._load_cached(store, key)) is not None:
            return cached
        with store.building(key):
            # Another process may have built it while this one waited for the lock.
            if (cached := self._load_cached(store, key)) is not None:
                return cached
            log.info("compiling %d trees with TL2cgen and gcc", forest.num_trees)
            with tempfile.TemporaryDirectory(prefix="lakescore-tl2cgen-") as tmp:
                built = Path(tmp) / "model.so"
                compile_library(forest, built)
                library = store.put(key, built)
                # Loaded before the temporary folder goes, should the cache be unwritable.
                self._predictor = self._load(library)
                return library

    def _load_cached(self, store: LibraryCache, key: str) -> Path | None:
        """Load ``key``'s cached library; an entry that fails to load is discarded."""
        path = store.get(key)
        if path is None:
            return None
        try:
            self._predictor = self._load(path)
        except Exception as exc:  # TL2cgenError, OSError from dlopen, a wrong model
            log.warning("discarding kernel cache entry %s that does not load (%s)", path, exc)
            store.discard(key)
            return None
        return path

    def _load(self, path: Path) -> Any:
        import tl2cgen

        predictor = tl2cgen.Predictor(str(path), nthread=self.n_threads or -1)
        if predictor.num_target != self.n_outputs or predictor.leaf_output_type != "float64":
            raise ValueError(f"{path} is not a float64 library of {self.n_outputs} output(s)")
        return predictor

    @property
    def nbytes(self) -> int:
        return self.library.stat().st_size if self.library else 0

    def __call__(self, X: np.ndarray, out: np.ndarray) -> None:
        out[:] = self.base_margin
        if self._predictor is None:
            return
        import tl2cgen

        with self._lock:
            for start in range(0, X.shape[0], CHUNK_ROWS):
                rows = X[start : start + CHUNK_ROWS].astype(np.float64)
                margin = self._predictor.predict(tl2cgen.DMatrix(rows), pred_margin=True)
                out[start : start + rows.shape[0]] += margin.reshape(rows.shape[0], -1)

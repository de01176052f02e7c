"""The Numba CUDA kernel: one GPU thread per row, walking every tree in turn.

Each thread sums its row's leaf values in float64 in tree order, with the IR's one rule
(``x < threshold`` on float32, NaN takes ``default_left``), so its margins are bitwise those
of the CPU kernel. A block first copies its rows into shared memory with coalesced loads:
a tree walk reads features in a data-dependent order, which straight from global memory
costs one scattered load per visited node (staging was 24% faster on an H200 for the
DESIGN reference model; ``benchmarks/gpu_check.py`` measures it).

Batches travel in chunks through pinned host buffers that live as long as the launcher
(pinned memory is what lets a copy run asynchronously). Chunks alternate between two
streams, so chunk i+1's copy to the device overlaps chunk i's kernel.

``kernels`` imports this module (and so ``numba.cuda``, about 0.5 s) only when the ``cuda``
backend is asked for, or ``auto`` finds an NVIDIA driver.
"""

from __future__ import annotations

import itertools
import math
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
from numba import cuda, float32

from kernels.errors import BackendUnavailableError
from kernels.ir import Forest

#: Bytes of X per chunk: large enough to fill the GPU, small enough to pin two of them.
CHUNK_BYTES = 64 << 20
#: Shared memory a block may use without opting in to more (the same on every CUDA GPU).
_SHARED_LIMIT = 48 << 10

UNAVAILABLE = (
    "backend 'cuda' needs an NVIDIA GPU with a working driver and the numba-cuda package; "
    "none is usable here (use --backend numba or auto)"
)


def is_simulated() -> bool:
    """True when Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) stands in for a GPU."""
    return bool(numba.config.ENABLE_CUDASIM)


def cuda_available() -> bool:
    """True when CUDA kernels can run here: on a GPU, or in Numba's CUDA simulator."""
    return bool(cuda.is_available())


@cuda.jit(device=True)
def _row_margin(x, k, forest):
    """The margin of output ``k`` for one row ``x``: the CPU kernel's walk, tree by tree."""
    feature, threshold, left, right, default_left, value, offsets, group, base = forest
    acc = base[k]
    for t in range(offsets.shape[0] - 1):
        if group[t] != k:
            continue
        root = offsets[t]
        node = root
        f = feature[node]
        while f >= 0:
            v = x[f]
            # NaN fails every comparison, so it takes the tree's default branch instead.
            go_left = default_left[node] != 0 if math.isnan(v) else v < threshold[node]
            node = root + (left[node] if go_left else right[node])
            f = feature[node]
        acc += value[node]
    return acc


# ``forest`` is the tuple of Forest.arrays() on the device. Kernels compile on first launch
# for the argument types (eager signatures would compile when this module is imported);
# cache=True keeps the machine code on disk for the next process.
@cuda.jit(cache=True)
def _predict_shared(X, forest, out):
    """One thread per row; the block's rows are staged in (dynamic) shared memory."""
    rows = cuda.shared.array(0, dtype=float32)
    n_features = X.shape[1]
    tid = cuda.threadIdx.x
    first = cuda.blockIdx.x * cuda.blockDim.x
    n = min(cuda.blockDim.x, X.shape[0] - first)
    # The block's rows are contiguous in X: consecutive threads load consecutive floats.
    for i in range(tid, n * n_features, cuda.blockDim.x):
        rows[i] = X[first + i // n_features, i % n_features]
    cuda.syncthreads()
    if tid < n:
        x = rows[tid * n_features : (tid + 1) * n_features]
        for k in range(out.shape[1]):
            out[first + tid, k] = _row_margin(x, k, forest)


@cuda.jit(cache=True)
def _predict_global(X, forest, out):
    """One thread per row, features read from global memory (rows too wide for shared)."""
    row = cuda.grid(1)
    if row < X.shape[0]:
        for k in range(out.shape[1]):
            out[row, k] = _row_margin(X[row], k, forest)


class CudaLauncher:
    """The forest's arrays on the GPU, bound to a kernel, with reusable transfer buffers.

    Parameters
    ----------
    forest
        The model; its arrays are copied to the device once, here.
    chunk_rows
        Rows per host-to-device chunk (default: :data:`CHUNK_BYTES` of X).
    threads_per_block
        CUDA block size (a multiple of 32).
    rows_in_shared
        Stage each block's rows in shared memory; default: whenever they fit.
    copy_threads
        Host threads that copy X into the pinned buffer: one core copied 7 GB/s where the
        bus to an H200 carried 47 GB/s, so one thread left the GPU waiting.
    """

    def __init__(
        self,
        forest: Forest,
        *,
        chunk_rows: int | None = None,
        threads_per_block: int = 128,
        rows_in_shared: bool | None = None,
        copy_threads: int = 4,
    ) -> None:
        if not cuda_available():
            raise BackendUnavailableError(UNAVAILABLE)
        if threads_per_block <= 0 or threads_per_block % 32:
            raise ValueError(f"threads_per_block must be a multiple of 32, not {threads_per_block}")
        self.num_features = forest.num_features
        self.num_outputs = forest.num_outputs
        self.threads_per_block = threads_per_block
        self.chunk_rows = chunk_rows or max(1, CHUNK_BYTES // (4 * max(1, self.num_features)))
        shared_bytes = threads_per_block * self.num_features * 4
        if rows_in_shared is None:
            rows_in_shared = 0 < shared_bytes <= _SHARED_LIMIT
        self.rows_in_shared = rows_in_shared
        self._kernel = _predict_shared if rows_in_shared else _predict_global
        self._shared_bytes = shared_bytes if rows_in_shared else 0
        self._forest = tuple(
            cuda.to_device(np.ascontiguousarray(a)) for a in forest.arrays().values()
        )
        self._streams = (cuda.stream(), cuda.stream())
        self._buffers: list[tuple[np.ndarray, np.ndarray, Any, Any]] = []
        self._copy_threads = copy_threads
        self._pool = ThreadPoolExecutor(copy_threads) if copy_threads > 1 else None
        # Concurrent calls would share the staging buffers.
        self._lock = threading.Lock()
        # Compile now, so a missing CUDA toolkit shows at compile_model, not at predict; the
        # one-row launch would warn that its grid is too small to fill the GPU.
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Grid size")
                self.predict_device(
                    cuda.to_device(np.zeros((1, self.num_features), np.float32)),
                    cuda.device_array((1, self.num_outputs), np.float64),
                )
            cuda.synchronize()
        except ImportError as exc:  # numba's CudaSupportError, NvvmSupportError, ...
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise BackendUnavailableError(f"{UNAVAILABLE} ({reason})") from exc

    def predict_device(self, X: Any, out: Any, *, stream: Any = 0) -> None:
        """Launch on arrays already on the device (asynchronous on ``stream``).

        ``X`` is a C-contiguous float32 device array (n_rows, n_features), ``out`` a
        float64 device array (n_rows, n_outputs).
        """
        n_rows = X.shape[0]
        blocks = (n_rows + self.threads_per_block - 1) // self.threads_per_block
        launch = self._kernel[blocks, self.threads_per_block, stream, self._shared_bytes]
        launch(X, self._forest, out)

    def __call__(self, X: np.ndarray, out: np.ndarray) -> None:
        with self._lock:
            self._ensure_buffers(min(X.shape[0], self.chunk_rows))
            pending: list[tuple[int, int] | None] = [None, None]
            for i, start in enumerate(range(0, X.shape[0], self.chunk_rows)):
                stop = min(X.shape[0], start + self.chunk_rows)
                b = i % 2
                host_in, host_out, dev_in, dev_out = self._buffers[b]
                stream = self._streams[b]
                # Buffers b were last used by chunk i-2: wait for it, then hand out its rows.
                stream.synchronize()
                self._collect(pending[b], host_out, out)
                n = stop - start
                self._stage(host_in[:n], X[start:stop])
                dev_in[:n].copy_to_device(host_in[:n], stream=stream)
                self.predict_device(dev_in[:n], dev_out[:n], stream=stream)
                dev_out[:n].copy_to_host(host_out[:n], stream=stream)
                pending[b] = (start, stop)
            for b in (0, 1):
                self._streams[b].synchronize()
                self._collect(pending[b], self._buffers[b][1], out)

    def _ensure_buffers(self, rows: int) -> None:
        """Allocate (or grow) the two sets of pinned host and device buffers."""
        if self._buffers and self._buffers[0][0].shape[0] >= rows:
            return
        self._buffers = [
            (
                cuda.pinned_array((rows, self.num_features), np.float32),
                cuda.pinned_array((rows, self.num_outputs), np.float64),
                cuda.device_array((rows, self.num_features), np.float32),
                cuda.device_array((rows, self.num_outputs), np.float64),
            )
            for _ in range(2)
        ]

    def _stage(self, dst: np.ndarray, src: np.ndarray) -> None:
        """Copy ``src`` into pinned ``dst``, in slices on several threads when large."""
        if self._pool is None or src.nbytes < (8 << 20):
            np.copyto(dst, src)
            return
        bounds = np.linspace(0, src.shape[0], self._copy_threads + 1).astype(np.int64)
        slices = [slice(a, b) for a, b in itertools.pairwise(bounds)]
        # numpy releases the GIL while copying, so the slices copy in parallel.
        for future in [self._pool.submit(np.copyto, dst[s], src[s]) for s in slices]:
            future.result()

    @staticmethod
    def _collect(rows: tuple[int, int] | None, host_out: np.ndarray, out: np.ndarray) -> None:
        if rows is not None:
            out[rows[0] : rows[1]] = host_out[: rows[1] - rows[0]]

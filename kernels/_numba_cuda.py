"""The Numba CUDA kernels: one GPU thread per row, every tree in turn, margins in float64.

Two traversals, both adding leaf values in float64 in tree order (so their margins are
bitwise those of the IR's walk), both reading the block's rows from shared memory: a tree
walk reads features in a data-dependent order, which straight from global memory costs one
scattered load per visited node (staging was 24% faster for the walk).

* **perfect** (the default, :mod:`kernels._cuda_perfect`): the forest padded to complete
  trees of the forest's depth (:func:`kernels._cpu_layout.perfect_layout`), so the
  children of node ``q`` are ``2q + c`` and ``2q + c + 1`` (``c`` fixed per tree) and a
  node is two 4-byte words: a float32 threshold and a code, twice the offset of its
  feature's column among the block's staged rows plus 1 when a missing value goes right.
  The rows are staged column-major (column j of the block at ``j * B``), so whatever
  columns the 32 threads of a warp ask for, they read 32 different banks. A step is branch-free::

      x = rows[code // 2 + tid]
      go_right = x >= threshold or (isnan(x) and code % 2)
      q = 2 * q + c + go_right

  which is the IR's rule exactly: a number goes right iff ``not x < threshold``, NaN fails
  ``x >= threshold`` and so takes its default way. A ``-inf`` threshold is an ordinary
  always-right split (``x >= -inf`` for every number). A NaN threshold (``x < NaN`` is
  false for every ``x``: every number goes right) is laid out as ``-inf``, which routes
  every value the same way. Nodes come from global memory (one level of a tree spans
  a few cache lines, and the forest stays in L1/L2), two trees descend together so each
  thread has two independent chains of loads, and index arithmetic stays in uint32.
* **walk** (:mod:`kernels._cuda_walk`): the IR's nodes with branches and every node kind
  (categorical splits and LightGBM's zero band, as
  :func:`kernels._numba_cpu.predict_reference` scores them), for forests with those,
  forests deeper than :data:`kernels._cpu_layout.MAX_PERFECT_DEPTH`, or rows too wide for
  shared memory.

On an H200 (the DESIGN reference model, 10M rows on the device) the walk scored 56M rows/s
and the perfect traversal 265M (128 threads a block; 64: 263M; 96: 249M; one tree at a
time: 168M). Slower there, and so not kept: nodes copied to shared memory 8 trees at a
time (180M: the copies and barriers cost more than L1 hits), NaN resolved at staging into
two copies of each column (148M) and the same with uint32 keys that make a node one 8-byte
load (140M): both double the shared memory per row, halving the rows in flight.

Batches travel in chunks through pinned host buffers that live as long as the launcher
(pinned memory is what lets a copy run asynchronously). Chunks alternate between two
streams, so chunk i+1's copy to the device overlaps chunk i's kernel. :meth:`CudaLauncher.score`
applies the output link on the device too and brings back float32, so ``Kernel.predict``
moves 4 bytes a row back instead of 8 and spends no host time on the link. (On an H100,
before this, ``Kernel.predict`` scored 43.7M rows/s where the launcher alone scored 90.4M;
the change is not yet measured on a GPU.)

``kernels`` imports this module (and so ``numba.cuda``, about 0.5 s) only when the ``cuda``
backend is asked for, or ``auto`` finds an NVIDIA driver.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
from numba import cuda

from kernels._cuda_perfect import perfect_arrays, predict_perfect
from kernels._cuda_walk import WALK_ARRAYS, predict_global, predict_shared
from kernels.errors import BackendUnavailableError
from kernels.ir import Forest

#: Bytes of X per chunk: large enough to fill the GPU, small enough to pin two of them.
CHUNK_BYTES = 64 << 20
#: Shared memory a block may use without opting in to more (the same on every CUDA GPU).
_SHARED_LIMIT = 48 << 10
#: Block size of the perfect traversal unless the staged rows need a smaller one.
PERFECT_THREADS = 128
#: Host threads copying X into pinned memory, at most (one core copied 6.5 GB/s; the bus
#: to an H200 carried 48 GB/s, and 8 threads scored 88M rows/s from host memory where 4
#: scored 68M).
COPY_THREADS = 8
U32 = np.uint32

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


LINK_CODES = {"identity": 0, "sigmoid": 1, "exp": 2, "softmax": 3, "argmax": 4}
#: Block size of the link kernel (one thread per row, a few operations each).
FINISH_THREADS = 256


@cuda.jit(cache=True)
def _finish(margin, link, scale, out):
    """:func:`kernels.kernel.apply_link` on the device: the same float64 expressions, in
    the same order, rounded once to float32 (``out``); argmax writes one column."""
    row = cuda.grid(1)
    if row >= margin.shape[0]:
        return
    n_out = margin.shape[1]
    if link == 4:  # the first largest margin, as np.argmax
        best = 0
        top = margin[row, 0] * scale
        for k in range(1, n_out):
            m = margin[row, k] * scale
            if m > top:
                best = k
                top = m
        out[row, 0] = best
    elif link == 3:  # softmax, shifted by the row's largest margin
        top = margin[row, 0] * scale
        for k in range(1, n_out):
            top = max(top, margin[row, k] * scale)
        total = 0.0
        for k in range(n_out):
            total += math.exp(margin[row, k] * scale - top)
        for k in range(n_out):
            out[row, k] = math.exp(margin[row, k] * scale - top) / total
    else:
        for k in range(n_out):
            m = margin[row, k] * scale
            if link == 1:
                m = 1.0 / (1.0 + math.exp(-m))
            elif link == 2:
                m = math.exp(m)
            out[row, k] = m


@dataclasses.dataclass(frozen=True)
class _Buffers:
    """One stream's reusable buffers for a chunk of rows: the rows (pinned, then on the
    device), the margins on the device and back, and the float32 predictions on the
    device and back. Rows and predictions are flat, so a chunk's ``(n, width)`` view is
    contiguous in either order (rows: as the batch is) and for any width."""

    host_in: np.ndarray
    host_margin: np.ndarray
    host_pred: np.ndarray
    dev_in: Any
    dev_margin: Any
    dev_pred: Any


def _perfect_block(row_bytes: int, requested: int | None) -> int | None:
    """Block size whose staged rows (``row_bytes`` each) fit shared memory, or None."""
    if requested is not None:
        return requested if requested * row_bytes <= _SHARED_LIMIT else None
    block = min(PERFECT_THREADS, _SHARED_LIMIT // row_bytes // 32 * 32)
    return block if block >= 32 else None


class CudaLauncher:
    """The forest's arrays on the GPU, bound to a kernel, with reusable transfer buffers.

    Parameters
    ----------
    forest
        The model; its arrays are copied to the device once, here.
    chunk_rows
        Rows per host-to-device chunk (default: :data:`CHUNK_BYTES` of X).
    threads_per_block
        CUDA block size (a multiple of 32); default :data:`PERFECT_THREADS` for the perfect
        traversal (less when its staged rows would not fit shared memory), 128 for the walk.
    traversal
        ``"perfect"``, ``"walk"``, or ``"auto"`` (the same as ``"perfect"``): perfect
        wherever it is exact and its rows fit shared memory, else the walk;
        :attr:`traversal` says which one runs.
    pair_trees
        Perfect: walk two trees at once.
    rows_in_shared
        Walk: stage each block's rows in shared memory; default: whenever they fit.
    copy_threads
        Host threads that copy X into the pinned buffer; default :data:`COPY_THREADS`, or
        the CPU count where smaller.
    """

    #: Feature-major (F-contiguous) batches are scored as they are (see _pipeline).
    accepts_feature_major = True

    def __init__(
        self,
        forest: Forest,
        *,
        chunk_rows: int | None = None,
        threads_per_block: int | None = None,
        traversal: str = "auto",
        pair_trees: bool = True,
        rows_in_shared: bool | None = None,
        copy_threads: int | None = None,
    ) -> None:
        if not cuda_available():
            raise BackendUnavailableError(UNAVAILABLE)
        if threads_per_block is not None and (threads_per_block <= 0 or threads_per_block % 32):
            raise ValueError(f"threads_per_block must be a multiple of 32, not {threads_per_block}")
        if traversal not in ("auto", "perfect", "walk"):
            raise ValueError(f"traversal must be 'auto', 'perfect' or 'walk', not {traversal!r}")
        self.num_features = forest.num_features
        self.num_outputs = forest.num_outputs
        self.chunk_rows = chunk_rows or max(1, CHUNK_BYTES // (4 * max(1, self.num_features)))
        arrays = block = None
        if traversal != "walk":
            width = np.unique(forest.feature[forest.feature >= 0]).size
            block = _perfect_block(4 * max(1, width), threads_per_block)
            arrays = perfect_arrays(forest, block) if block else None
        if arrays and block:
            self._init_perfect(arrays, block, pair_trees)
        else:
            self._init_walk(forest, threads_per_block or 128, rows_in_shared)
        self._streams = (cuda.stream(), cuda.stream())
        self._buffers: list[_Buffers] = []
        self._copy_threads = copy_threads or min(COPY_THREADS, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self._copy_threads) if self._copy_threads > 1 else None
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

    def _init_perfect(self, arrays: dict[str, Any], block: int, pair: bool) -> None:
        self.traversal = "perfect"
        self.threads_per_block = block
        self.rows_in_shared = True
        self.pair_trees = pair
        self._shared_bytes = arrays["columns"].shape[0] * block * 4
        self._kernel = predict_perfect
        names = ("columns", "node", "threshold", "leaf", "group_start", "base")
        device = [cuda.to_device(arrays[k]) for k in names]
        self._args: tuple[Any, ...] = (*device, arrays["depth"], int(pair))

    def _init_walk(self, forest: Forest, block: int, rows_in_shared: bool | None) -> None:
        self.traversal = "walk"
        self.threads_per_block = block
        self.pair_trees = False
        shared_bytes = block * self.num_features * 4
        if rows_in_shared is None:
            rows_in_shared = 0 < shared_bytes <= _SHARED_LIMIT
        self.rows_in_shared = rows_in_shared
        self._kernel = predict_shared if rows_in_shared else predict_global
        self._shared_bytes = shared_bytes if rows_in_shared else 0
        arrays = forest.arrays()
        # A forest with no categorical split has no bitsets: one word keeps the array real.
        arrays["cat_bits"] = np.append(arrays["cat_bits"], np.uint32(0))
        self._args = (tuple(cuda.to_device(np.ascontiguousarray(arrays[k])) for k in WALK_ARRAYS),)

    def predict_device(self, X: Any, out: Any, *, stream: Any = 0) -> None:
        """Launch on arrays already on the device (asynchronous on ``stream``).

        ``X`` is a C- or F-contiguous float32 device array (n_rows, n_features), ``out`` a
        float64 device array (n_rows, n_outputs). Each layout compiles its own kernel.
        """
        n_rows = X.shape[0]
        blocks = (n_rows + self.threads_per_block - 1) // self.threads_per_block
        launch = self._kernel[blocks, self.threads_per_block, stream, self._shared_bytes]
        launch(X, *self._args, out)

    def finish_device(
        self, margin: Any, link: str, scale: float, out: Any, *, stream: Any = 0
    ) -> None:
        """Apply ``link`` (scaled by ``scale``) to device margins, into float32 device
        ``out`` (n_rows, n_outputs, or 1 for argmax); asynchronous on ``stream``."""
        blocks = (margin.shape[0] + FINISH_THREADS - 1) // FINISH_THREADS
        _finish[blocks, FINISH_THREADS, stream](margin, LINK_CODES[link], float(scale), out)

    def __call__(self, X: np.ndarray, out: np.ndarray) -> None:
        """Margins of ``X``'s rows into ``out`` (float64), host memory to host memory."""
        with self._lock:
            self._pipeline(X, out, None)

    def score(self, X: np.ndarray, link: str, scale: float = 1.0) -> np.ndarray:
        """``link(scale * margin)`` of ``X``'s rows as float32 (n_rows, n_outputs), or
        (n_rows, 1) for argmax: :func:`kernels.kernel.apply_link` applied on the device,
        so only the float32 result comes back (``Kernel.predict`` uses this)."""
        if link not in LINK_CODES:
            raise ValueError(f"unknown link {link!r}")
        width = 1 if link == "argmax" else self.num_outputs
        out = np.empty((X.shape[0], width), np.float32)
        if X.shape[0]:
            with self._lock:
                self._pipeline(X, out, (link, float(scale)))
        return out

    def _pipeline(self, X: np.ndarray, out: np.ndarray, link: tuple[str, float] | None) -> None:
        """Chunks of ``X`` through both streams' buffers: stage, copy in, score (and apply
        ``link``), copy back; each chunk's result is handed to ``out`` once its stream is
        done, when the buffers come round again (chunk i+2) or at the end."""
        self._ensure_buffers(min(X.shape[0], self.chunk_rows))
        width, nf = out.shape[1], self.num_features
        # Feature-major batches (the engine's, from Arrow columns) stay feature-major: the
        # kernels compile for either layout, and a column-major staged chunk is a run of
        # contiguous column pieces, where transposing it on the host would cost more than
        # scoring it.
        order = "F" if X.flags.f_contiguous and not X.flags.c_contiguous else "C"
        pending: list[tuple[int, int, np.ndarray] | None] = [None, None]
        for i, start in enumerate(range(0, X.shape[0], self.chunk_rows)):
            stop = min(X.shape[0], start + self.chunk_rows)
            n = stop - start
            b = i % 2
            buf = self._buffers[b]
            stream = self._streams[b]
            # Buffers b were last used by chunk i-2: wait for it, then hand out its rows.
            stream.synchronize()
            self._collect(pending[b], out)
            host_in = buf.host_in[: n * nf].reshape((n, nf), order=order)
            dev_in = buf.dev_in[: n * nf].reshape(n, nf, order=order)
            self._stage(host_in, X[start:stop])
            dev_in.copy_to_device(host_in, stream=stream)
            self.predict_device(dev_in, buf.dev_margin[:n], stream=stream)
            if link is None:
                host = buf.host_margin[:n]
                buf.dev_margin[:n].copy_to_host(host, stream=stream)
            else:
                dev_pred = buf.dev_pred[: n * width].reshape(n, width)
                self.finish_device(buf.dev_margin[:n], *link, dev_pred, stream=stream)
                host = buf.host_pred[: n * width].reshape(n, width)
                dev_pred.copy_to_host(host, stream=stream)
            pending[b] = (start, stop, host)
        for b in (0, 1):
            self._streams[b].synchronize()
            self._collect(pending[b], out)

    def _ensure_buffers(self, rows: int) -> None:
        """Allocate (or grow) the two sets of pinned host and device buffers."""
        if self._buffers and self._buffers[0].dev_margin.shape[0] >= rows:
            return
        nf, no = self.num_features, self.num_outputs
        self._buffers = [
            _Buffers(
                host_in=cuda.pinned_array(rows * nf, np.float32),
                host_margin=cuda.pinned_array((rows, no), np.float64),
                host_pred=cuda.pinned_array(rows * no, np.float32),
                dev_in=cuda.device_array(rows * nf, np.float32),
                dev_margin=cuda.device_array((rows, no), np.float64),
                dev_pred=cuda.device_array(rows * no, np.float32),
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
    def _collect(done: tuple[int, int, np.ndarray] | None, out: np.ndarray) -> None:
        if done is not None:
            out[done[0] : done[1]] = done[2]

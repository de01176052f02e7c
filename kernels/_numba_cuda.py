"""The Numba CUDA kernels: one GPU thread per row, every tree in turn, margins in float64.

Two traversals, both adding leaf values in float64 in tree order (so their margins are
bitwise those of the IR's walk), both reading the block's rows from shared memory, staged
with coalesced loads: a tree walk reads features in a data-dependent order, which straight
from global memory costs one scattered load per visited node.

* **perfect** (the default): the forest padded to complete trees of the forest's depth
  (:func:`kernels._cpu_layout.perfect_layout`), so the children of position ``p`` are
  ``2p + 1`` and ``2p + 2`` and a node is two words: a float32 threshold and an int32
  code, the offset of its feature's column among the block's staged rows, bitwise
  complemented when a missing value goes right. A step is branch-free::

      x = rows[offset + tid]                     # column-major: no bank conflicts
      x = (+inf if code < 0 else -inf) if isnan(x) else x
      p = 2 * p + 1 + (x >= threshold)

  which takes ``x < threshold`` left and NaN its default way, exactly, as long as no
  threshold is ``-inf`` or NaN. Trees are walked two at a time (independent loads for the
  scheduler to overlap); nodes are read from global memory (one level of a tree spans a
  few cache lines, and the forest stays in L2), or block by block from shared memory in
  chunks of ``trees_in_shared`` trees.
* **walk**: the IR's nodes with branches, for forests deeper than
  :data:`kernels._cpu_layout.MAX_PERFECT_DEPTH`, with a ``-inf`` threshold, or with rows
  too wide for shared memory.

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
from numba import cuda, float32, uint32

from kernels._cpu_layout import MAX_PERFECT_DEPTH, TILE_ROWS, branch_free_exact, perfect_layout
from kernels.errors import BackendUnavailableError
from kernels.ir import Forest

#: Bytes of X per chunk: large enough to fill the GPU, small enough to pin two of them.
CHUNK_BYTES = 64 << 20
#: Shared memory a block may use without opting in to more (the same on every CUDA GPU).
_SHARED_LIMIT = 48 << 10
#: Block size of the perfect traversal unless the staged rows need a smaller one.
PERFECT_THREADS = 128
U32 = np.uint32
#: ``flags`` bits of the perfect kernels: walk trees in pairs; stage rows one per thread
#: (else one per warp); stage each column twice with NaN resolved (see _step_resolved).
PAIR, BY_THREAD, RESOLVED = 1, 2, 4
U64 = np.uint64
_SIGN = np.uint32(0x80000000)
_INF_BITS = np.uint32(0x7F800000)
_KEY_MAX = np.uint32(0xFFFFFFFF)
_LOW = np.uint64(0xFFFFFFFF)
_POS_INF = np.float32(np.inf)
_NEG_INF = np.float32(-np.inf)

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


# --- walk: the IR's nodes, with branches -------------------------------------------------


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


# --- perfect: complete trees, branch-free steps ------------------------------------------


@cuda.jit(device=True)
def _put(rows, i, copy, x, copies):
    """Store ``x`` at ``rows[i]``; with ``copies``, NaN as -inf there and as +inf at
    ``rows[i + copy]``."""
    if copies:
        nan = x != x
        rows[i] = _NEG_INF if nan else x
        rows[i + copy] = _POS_INF if nan else x
    else:
        rows[i] = x


@cuda.jit(device=True)
def _stage_rows(X, columns, rows, first, n, by_thread, copies):
    """Copy the block's rows' split columns to ``rows``, column-major (column j at j * B).

    ``by_thread``: thread r copies row r (its loads hit L1 after the first column); else
    each warp copies whole rows, 32 columns per load (coalesced, conflicting stores).
    ``copies``: NaN resolved here, into two copies of the columns (see ``_step_resolved``).
    """
    tid = cuda.threadIdx.x
    block = cuda.blockDim.x
    copy = columns.shape[0] * block
    if by_thread:
        if tid < n:
            for j in range(columns.shape[0]):
                _put(rows, j * block + tid, copy, X[first + tid, columns[j]], copies)
    else:
        for r in range(tid // 32, n, block // 32):
            for j in range(tid % 32, columns.shape[0], 32):
                _put(rows, j * block + r, copy, X[first + r, columns[j]], copies)
    cuda.syncthreads()


@cuda.jit(device=True)
def _step(rows, tid, node, threshold, q, c):
    """One level down from node ``q`` (an index into ``node``) of a tree whose root is at
    ``1 - c``: its children are ``2q + c`` and ``2q + c + 1``.

    ``node[q]`` is twice the staged column's offset, plus 1 if NaN goes right. Index
    arithmetic is truncated to uint32 at every step, so it compiles to 32-bit operations
    (Numba widens integers to 64 bits, which costs two or more instructions each, and a
    signed index costs a wraparound check per load).
    """
    code = node[q]
    x = rows[U32((code >> U32(1)) + tid)]
    go_right = (x >= threshold[q]) | ((x != x) & ((code & U32(1)) != U32(0)))
    return U32(U32(2) * q + c + U32(go_right))


@cuda.jit(device=True)
def _step_resolved(rows, tid, node, threshold, q, c):
    """:func:`_step` on rows staged twice, NaN as -inf then as +inf: ``node[q]`` is the
    offset of the copy that sends NaN the node's default way, so NaN needs no test."""
    go_right = rows[U32(node[q] + tid)] >= threshold[q]
    return U32(U32(2) * q + c + U32(go_right))


@cuda.jit(device=True)
def _add_trees(
    step, acc, rows, tid, node, threshold, first_node, leaf, first_leaf, count, depth, pair
):
    """``acc`` plus the leaf values of ``count`` consecutive trees, in tree order.

    ``first_node`` and ``first_leaf`` index the first tree's records in ``node``/``threshold``
    and ``leaf``; with ``pair``, two trees descend together (independent loads that the
    scheduler can overlap). ``step`` is :func:`_step` or :func:`_step_resolved`.
    """
    n_inner = U32((U32(1) << U32(depth)) - U32(1))
    tid = U32(tid)
    a = U32(first_node)  # root of tree t
    z = U32(first_leaf - n_inner - a)  # tree t's leaf below q: leaf[z + q]
    t = 0
    if pair:
        while t + 1 < count:
            b = U32(a + n_inner)
            p = a
            q = b
            for _ in range(depth):
                p = step(rows, tid, node, threshold, p, U32(U32(1) - a))
                q = step(rows, tid, node, threshold, q, U32(U32(1) - b))
            acc += leaf[U32(z + p)]
            acc += leaf[U32(z + U32(1) + q)]
            a = U32(b + n_inner)
            z = U32(z + U32(2))
            t += 2
    while t < count:
        p = a
        for _ in range(depth):
            p = step(rows, tid, node, threshold, p, U32(U32(1) - a))
        acc += leaf[U32(z + p)]
        a = U32(a + n_inner)
        z = U32(z + U32(1))
        t += 1
    return acc


@cuda.jit(device=True)
def _add_trees_flags(
    flags, acc, rows, tid, node, threshold, first_node, leaf, first_leaf, count, depth
):
    """:func:`_add_trees` with the step and pairing that ``flags`` choose."""
    if flags & RESOLVED:
        return _add_trees(
            _step_resolved, acc, rows, tid, node, threshold, first_node, leaf, first_leaf,
            count, depth, flags & PAIR,
        )  # fmt: skip
    return _add_trees(
        _step, acc, rows, tid, node, threshold, first_node, leaf, first_leaf, count, depth,
        flags & PAIR,
    )  # fmt: skip


@cuda.jit(cache=True)
def _predict_perfect(X, columns, node, threshold, leaf, group_start, base, depth, flags, out):
    """Perfect traversal, nodes read from global memory.

    Trees are sorted by output: those of output ``k`` are ``group_start[k]`` up to
    ``group_start[k + 1]``. ``flags``: :data:`PAIR`, :data:`BY_THREAD`, :data:`RESOLVED`.
    """
    rows = cuda.shared.array(0, dtype=float32)
    tid = cuda.threadIdx.x
    first = cuda.blockIdx.x * cuda.blockDim.x
    n = min(cuda.blockDim.x, X.shape[0] - first)
    _stage_rows(X, columns, rows, first, n, flags & BY_THREAD, flags & RESOLVED)
    if tid < n:
        n_inner = (1 << depth) - 1
        for k in range(out.shape[1]):
            t = group_start[k]
            out[first + tid, k] = _add_trees_flags(
                flags, base[k], rows, tid, node, threshold, t * n_inner, leaf,
                t * (n_inner + 1), group_start[k + 1] - t, depth,
            )  # fmt: skip


@cuda.jit(cache=True)
def _predict_perfect_chunked(
    X, columns, node, threshold, leaf, group_start, base, depth, flags, chunk, out
):
    """Perfect traversal, nodes copied to shared memory ``chunk`` trees at a time.

    Dynamic shared memory holds the staged rows, then ``chunk`` trees' thresholds, then
    their codes (the same bytes seen as float32 and as uint32).
    """
    shared_f = cuda.shared.array(0, dtype=float32)
    shared_u = cuda.shared.array(0, dtype=uint32)
    tid = cuda.threadIdx.x
    block = cuda.blockDim.x
    first = cuda.blockIdx.x * block
    n = min(block, X.shape[0] - first)
    n_inner = (1 << depth) - 1
    rows_end = columns.shape[0] * block * (2 if flags & RESOLVED else 1)
    nodes_end = rows_end + chunk * n_inner
    rows = shared_f[:rows_end]
    s_threshold = shared_f[rows_end:nodes_end]
    s_node = shared_u[nodes_end : nodes_end + chunk * n_inner]
    _stage_rows(X, columns, rows, first, n, flags & BY_THREAD, flags & RESOLVED)
    for k in range(out.shape[1]):
        acc = base[k]
        for t in range(group_start[k], group_start[k + 1], chunk):
            count = min(chunk, group_start[k + 1] - t)
            cuda.syncthreads()  # every thread is done with the previous chunk
            for i in range(tid, count * n_inner, block):
                s_threshold[i] = threshold[t * n_inner + i]
                s_node[i] = node[t * n_inner + i]
            cuda.syncthreads()
            if tid < n:
                acc = _add_trees_flags(
                    flags, acc, rows, tid, s_node, s_threshold, 0, leaf, t * (n_inner + 1),
                    count, depth,
                )  # fmt: skip
        if tid < n:
            out[first + tid, k] = acc


@cuda.jit(device=True)
def _key(bits):
    """float32 bits as a uint32 that orders like the float (-0 as +0); NaN as 0."""
    if bits == _SIGN:
        bits = U32(0)
    key = U32(~bits) if bits & _SIGN else U32(bits | _SIGN)
    return U32(0) if (bits & ~_SIGN) > _INF_BITS else key


@cuda.jit(device=True)
def _step_key(rows, tid, node, threshold, q, c):
    """:func:`_step_resolved` on keys: ``node[q]`` packs the threshold's key (high half)
    and the offset of the staged copy (low half) into one load; ``threshold`` is unused."""
    record = node[q]
    go_right = rows[U32(U32(record & _LOW) + tid)] >= U32(record >> U64(32))
    return U32(U32(2) * q + c + U32(go_right))


@cuda.jit(cache=True)
def _predict_perfect_keys(X_bits, columns, node, leaf, group_start, base, depth, flags, out):
    """Perfect traversal on keys (see :func:`float_keys`): rows staged twice as keys, NaN
    as the lowest key then as the highest; ``X_bits`` is X seen as uint32."""
    rows = cuda.shared.array(0, dtype=uint32)
    tid = cuda.threadIdx.x
    block = cuda.blockDim.x
    first = cuda.blockIdx.x * block
    n = min(block, X_bits.shape[0] - first)
    copy = columns.shape[0] * block
    if tid < n:
        for j in range(columns.shape[0]):
            bits = X_bits[first + tid, columns[j]]
            key = _key(bits)
            rows[j * block + tid] = key
            rows[copy + j * block + tid] = _KEY_MAX if key == U32(0) else key
    cuda.syncthreads()
    if tid < n:
        n_inner = (1 << depth) - 1
        for k in range(out.shape[1]):
            t = group_start[k]
            out[first + tid, k] = _add_trees(
                _step_key, base[k], rows, tid, node, node, t * n_inner, leaf,
                t * (n_inner + 1), group_start[k + 1] - t, depth, flags & PAIR,
            )  # fmt: skip


def float_keys(values: np.ndarray) -> np.ndarray:
    """float32 values as uint32 keys: ``key(x) >= key(t)`` iff ``x >= t`` (no NaN)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    bits = np.where(bits == _SIGN, np.uint32(0), bits)  # -0 compares equal to +0
    return np.where(bits & _SIGN, ~bits, bits | _SIGN).astype(np.uint32)


def perfect_arrays(
    forest: Forest, block: int, *, nan_copies: bool, keys: bool = False
) -> dict[str, Any] | None:
    """The perfect traversal's arrays for blocks of ``block`` rows, or None if inexact.

    ``node[t * n_inner + p]`` is tree ``t``'s code at complete-tree position ``p``: where
    its column sits among the staged rows (position in ``columns`` times ``block``),
    doubled, plus 1 when NaN goes right; with ``nan_copies``, the offset of the column's
    copy that sends NaN the right way (the +inf copy is ``width * block`` further on);
    with ``keys`` (which implies ``nan_copies``), uint64 records with the threshold's key
    in the high half.
    Trees are sorted by output, stably, so each output keeps its trees' order. Leaf values
    are float32 where that is exact (XGBoost's are), else float64.
    """
    inner = forest.feature >= 0
    if forest.num_trees == 0 or not inner.any() or not branch_free_exact(forest):
        return None
    if np.isnan(forest.threshold[inner]).any():  # x >= NaN and x < NaN are both False
        return None
    depth = int(forest.tree_depths().max())
    if depth > MAX_PERFECT_DEPTH:
        return None
    layout = perfect_layout(forest, depth)
    # TileColumns.offsets is (position + (width if NaN goes right else 0)) * TILE_ROWS.
    copy = layout.feature_offset.astype(np.int64) // TILE_ROWS
    if nan_copies or keys:
        code = copy * block
    else:
        right = copy >= layout.tiles.width
        code = 2 * (copy - np.where(right, layout.tiles.width, 0)) * block + right
    order = np.argsort(forest.tree_group, kind="stable")
    leaf = layout.leaf_value
    if np.array_equal(leaf.astype(np.float32).astype(np.float64), leaf):
        leaf = leaf.astype(np.float32)
    node = code.astype(np.uint32)
    if keys:
        node = (float_keys(layout.threshold).astype(np.uint64) << U64(32)) | node
    return {
        "columns": layout.tiles.columns.astype(np.int32),
        "node": np.ascontiguousarray(node[order].ravel()),
        "threshold": np.ascontiguousarray(layout.threshold[order].ravel()),
        "leaf": np.ascontiguousarray(leaf[order].ravel()),
        "group_start": np.searchsorted(
            forest.tree_group[order], np.arange(forest.num_outputs + 1)
        ).astype(np.int64),
        "base": np.ascontiguousarray(forest.base_margin, dtype=np.float64),
        "depth": depth,
    }


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
    trees_in_shared
        Perfect: copy nodes to shared memory this many trees at a time (fewer where they
        would not fit); 0 reads them from global memory.
    stage_by_thread
        Perfect: each thread stages its own row (else each warp stages whole rows).
    nan_copies
        Perfect: stage every column twice, NaN as -inf and as +inf, so a step needs no NaN
        test (twice the shared memory per row).
    keys
        Perfect, with ``nan_copies``: compare uint32 keys that order like the floats, so a
        node's threshold and column offset are one 8-byte load (no ``trees_in_shared``).
    rows_in_shared
        Walk: stage each block's rows in shared memory; default: whenever they fit.
    copy_threads
        Host threads that copy X into the pinned buffer: one core copied 7 GB/s where the
        bus to an H200 carried 47 GB/s, so one thread left the GPU waiting.
    """

    def __init__(
        self,
        forest: Forest,
        *,
        chunk_rows: int | None = None,
        threads_per_block: int | None = None,
        traversal: str = "auto",
        pair_trees: bool = True,
        trees_in_shared: int = 0,
        stage_by_thread: bool = True,
        nan_copies: bool = False,
        keys: bool = False,
        rows_in_shared: bool | None = None,
        copy_threads: int = 4,
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
        arrays = None
        if traversal != "walk":
            width = np.unique(forest.feature[forest.feature >= 0]).size
            nan_copies = nan_copies or keys
            block = _perfect_block(4 * max(1, width) * (2 if nan_copies else 1), threads_per_block)
            arrays = block and perfect_arrays(forest, block, nan_copies=nan_copies, keys=keys)
        if arrays:
            flags = (PAIR if pair_trees else 0) | (BY_THREAD if stage_by_thread else 0)
            self._init_perfect(arrays, block, flags | (RESOLVED if nan_copies else 0), keys)
            if not keys:
                self._chunk_trees(arrays, trees_in_shared)
        else:
            self._init_walk(forest, threads_per_block or 128, rows_in_shared)
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

    def _init_perfect(self, arrays: dict[str, Any], block: int, flags: int, keys: bool) -> None:
        self.traversal = "perfect"
        self.threads_per_block = block
        self.rows_in_shared = True
        self.flags = flags
        self.keys = keys
        self.trees_in_shared = 0
        copies = 2 if flags & RESOLVED else 1
        self._shared_bytes = arrays["columns"].shape[0] * block * 4 * copies
        self._kernel = _predict_perfect_keys if keys else _predict_perfect
        names = ("columns", "node") + (() if keys else ("threshold",))
        device = [cuda.to_device(arrays[k]) for k in (*names, "leaf", "group_start", "base")]
        self._args: tuple[Any, ...] = (*device, arrays["depth"], flags)

    def _chunk_trees(self, arrays: dict[str, Any], trees: int) -> None:
        """Switch to nodes in shared memory, ``trees`` at a time, or fewer to fit."""
        tree_bytes = 8 * ((1 << arrays["depth"]) - 1)
        room = (_SHARED_LIMIT - self._shared_bytes) // tree_bytes
        self.trees_in_shared = max(0, min(trees, room))
        if self.trees_in_shared:
            self._shared_bytes += self.trees_in_shared * tree_bytes
            self._kernel = _predict_perfect_chunked
            self._args = (*self._args, self.trees_in_shared)

    def _init_walk(self, forest: Forest, block: int, rows_in_shared: bool | None) -> None:
        self.traversal = "walk"
        self.threads_per_block = block
        self.trees_in_shared = 0
        self.flags = 0
        self.keys = False
        shared_bytes = block * self.num_features * 4
        if rows_in_shared is None:
            rows_in_shared = 0 < shared_bytes <= _SHARED_LIMIT
        self.rows_in_shared = rows_in_shared
        self._kernel = _predict_shared if rows_in_shared else _predict_global
        self._shared_bytes = shared_bytes if rows_in_shared else 0
        forest_arrays = forest.arrays().values()
        self._args = (tuple(cuda.to_device(np.ascontiguousarray(a)) for a in forest_arrays),)

    def predict_device(self, X: Any, out: Any, *, stream: Any = 0) -> None:
        """Launch on arrays already on the device (asynchronous on ``stream``).

        ``X`` is a C-contiguous float32 device array (n_rows, n_features), ``out`` a
        float64 device array (n_rows, n_outputs).
        """
        n_rows = X.shape[0]
        blocks = (n_rows + self.threads_per_block - 1) // self.threads_per_block
        launch = self._kernel[blocks, self.threads_per_block, stream, self._shared_bytes]
        launch(X.view(np.uint32) if self.keys else X, *self._args, out)

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

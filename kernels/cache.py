"""On-disk caches: model file bytes -> :class:`~kernels.ir.Forest` arrays, and compiled kernels.

Parsing a large model file (a 500-tree XGBoost JSON is 13 MB) takes seconds; loading its
arrays from an ``.npz`` takes milliseconds. Entries are keyed by the file's sha256 and the
IR format version, so a changed file or a new lakescore never reads a stale entry.

Compiled kernels (:class:`LibraryCache`, under ``<root>/kernels/``) are keyed by
:func:`kernel_key`: the model's sha256, the backend, :data:`KERNEL_VERSION`, the IR version
and the host CPU (name and feature flags, as LLVM and so Numba see them). The Numba CPU
kernels' machine code does not depend on the model: it is cached here too, one object per
kernel, keyed by the kernel sources, Numba's and llvmlite's versions and the CPU
(:mod:`kernels._cpu_native`).

Concurrent processes are safe: an entry is written aside and renamed into place, and two
writers of one key write the same bytes. An entry that fails to load or whose content
digest does not match is deleted and rebuilt, never trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from kernels.ir import ARRAY_FIELDS, Forest

log = logging.getLogger("lakescore.kernels.cache")

V = TypeVar("V")


class RecentValues(Generic[V]):
    """The last ``size`` values put, by key, in this process's memory (least recently
    used out first); safe to share between threads. For objects that are immutable or
    safe to share: a loaded forest, a compiled kernel."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> V:
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


#: Bump when the IR's meaning changes (a new field, a different layout of an array).
IR_VERSION = 5
#: Bump when a backend compiles the same IR into different code (a new kernel, new flags).
#: 2: TL2cgen's libraries are built with gcc -O1.
KERNEL_VERSION = 2


def default_cache_dir() -> Path:
    env = os.environ.get("LAKESCORE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lakescore"


def cache_enabled() -> bool:
    return os.environ.get("LAKESCORE_CACHE", "1") not in ("0", "false", "off")


class ModelCache:
    """Forests by model sha256, under ``<root>/models/``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_cache_dir()) / "models"

    def path_for(self, sha256: str) -> Path:
        return self.root / f"{sha256}-ir{IR_VERSION}.npz"

    def get(self, sha256: str) -> Forest | None:
        path = self.path_for(sha256)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(bytes(npz["meta"]).decode())
                arrays = {name: np.array(npz[name]) for name in ARRAY_FIELDS}
            forest = Forest(
                **arrays,
                link=meta["link"],
                num_features=int(meta["num_features"]),
                feature_names=tuple(meta["feature_names"]),
                objective=meta["objective"],
                source_format=meta["source_format"],
                sha256=sha256,
                metadata=dict(meta["metadata"]),
                link_scale=float(meta.get("link_scale", 1.0)),
            )
            if forest.fingerprint() != meta["fingerprint"]:
                raise ValueError("content digest mismatch")
        except Exception as exc:
            log.warning("discarding corrupt model cache entry %s (%s)", path, exc)
            path.unlink(missing_ok=True)
            return None
        return forest

    def put(self, forest: Forest) -> None:
        if not forest.sha256:
            return
        meta = {
            "link": forest.link,
            "num_features": forest.num_features,
            "feature_names": list(forest.feature_names),
            "objective": forest.objective,
            "source_format": forest.source_format,
            "metadata": forest.metadata,
            "link_scale": forest.link_scale,
            "fingerprint": forest.fingerprint(),
        }
        path = self.path_for(forest.sha256)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                    **{name: getattr(forest, name) for name in ARRAY_FIELDS},
                )
            os.replace(tmp, path)
        except OSError as exc:  # a read-only home must not stop scoring
            log.warning("cannot write model cache entry %s (%s)", path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()


@functools.lru_cache(maxsize=1)
def cpu_signature() -> str:
    """The host CPU as LLVM (Numba's code generator) sees it: its name and feature flags."""
    from llvmlite import binding as llvm

    return f"{llvm.get_host_cpu_name()};{llvm.get_host_cpu_features().flatten()}"


def kernel_key(forest: Forest, backend: str) -> str:
    """The cache key of ``forest`` compiled for ``backend`` on this CPU.

    The model file's sha256 names the model; a forest built in memory has none, so its
    content fingerprint stands in.
    """
    parts = (
        forest.sha256 or f"fingerprint:{forest.fingerprint()}",
        backend,
        f"kernel{KERNEL_VERSION}",
        f"ir{IR_VERSION}",
        cpu_signature(),
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LibraryCache:
    """Compiled shared libraries by :func:`kernel_key`, under ``<root>/kernels/``.

    An entry is ``<key>.json``, naming the library file and its sha256, and the library
    ``<key>-<sha256[:16]>.so``. Both are written aside and renamed into place, the
    library first, so a reader sees a complete entry or none; the library's name carries
    its digest, so two writers never replace a file a reader is loading. An entry whose
    library is missing or whose digest does not match is deleted and rebuilt.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_cache_dir()) / "kernels"

    def get(self, key: str) -> Path | None:
        meta_path = self.root / f"{key}.json"
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            library = self.root / str(meta["library"])
            if library.parent != self.root or _file_sha256(library) != meta["sha256"]:
                raise ValueError("library digest mismatch")
        except Exception as exc:
            log.warning("discarding corrupt kernel cache entry %s (%s)", meta_path, exc)
            self.discard(key)
            return None
        return library

    def put(self, key: str, built: Path) -> Path:
        """Move the library at ``built`` into the cache; returns its cached path (or
        ``built`` itself when the cache cannot be written)."""
        digest = _file_sha256(built)
        library = self.root / f"{key}-{digest[:16]}{built.suffix}"
        meta_path = self.root / f"{key}.json"
        tmp = meta_path.with_name(f".{meta_path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            aside = library.with_name(f".{library.name}.{uuid.uuid4().hex[:8]}.tmp")
            shutil.copyfile(built, aside)  # built may sit on another file system
            os.replace(aside, library)
            tmp.write_text(json.dumps({"library": library.name, "sha256": digest}))
            os.replace(tmp, meta_path)
        except OSError as exc:  # a read-only cache must not stop scoring
            log.warning("cannot write kernel cache entry %s (%s)", meta_path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return built
        return library

    def discard(self, key: str) -> None:
        """Delete ``key``'s entry and every library file of it."""
        for path in (self.root / f"{key}.json", *self.root.glob(f"{key}-*")):
            with contextlib.suppress(OSError):
                path.unlink()

    @contextlib.contextmanager
    def building(self, key: str) -> Iterator[None]:
        """Hold ``key``'s build lock: concurrent processes compile a model once, the
        others wait and then find the entry. Without a writable cache, no lock."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / f".{key}.lock", "a+b")  # noqa: SIM115 (held across yield)
        except OSError:
            yield
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

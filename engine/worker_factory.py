"""What a task runs in: :class:`WorkerFactory` builds a scoring worker where it is called.

Its own module, apart from the coordinator, so that a Ray actor unpickling a factory
imports the task's code and not the driver's (planning, quality judgement, the report,
the sinks): with :mod:`engine`'s lazy ``__init__``, about half of ``import engine``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import kernels
from engine.task import ScoringWorker, WorkerConfig, load_kernel


class WorkerFactory:
    """Builds a :class:`ScoringWorker` where it is called (a thread, an actor).

    In this process it reuses the kernel the driver already compiled; pickled (for a
    remote worker) it carries only the config, and the worker compiles its own: with
    ``cpu_backend`` on a CPU actor, with CUDA on a GPU actor (``device="gpu"``).
    """

    def __init__(
        self,
        config: WorkerConfig,
        kernel: kernels.Kernel | None = None,
        variant_kernels: list[kernels.Kernel] | None = None,
        cpu_backend: str = "",
    ) -> None:
        self.config = config
        self._kernel = kernel
        self._variant_kernels = variant_kernels
        self._cpu_backend = cpu_backend or config.backend

    def __call__(self, device: str | None = None) -> ScoringWorker:
        cfg = self.config
        if device == "gpu":
            cfg = dataclasses.replace(cfg, backend="cuda")
        elif self._kernel is None and cfg.backend != self._cpu_backend:
            cfg = dataclasses.replace(cfg, backend=self._cpu_backend)
        elif self._kernel is not None:
            return ScoringWorker(cfg, self._kernel, self._variant_kernels)
        if cfg.variants is not None:
            return ScoringWorker(cfg)
        # A remote worker: a standing actor (cluster.keep_actors) serving its next run
        # finds the kernel it loaded for the last one.
        kernel = _process_kernel(cfg.model_path, cfg.model_sha256, cfg.backend, cfg.trust_pickle)
        return ScoringWorker(cfg, kernel)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_kernel": None, "_variant_kernels": None}


@functools.lru_cache(maxsize=4)
def _process_kernel(path: str, sha256: str, backend: str, trust_pickle: bool) -> kernels.Kernel:
    """A worker process's kernels by model sha256 (``load_kernel`` checks the file still
    has it, so a changed file is a new key, never a stale kernel)."""
    return load_kernel(path, sha256, backend, trust_pickle=trust_pickle)

"""``compile_model``: pick a backend for a forest and return a ready :class:`Kernel`."""

from __future__ import annotations

import os
from typing import Literal

from kernels.errors import BackendUnavailableError
from kernels.ir import Forest
from kernels.kernel import Kernel, Launcher

Backend = Literal["auto", "numba", "cuda"]
BACKENDS = ("auto", "numba", "cuda")


def compile_model(forest: Forest, *, backend: str = "auto", n_threads: int | None = None) -> Kernel:
    """Compile ``forest`` for ``backend``; ``kernel.backend`` names the one used.

    ``auto`` means ``cuda`` when a real NVIDIA GPU is usable (never Numba's CUDA simulator,
    which is for tests), else ``numba`` (the parallel CPU kernel). ``n_threads`` applies to
    ``numba`` only.

    Raises
    ------
    BackendUnavailableError
        ``backend`` is unknown, or is ``cuda`` and no GPU (nor the simulator) is usable.
    """
    if backend not in BACKENDS:
        raise BackendUnavailableError(
            f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}"
        )
    # /dev/nvidiactl exists wherever the NVIDIA driver is loaded: checking it first spares
    # `auto` on CPU-only machines the import of numba.cuda (about 0.5 s).
    if backend == "cuda" or (backend == "auto" and os.path.exists("/dev/nvidiactl")):
        launcher = _cuda_launcher(forest, required=backend == "cuda")
        if launcher is not None:
            return Kernel(forest, backend="cuda", launcher=launcher)
    from kernels import _numba_cpu

    return Kernel(
        forest, backend="numba", launcher=_numba_cpu.CpuLauncher(forest, n_threads=n_threads)
    )


def _cuda_launcher(forest: Forest, *, required: bool) -> Launcher | None:
    """The CUDA launcher, or None when it is not required and cannot (or should not) run."""
    try:
        from kernels import _numba_cuda

        if not required and (_numba_cuda.is_simulated() or not _numba_cuda.cuda_available()):
            return None
        return _numba_cuda.CudaLauncher(forest)
    except BackendUnavailableError:
        if required:
            raise
    except ImportError as exc:  # numba.cuda itself failed to import
        if required:
            raise BackendUnavailableError(f"backend 'cuda' needs numba-cuda ({exc})") from exc
    return None

"""``compile_model``: pick a backend for a forest and return a ready :class:`Kernel`."""

from __future__ import annotations

import os
from typing import Literal

from kernels.errors import BackendUnavailableError
from kernels.ir import Forest
from kernels.kernel import Kernel, Launcher

Backend = Literal["auto", "numba", "cuda", "tl2cgen"]
BACKENDS = ("auto", "numba", "cuda", "tl2cgen")


def compile_model(forest: Forest, *, backend: str = "auto", n_threads: int | None = None) -> Kernel:
    """Compile ``forest`` for ``backend``; ``kernel.backend`` names the one used.

    ``auto`` means ``cuda`` when a real NVIDIA GPU is usable (never Numba's CUDA simulator,
    which is for tests), else ``numba`` (the CPU kernel). ``tl2cgen`` compiles the
    forest to C with TL2cgen and gcc (slow the first time, then cached on disk; see
    :mod:`kernels._tl2cgen`); never chosen by ``auto``. ``n_threads`` applies to ``numba``
    and ``tl2cgen``.

    Raises
    ------
    BackendUnavailableError
        ``backend`` is unknown, or is ``cuda`` and no GPU (nor the simulator) is usable, or
        is ``tl2cgen`` and tl2cgen, treelite or gcc is missing.
    UnsupportedModelError
        ``backend`` cannot score this model exactly (e.g. categorical splits on
        ``tl2cgen``).
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
    if backend == "tl2cgen":
        from kernels import _tl2cgen

        launcher = _tl2cgen.Tl2cgenLauncher(forest, n_threads=n_threads)
        return Kernel(forest, backend="tl2cgen", launcher=launcher)
    from kernels._cpu_launch import CpuLauncher

    return Kernel(forest, backend="numba", launcher=CpuLauncher(forest, n_threads=n_threads))


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


def available_backends() -> tuple[str, ...]:
    """The backends that can run on this machine (``auto`` always can and is not listed).

    ``numba`` always; ``cuda`` where a GPU (or Numba's CUDA simulator) is usable;
    ``tl2cgen`` where tl2cgen, treelite and gcc are installed.
    """
    names = ["numba"]
    if os.path.exists("/dev/nvidiactl") or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        try:
            from kernels import _numba_cuda

            if _numba_cuda.cuda_available():
                names.append("cuda")
        except (ImportError, BackendUnavailableError):
            pass
    from kernels import _tl2cgen

    if _tl2cgen.unavailable_reason() is None:
        names.append("tl2cgen")
    return tuple(names)

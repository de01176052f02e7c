"""``compile_model``: pick a backend for a forest and return a ready :class:`Kernel`."""

from __future__ import annotations

from typing import Literal

from kernels.errors import BackendUnavailableError
from kernels.ir import Forest
from kernels.kernel import Kernel

Backend = Literal["auto", "numba"]
BACKENDS = ("auto", "numba")


def compile_model(forest: Forest, *, backend: str = "auto", n_threads: int | None = None) -> Kernel:
    """Compile ``forest`` for ``backend``.

    ``auto`` currently means ``numba`` (the parallel CPU kernel).
    """
    if backend not in BACKENDS:
        raise BackendUnavailableError(
            f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}"
        )
    from kernels import _numba_cpu

    return Kernel(
        forest, backend="numba", launcher=_numba_cpu.CpuLauncher(forest, n_threads=n_threads)
    )

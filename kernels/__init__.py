"""Models -> IR -> compiled kernels.

``kernels`` imports nothing from ``engine`` or ``cluster``.
"""

from kernels._threads import default_threads, launched_cpu_seconds
from kernels.compile import BACKENDS, available_backends, compile_model
from kernels.errors import (
    BackendUnavailableError,
    InputShapeError,
    KernelError,
    ModelFormatError,
    UnsupportedModelError,
    UntrustedModelError,
)
from kernels.ir import Forest
from kernels.kernel import Kernel
from kernels.loaders import load_model

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "Forest",
    "InputShapeError",
    "Kernel",
    "KernelError",
    "ModelFormatError",
    "UnsupportedModelError",
    "UntrustedModelError",
    "available_backends",
    "compile_model",
    "default_threads",
    "launched_cpu_seconds",
    "load_model",
]

"""Errors raised by :mod:`kernels`.

They subclass ``ValueError`` so plain Python callers can catch them without importing this
module; the engine maps every one of them to exit code 2 (bad input).
"""

from __future__ import annotations


class KernelError(ValueError):
    """Base class of every error raised by :mod:`kernels`."""


class ModelFormatError(KernelError):
    """The model file is missing, unreadable, or not a format lakescore knows."""


class UnsupportedModelError(KernelError):
    """The model is readable but uses a feature lakescore does not score (yet)."""


class InputShapeError(KernelError):
    """``predict`` was given a matrix of the wrong shape or type."""


class BackendUnavailableError(KernelError):
    """The requested backend cannot run on this machine."""


class UntrustedModelError(KernelError):
    """Loading the file would unpickle it, and the caller did not say it is trusted."""

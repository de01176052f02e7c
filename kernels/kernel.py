"""A compiled model: input validation at the boundary, the backend's launch, the output link."""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from kernels.errors import InputShapeError
from kernels.ir import Forest

Output = Literal["prediction", "margin"]


class Launcher(Protocol):
    """A backend's compiled forest: fills ``out`` (n_rows, n_outputs, float64) with margins.

    ``X`` is float32 of shape (n_rows, n_features) with ``n_rows > 0``, C-contiguous, or
    F-contiguous (feature-major) where the launcher sets ``accepts_feature_major``;
    the forest's arrays are bound at construction (and copied to a device there if needed).
    A launcher may also offer ``score(X, link, scale)``, returning ``apply_link(margins,
    link, scale)`` as float32 (n_rows, n_outputs), or (n_rows, 1) for argmax, computed
    where it scored (the CUDA launcher: on the device); ``Kernel.predict`` prefers it.
    """

    def __call__(self, X: np.ndarray, out: np.ndarray) -> None: ...


class Kernel:
    """A forest compiled for one backend.

    Parameters
    ----------
    forest
        The model in IR form.
    backend
        The backend's name, as recorded in run records.
    launcher
        The backend's compiled forest.
    """

    def __init__(self, forest: Forest, *, backend: str, launcher: Launcher) -> None:
        self.forest = forest
        self.backend = backend
        self._launcher = launcher

    @property
    def layout(self) -> str | None:
        """The backend's traversal (e.g. ``perfect``, ``sparse``, ``reference``)."""
        return getattr(self._launcher, "layout", None)

    @property
    def memory_bytes(self) -> int | None:
        """Bytes the compiled forest holds (host or device), where the backend reports it."""
        nbytes = getattr(self._launcher, "nbytes", None)
        return int(nbytes) if nbytes is not None else None

    @property
    def num_features(self) -> int:
        return self.forest.num_features

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.forest.feature_names

    def predict(self, X: np.ndarray, *, output: Output = "prediction") -> np.ndarray:
        """Score a float32 matrix whose columns are in the model's feature order.

        Returns float32 of shape ``(n_rows,)`` for single-output models, ``(n_rows, k)``
        otherwise: what the native library's predict returns (``output="prediction"``), or
        the raw summed margin (``output="margin"``).
        """
        if output not in ("prediction", "margin"):
            raise InputShapeError(f"output must be 'prediction' or 'margin', not {output!r}")
        X = self._check_input(X)
        link, scale = (
            ("identity", 1.0) if output == "margin" else (self.forest.link, self.forest.link_scale)
        )
        score = getattr(self._launcher, "score", None)
        if score is not None and not self.forest.has_linear:
            # The launcher applies the link where it scored (a GPU) and returns float32:
            # fewer bytes back, and no host time on the link.
            result = score(X, link, scale)
        else:
            margin = np.empty((X.shape[0], self.forest.num_outputs), dtype=np.float64)
            if X.shape[0]:
                self._launcher(X, margin)
                if self.forest.has_linear:
                    # float32 inputs widen exactly; BLAS sums in float64 (sklearn's own route)
                    margin += X.astype(np.float64) @ self.forest.linear_coef.T
            result = apply_link(margin, link, scale).astype(np.float32)
        return result[:, 0] if result.shape[1] == 1 else result

    def _check_input(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2:
            raise InputShapeError(f"expected a 2-D matrix, got {X.ndim} dimension(s)")
        if X.shape[1] != self.forest.num_features:
            raise InputShapeError(
                f"expected {self.forest.num_features} feature columns, got {X.shape[1]}"
            )
        if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
            raise InputShapeError(f"expected a numeric matrix, got dtype {X.dtype}")
        if X.flags.f_contiguous and not X.flags.c_contiguous and self._launcher_takes_columns:
            # Feature-major input (each column contiguous, as the engine builds it from Arrow
            # columns) is read as it is: transposing it would cost more than scoring it.
            return np.asarray(X, dtype=np.float32, order="F")
        return np.ascontiguousarray(X, dtype=np.float32)

    @property
    def _launcher_takes_columns(self) -> bool:
        return bool(getattr(self._launcher, "accepts_feature_major", False))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a compiled Kernel holds native code: ship the model, compile per worker")


def apply_link(margin: np.ndarray, link: str, scale: float = 1.0) -> np.ndarray:
    """Turn summed margins (float64) into the native library's prediction."""
    if scale != 1.0:
        margin = margin * scale
    if link == "identity":
        return margin
    if link == "sigmoid":
        return 1.0 / (1.0 + np.exp(-margin))
    if link == "exp":
        return np.exp(margin)
    if link == "softmax":
        shifted = np.exp(margin - margin.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    if link == "argmax":
        return margin.argmax(axis=1, keepdims=True).astype(np.float64)
    raise ValueError(f"unknown link {link!r}")

"""scikit-learn linear models (and affine scalers before them) -> a Forest with no trees.

The margin is ``intercept + coef . x``; the IR carries ``coef`` as ``linear_coef`` and the
intercept as ``base_margin``. Scalers are element-wise affine maps ``x' = a x + b``, read
off the fitted step's own ``transform`` at 0 and 1 (and checked at 2), and folded in:
``coef' = coef * a``, ``intercept' = intercept + coef . b``. No threshold is involved, so
the folding changes the margin only by float64 rounding, far below float32 output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kernels.errors import UnsupportedModelError

LINEAR_MODELS = frozenset(
    {"LinearRegression", "LogisticRegression", "Ridge", "Lasso", "ElasticNet"}
)


def affine_map(step: Any, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` with ``step.transform(x) == a * x + b`` for every column."""
    if type(step).__name__ == "SimpleImputer":
        raise UnsupportedModelError("SimpleImputer before a linear model is not supported")
    probe = np.array([[0.0] * num_features, [1.0] * num_features, [2.0] * num_features])
    out = np.asarray(step.transform(probe), dtype=np.float64)
    b, a = out[0], out[1] - out[0]
    if out.shape != probe.shape or not np.allclose(out[2], 2 * a + b, rtol=1e-12, atol=1e-12):
        raise UnsupportedModelError(f"{type(step).__name__} is not an element-wise affine map")
    return a, b


def linear_terms(model: Any, steps: list[Any]) -> tuple[np.ndarray, np.ndarray, str, str, Any]:
    """``(coef (K, F), intercept (K,), link, objective, classes)`` with steps folded in."""
    name = type(model).__name__
    if name not in LINEAR_MODELS:
        raise UnsupportedModelError(f"{name} is not a supported linear model")
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    if intercept.shape[0] == 1 and coef.shape[0] > 1:
        intercept = np.repeat(intercept, coef.shape[0])
    classes = getattr(model, "classes_", None)
    if name == "LogisticRegression":
        link, objective = ("sigmoid", "logistic") if coef.shape[0] == 1 else (
            "softmax", "multinomial")  # fmt: skip
    else:
        if coef.shape[0] != 1:
            raise UnsupportedModelError(f"{name} with several targets is not supported")
        link, objective = "identity", "linear"
    for step in reversed(steps):  # innermost first: x -> step_1 -> ... -> step_n -> model
        a, b = affine_map(step, coef.shape[1])
        intercept = intercept + coef @ b
        coef = coef * a
    return coef, intercept, link, objective, classes

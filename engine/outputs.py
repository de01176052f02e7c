"""What a kernel's output becomes in the sink: the score columns of one batch.

Single-output models give ``score`` (float32). Multiclass models give one probability
column per class, ``score_<class>`` (float32), and ``label``, the most probable class: the
class as the model names it (scikit-learn's ``classes_``, as strings), or its index (int32)
for models whose classes are ``0..K-1`` (XGBoost, LightGBM). For XGBoost's
``multi:softmax``, whose native prediction is the label alone, the probabilities are the
softmax of the margins.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import kernels
from kernels.kernel import apply_link

SCORE_COLUMN = "score"
LABEL_COLUMN = "label"


def class_names(forest: kernels.Forest) -> list[str]:
    return forest.classes() or [str(k) for k in range(forest.num_outputs)]


def labels_are_indices(forest: kernels.Forest) -> bool:
    return class_names(forest) == [str(k) for k in range(forest.num_outputs)]


def score_column_names(forest: kernels.Forest) -> list[str]:
    if forest.num_outputs == 1:
        return [SCORE_COLUMN]
    return [f"{SCORE_COLUMN}_{name}" for name in class_names(forest)] + [LABEL_COLUMN]


def score_fields(forest: kernels.Forest) -> list[pa.Field]:
    label_type = pa.int32() if labels_are_indices(forest) else pa.string()
    return [
        pa.field(name, label_type if name == LABEL_COLUMN else pa.float32())
        for name in score_column_names(forest)
    ]


def score_batch(kernel: kernels.Kernel, X: np.ndarray) -> dict[str, np.ndarray]:
    """Score ``X`` and name the columns as the sink holds them."""
    forest = kernel.forest
    if forest.num_outputs == 1:
        return {SCORE_COLUMN: kernel.predict(X)}
    if forest.link == "argmax":
        margin = kernel.predict(X, output="margin").astype(np.float64)
        probabilities = apply_link(margin, "softmax", forest.link_scale).astype(np.float32)
    else:
        probabilities = kernel.predict(X)
    names = class_names(forest)
    columns = {f"{SCORE_COLUMN}_{name}": probabilities[:, k] for k, name in enumerate(names)}
    best = probabilities.argmax(axis=1).astype(np.int32)
    columns[LABEL_COLUMN] = best if labels_are_indices(forest) else np.asarray(names)[best]
    return columns

"""What a kernel's output becomes in the sink: the score columns of one batch.

Single-output models give ``score`` (float32). Multiclass models give one probability
column per class, ``score_<k>`` (float32), and ``label`` (int32), the most probable class;
for XGBoost's ``multi:softmax``, whose native prediction is the label alone, the
probabilities are the softmax of the margins.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import kernels
from kernels.kernel import apply_link

SCORE_COLUMN = "score"
LABEL_COLUMN = "label"


def score_column_names(forest: kernels.Forest) -> list[str]:
    if forest.num_outputs == 1:
        return [SCORE_COLUMN]
    return [f"{SCORE_COLUMN}_{k}" for k in range(forest.num_outputs)] + [LABEL_COLUMN]


def score_fields(forest: kernels.Forest) -> list[pa.Field]:
    return [
        pa.field(name, pa.int32() if name == LABEL_COLUMN else pa.float32())
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
    columns = {f"{SCORE_COLUMN}_{k}": probabilities[:, k] for k in range(forest.num_outputs)}
    columns[LABEL_COLUMN] = probabilities.argmax(axis=1).astype(np.int32)
    return columns

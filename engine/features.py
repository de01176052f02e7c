"""Arrow record batches -> the float32 feature matrix a kernel scores."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def resolve_features(feature_names: tuple[str, ...], mapping: dict[str, str]) -> dict[str, str]:
    """Model feature -> source column, in the model's feature order.

    A feature maps to the column of the same name unless ``mapping`` says otherwise.
    """
    unknown = sorted(set(mapping) - set(feature_names))
    if unknown:
        from engine.errors import BadInputError

        raise BadInputError(f"columns: {unknown[0]!r} is not a feature of the model")
    return {name: mapping.get(name, name) for name in feature_names}


class FeatureMatrixBuilder:
    """Fills a reused feature-major float32 buffer with one batch's features.

    Each Arrow column is copied once, contiguously, into its own row of the buffer; the
    kernel gets the transposed view (an F-contiguous ``(n_rows, n_features)`` matrix) and
    reads it column-wise, so no row-major matrix is ever built. Nulls become NaN (the
    models' missing value); integers, booleans and decimals are cast to float32 as the
    native libraries do.
    """

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self._buffer = np.empty((len(columns), 0), dtype=np.float32)

    def build(self, batch: pa.RecordBatch) -> np.ndarray:
        n = batch.num_rows
        if self._buffer.shape[1] != n:
            # Batches all have batch_rows rows but the last; a new shape reallocates.
            self._buffer = np.empty((len(self.columns), n), dtype=np.float32)
        for j, name in enumerate(self.columns):
            self._buffer[j] = column_as_float32(batch.column(name))
        return self._buffer.T


def column_as_float32(arr: pa.Array) -> np.ndarray:
    """One Arrow column as float32 numpy, nulls as NaN (zero-copy when already float32)."""
    if arr.type != pa.float32():
        arr = pc.cast(arr, pa.float32(), safe=False)
    if arr.null_count:
        arr = pc.fill_null(arr, np.float32("nan"))
    return arr.to_numpy(zero_copy_only=False)

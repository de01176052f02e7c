"""Kernel throughput on the DESIGN reference model, side by side with XGBoost.

Both contenders score the same float32 matrix in the same run with the same thread count
(``n_threads`` for lakescore, ``nthread`` for XGBoost). Results read as a ratio; the table
is printed at the end of the session (see ``conftest.py``). DESIGN target: lakescore
>= 3x ``inplace_predict``.
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("contender", ["lakescore-numba", "xgboost-inplace"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_score_reference_model(
    run_contender, checked_kernels, reference_booster, bench_X, n_threads, contender
):
    if contender == "lakescore-numba":
        kernel = checked_kernels[n_threads]

        def score() -> np.ndarray:
            return kernel.predict(bench_X)

    else:
        reference_booster.set_param({"nthread": n_threads})

        def score() -> np.ndarray:
            return reference_booster.inplace_predict(bench_X)

    result = run_contender(contender, n_threads, score)
    assert result.shape == (bench_X.shape[0],) and result.dtype == np.float32

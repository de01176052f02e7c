"""The DESIGN reference model through every contender (see ``contenders.py``).

XGBoost ``binary:logistic``, 500 trees of depth 8, 50 float32 features with 2% NaN: the
Numba and TL2cgen backends, XGBoost's ``inplace_predict`` and treelite's GTIL score the
same float32 matrix in the same run with the same thread count. DESIGN target: the Numba
kernel >= 3x ``inplace_predict``. The table is printed at the end of the session.
"""

from __future__ import annotations

import pytest
from contenders import CONTENDERS, run_model


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_reference_model(run_contender, reference_path, bench_X, n_threads, contender):
    run_model(
        run_contender, "xgboost-reference", reference_path, contender, n_threads, bench_X,
        atol=1e-5,
    )  # fmt: skip

"""The model's own library, loaded from the same model file: the contender of every ratio.

- XGBoost: ``Booster.inplace_predict`` with ``nthread``;
- LightGBM: ``Booster.predict`` with ``num_threads``;
- scikit-learn (skops, or a pickle with ``--trust-pickle``): ``predict_proba`` (the
  positive class's column for a binary classifier) or ``predict``, with ``n_jobs`` set and
  BLAS/OpenMP pools limited by threadpoolctl;
- treelite checkpoints: ``treelite.gtil.predict`` with ``nthread``.

Each returns what :meth:`kernels.Kernel.predict` returns, so the two can be compared.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kernels.loaders import detect_format


class NativeUnavailable(Exception):
    """The native library cannot score this model here; the message says why."""


@dataclass
class Native:
    """A native library's predict, as ``predict(X, threads)``."""

    library: str
    call: str
    version: str | None
    predict: Callable[[np.ndarray, int], np.ndarray]


def load_native(path: Path, *, trust_pickle: bool = False) -> Native:
    """The native contender for the model file at ``path``.

    Raises
    ------
    NativeUnavailable
        The library is not installed, the format has no native library (or needs
        ``--trust-pickle``), or loading failed.
    """
    data = path.read_bytes()
    fmt = detect_format(data, path.name)
    loaders: dict[str, Callable[[Path, bytes], Native]] = {
        "xgboost-json": _xgboost,
        "xgboost-ubj": _xgboost,
        "lightgbm-text": _lightgbm,
        "skops": _skops,
        "pickle": _pickle if trust_pickle else _refuse_pickle,
        "treelite": _treelite,
    }
    if fmt not in loaders:
        raise NativeUnavailable(f"no native library for format {fmt!r}")
    try:
        return loaders[fmt](path, data)
    except NativeUnavailable:
        raise
    except ImportError as exc:
        raise NativeUnavailable(f"{fmt}: the native library is not installed ({exc})") from None
    except Exception as exc:
        raise NativeUnavailable(f"{fmt}: cannot load ({type(exc).__name__}: {exc})") from None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _xgboost(path: Path, data: bytes) -> Native:
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(path))
    current: list[int] = []

    def predict(X: np.ndarray, threads: int) -> np.ndarray:
        if current != [threads]:  # set_param resets internal state: only on a change
            booster.set_param({"nthread": threads})
            current[:] = [threads]
        return booster.inplace_predict(X)

    return Native("xgboost", "Booster.inplace_predict(nthread=T)", _version("xgboost"), predict)


def _lightgbm(path: Path, data: bytes) -> Native:
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(path))

    def predict(X: np.ndarray, threads: int) -> np.ndarray:
        return booster.predict(X, num_threads=threads)

    return Native("lightgbm", "Booster.predict(num_threads=T)", _version("lightgbm"), predict)


def _skops(path: Path, data: bytes) -> Native:
    import skops.io as sio

    from kernels.loaders.sklearn import SKOPS_TRUSTED

    untrusted = sio.get_untrusted_types(data=data)
    unknown = sorted(set(untrusted) - SKOPS_TRUSTED)
    if unknown:  # the same rule as the loader's: never trust more here than there
        raise NativeUnavailable(f"skops file holds types lakescore does not trust: {unknown}")
    return _sklearn(sio.loads(data, trusted=sorted(untrusted)))


def _pickle(path: Path, data: bytes) -> Native:
    import joblib

    with open(path, "rb") as fh:
        return _sklearn(joblib.load(fh))


def _refuse_pickle(path: Path, data: bytes) -> Native:
    raise NativeUnavailable("the model is a pickle: pass --trust-pickle to load it natively")


def _sklearn(est: Any) -> Native:
    from sklearn.base import is_classifier
    from threadpoolctl import threadpool_limits

    jobs = [k for k in est.get_params(deep=True) if k == "n_jobs" or k.endswith("__n_jobs")]
    proba = is_classifier(est) and hasattr(est, "predict_proba")

    def predict(X: np.ndarray, threads: int) -> np.ndarray:
        if jobs:
            est.set_params(**dict.fromkeys(jobs, threads))
        with threadpool_limits(limits=threads):
            if not proba:
                return est.predict(X)
            p = est.predict_proba(X)
            return p[:, 1] if p.shape[1] == 2 else p

    call = "predict_proba" if proba else "predict"
    return Native(
        "sklearn",
        f"{type(est).__name__}.{call} (n_jobs=T, threadpoolctl)",
        _version("scikit-learn"),
        predict,
    )


def _treelite(path: Path, data: bytes) -> Native:
    import treelite

    model = treelite.Model.deserialize_bytes(data)

    def predict(X: np.ndarray, threads: int) -> np.ndarray:
        return treelite.gtil.predict(model, X, nthread=threads)

    return Native("treelite", "gtil.predict(nthread=T)", _version("treelite"), predict)


def as_comparable(native: np.ndarray, ours: np.ndarray) -> np.ndarray:
    """The native output in the shape of ours (GTIL adds axes; some return float64)."""
    out = np.asarray(native, dtype=np.float64)
    with contextlib.suppress(ValueError):
        out = out.reshape(ours.shape)
    return out

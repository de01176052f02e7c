"""The model registry: every family x objective the agreement suite scores, one entry each.

A :class:`ModelCase` says how to train the model from a fixed seed (``fit`` on
:mod:`data`'s training matrix), how to save it in each file format the loaders accept
(``formats``), how to call the native library's own predict (``predict``, and ``margin``
where the library gives raw scores), what ``predict`` returns (``output``) and which
tolerance class of ``test_agreement.py`` applies (``tolerance``). The family modules
(:mod:`xgb_cases`, :mod:`lgb_cases`, :mod:`sk_cases`) build their entries; a new family
adds a module of that kind and its entries to :data:`REGISTRY`.

:class:`Zoo` trains, saves, loads and compiles lazily and once per session (the
``zoo`` fixture in ``tests/conftest.py``), so selecting a few tests trains only their
models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import kernels
from agreement import data

#: What a native ``predict`` returns: class probabilities, identity-link values, exp-link
#: (positive) values, or class indices.
OUTPUTS = ("probability", "value", "positive", "class")
#: How the native library sums leaves (see the tolerance table in test_agreement.py).
TOLERANCE_CLASSES = ("float32-sum", "float64-sum", "linear")


@dataclass(frozen=True)
class Format:
    """One file format a model is saved in.

    Attributes
    ----------
    suffix
        File name suffix (the loaders detect the format from the bytes; some look at it).
    save
        ``save(native_model, path)``.
    trust_pickle
        ``load_model`` needs ``trust_pickle=True`` (pickle and joblib only).
    comparable
        Rows on which the native predict is this format's oracle (``None``: all). A
        treelite import of a LightGBM model compares values in LightGBM's zero band
        itself, where LightGBM's predict reads them as 0.0.
    """

    suffix: str
    save: Callable[[Any, Path], None]
    trust_pickle: bool = False
    comparable: Callable[[np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class ModelCase:
    """One registry entry: a family x objective, trained from ``seed``.

    ``fit(X, y)`` returns the native model; ``predict(model, X)`` and ``margin(model, X)``
    call its library; ``routed(model, X, forest)``, where given, is the float64 sum of the
    leaves the library itself routes each row to (so a wrong branch shows even where it
    moves the score by less than the tolerance).
    """

    name: str
    family: str
    objective: str
    fit: Callable[[np.ndarray, np.ndarray], Any]
    formats: Mapping[str, Format]
    predict: Callable[[Any, np.ndarray], np.ndarray]
    output: str
    tolerance: str
    train: data.TrainData = field(default_factory=data.TrainData)
    target: str = "binary"
    seed: int = 0
    margin: Callable[[Any, np.ndarray], np.ndarray] | None = None
    routed: Callable[[Any, np.ndarray, kernels.Forest], np.ndarray] | None = None
    nan: bool = True
    inf: bool = True
    category_inf: bool = True

    def __post_init__(self) -> None:
        assert self.output in OUTPUTS and self.tolerance in TOLERANCE_CLASSES, self.name

    @property
    def primary(self) -> str:
        """The first format: the one the datasets are built from."""
        return next(iter(self.formats))


@dataclass
class Trained:
    """A registry model after training: the native model, its files and training rows."""

    case: ModelCase
    model: Any
    X: np.ndarray
    y: np.ndarray
    files: dict[str, Path]


class Zoo:
    """Trains, saves, loads and compiles registry models on first use, once each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._trained: dict[str, Trained] = {}
        self._forests: dict[tuple[str, str], kernels.Forest] = {}
        self._kernels: dict[tuple[str, str, str], kernels.Kernel | kernels.KernelError] = {}
        self._info: dict[str, data.DataInfo] = {}

    def trained(self, case: ModelCase) -> Trained:
        if case.name not in self._trained:
            X = data.training_matrix(case.train, case.seed)
            y = data.target(case.target, X, case.train, case.seed)
            model = case.fit(X, y)
            files = {}
            for fmt, spec in case.formats.items():
                path = self.directory / f"{case.name}.{fmt}{spec.suffix}"
                spec.save(model, path)
                files[fmt] = path
            self._trained[case.name] = Trained(case, model, X, y, files)
        return self._trained[case.name]

    def forest(self, case: ModelCase, fmt: str) -> kernels.Forest:
        key = (case.name, fmt)
        if key not in self._forests:
            path = self.trained(case).files[fmt]
            trust = case.formats[fmt].trust_pickle
            self._forests[key] = kernels.load_model(path, trust_pickle=trust, cache=False)
        return self._forests[key]

    def kernel(self, case: ModelCase, fmt: str, backend: str, **options: Any) -> kernels.Kernel:
        """The compiled kernel; re-raises the KernelError a backend refused the model with."""
        key = (case.name, fmt, backend)
        if key not in self._kernels:
            forest = self.forest(case, fmt)
            try:
                self._kernels[key] = kernels.compile_model(forest, backend=backend, **options)
            except kernels.KernelError as exc:
                self._kernels[key] = exc
        found = self._kernels[key]
        if isinstance(found, kernels.KernelError):
            raise found
        return found

    def info(self, case: ModelCase) -> data.DataInfo:
        """What the datasets need: thresholds from the primary format's forest."""
        if case.name not in self._info:
            forest = self.forest(case, case.primary)
            numeric = (forest.feature >= 0) & (forest.categorical == 0)
            thresholds = []
            for j in range(forest.num_features):
                t = forest.threshold[numeric & (forest.feature == j)]
                thresholds.append(np.unique(t[np.isfinite(t)]).astype(np.float32))
            self._info[case.name] = data.DataInfo(
                num_features=forest.num_features,
                thresholds=tuple(thresholds),
                categorical=case.train.categorical,
                nan=case.nan,
                inf=case.inf,
                category_inf=case.category_inf,
                train=self.trained(case).X,
            )
        return self._info[case.name]

    def dataset(self, case: ModelCase, name: str) -> np.ndarray:
        return data.build(name, self.info(case), seed=case.seed)


def _registry() -> tuple[ModelCase, ...]:
    from agreement import lgb_cases, sk_cases, xgb_cases

    cases = (*xgb_cases.CASES, *lgb_cases.CASES, *sk_cases.CASES)
    names = [case.name for case in cases]
    assert len(names) == len(set(names)), "registry names must be unique"
    return cases


REGISTRY: tuple[ModelCase, ...] = _registry()
BY_NAME: dict[str, ModelCase] = {case.name: case for case in REGISTRY}


def family(name: str) -> list[ModelCase]:
    return [case for case in REGISTRY if case.family == name]

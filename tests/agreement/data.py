"""Data for the agreement suite: training matrices, the evaluation datasets, Hypothesis rows.

Training data (:class:`TrainData`, :func:`training_matrix`, :func:`target`) is float32 and
deterministic for a seed. Columns: normal values; the last two integer-valued (so split
thresholds land on values integer inputs take); optional integer category columns 0..7;
optional LightGBM-style columns (exact zeros, and values inside LightGBM's zero band
``|x| <= float32(1e-35)``); NaN at a column-dependent rate, the last column excepted (so
LightGBM learns missing type None beside NaN).

Evaluation datasets (:data:`DATASETS`, :func:`build`) are built per model from the IR's
split thresholds (which are the native thresholds for XGBoost, and the smallest float32
above a float64 native threshold for LightGBM and scikit-learn, so two float32 steps
either side of them cover the native threshold's own float32 rounding):

``plain``        random rows near the training data, no missing values
``nan``          20% NaN, all-NaN rows, every other column NaN
``inf``          +-inf mixed with NaN and random values
``thresholds``   per feature, every threshold and 1 and 2 float32 steps either side
``zeros``        0.0, -0.0, denormals, LightGBM's zero band edges and their neighbours
``categories``   categorical columns: training categories, unseen ones (past the largest,
                 huge, negative, fractional), NaN and +-inf where the model accepts them
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

F32 = np.float32
F32_MAX = float(np.finfo(F32).max)
#: LightGBM's kZeroThreshold, 1e-35f widened to double: its predict reads |x| <= it as 0.0.
ZERO_BAND = float(F32(1e-35))
_BAND = F32(ZERO_BAND)
#: Values at and around zero and LightGBM's zero band.
ZERO_VALUES = np.array(
    [0.0, -0.0, 1e-36, -1e-36, 1e-45, -1e-45, 1e-38, -1e-38]
    + [v for b in (_BAND, -_BAND) for v in (b, np.nextafter(b, F32(0)), np.nextafter(b, b))],
    dtype=F32,
)
#: Category values outside training (0..7): unseen, huge, negative, fractional.
UNSEEN_CATEGORIES = np.array(
    [8, 9, 12, 31, 32, 33, 63, 64, 100, 1e10, 2.0**31, -1, -2, -0.5, -0.99, 0.5, 2.5, 7.5],
    dtype=F32,
)
N_CATEGORIES = 8


@dataclass(frozen=True)
class TrainData:
    """How a registry model's training matrix is made.

    Attributes
    ----------
    n_rows, n_features
        Shape.
    nan
        Largest per-column NaN rate (rates rise linearly across columns; the last column
        never has NaN); 0 for none.
    categorical
        Columns holding integer categories ``0..7``.
    zeros
        Column 1 holds 30% exact zeros and column 2 10% values inside LightGBM's zero band.
    scale
        Per-column scale and offset (``x * scale + offset``), for models behind scalers.
    names
        Feature names to train with (else the library's defaults).
    """

    n_rows: int = 400
    n_features: int = 6
    nan: float = 0.2
    categorical: tuple[int, ...] = ()
    zeros: bool = False
    scale: tuple[tuple[float, float], ...] = ()
    names: tuple[str, ...] | None = None


def training_matrix(spec: TrainData, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n, d = spec.n_rows, spec.n_features
    X = rng.normal(size=(n, d))
    X[:, -2] = rng.integers(0, 5, n)
    X[:, -1] = rng.integers(-3, 4, n)
    for j, (scale, offset) in enumerate(spec.scale):
        X[:, j] = X[:, j] * scale + offset
    if spec.zeros:
        X[rng.random(n) < 0.3, 1] = 0.0
        tiny = rng.random(n) < 0.1
        X[tiny, 2] = rng.choice([1e-36, -1e-36, 0.0, ZERO_BAND, -ZERO_BAND], int(tiny.sum()))
    for j in spec.categorical:
        X[:, j] = rng.integers(0, N_CATEGORIES, n)
    if spec.nan:
        rates = np.linspace(spec.nan / 4, spec.nan, d)
        rates[-1] = 0.0
        X[rng.random((n, d)) < rates] = np.nan
    return X.astype(F32)


def target(kind: str, X: np.ndarray, spec: TrainData, seed: int) -> np.ndarray:
    """Labels of ``kind`` (binary, multiclass, regression, count, positive) for ``X``."""
    rng = np.random.default_rng(seed + 1000)
    Z = np.nan_to_num(X.astype(np.float64))
    score = Z[:, 0] + 0.5 * Z[:, 1] ** 2 - 0.8 * Z[:, 2] + 0.3 * Z[:, -2] + np.isnan(X[:, 0])
    for j in spec.categorical:
        score += 1.5 * np.isin(X[:, j], [0, 2, 5]) - np.isnan(X[:, j])
    if spec.zeros:
        score += 1.5 * (X[:, 1] == 0) - np.isnan(X[:, 1])
    if spec.scale:
        score = sum(Z[:, j] / s for j, (s, _) in enumerate(spec.scale)) + Z[:, -2]
    noisy = score + rng.normal(scale=0.3, size=score.shape[0])
    if kind == "binary":
        return (noisy > np.median(noisy)).astype(np.float64)
    if kind == "multiclass":
        return np.digitize(noisy, np.quantile(noisy, [1 / 3, 2 / 3])).astype(np.float64)
    if kind == "count":
        return rng.poisson(np.exp(0.3 * np.clip(score, -5, 5))).astype(np.float64)
    if kind == "positive":
        return rng.gamma(2.0, np.exp(0.2 * np.clip(score, -5, 5)))
    if kind == "tweedie":
        return rng.poisson(np.exp(0.3 * np.clip(score, -5, 5))) * rng.gamma(2.0, 1.0, len(score))
    if kind == "unit":  # values in (0, 1), for reg:logistic
        return 1.0 / (1.0 + np.exp(-score))
    if kind == "heavy-tailed":
        return 3.0 * score + rng.standard_t(2, score.shape[0])
    return 3.0 * noisy


# --- evaluation datasets -------------------------------------------------------------------


@dataclass(frozen=True)
class DataInfo:
    """What the datasets need to know of a model."""

    num_features: int
    thresholds: tuple[np.ndarray, ...]  # per feature: finite numeric IR thresholds, float32
    categorical: tuple[int, ...]
    nan: bool  # the native predict accepts NaN
    inf: bool  # ... and +-inf
    category_inf: bool  # ... and +-inf in a categorical column
    train: np.ndarray  # training rows


DATASETS = ("plain", "nan", "inf", "thresholds", "zeros", "categories")


def neighbours(values: np.ndarray, steps: int = 2) -> np.ndarray:
    """``values`` (float32) and up to ``steps`` float32 steps below and above each."""
    values = np.asarray(values, dtype=F32)
    out = [values]
    for direction in (F32(-np.inf), F32(np.inf)):
        step = values
        for _ in range(steps):
            with np.errstate(over="ignore"):
                step = np.nextafter(step, direction)
            out.append(step)
    out = np.concatenate(out)
    return out[np.isfinite(out)]


def build(name: str, info: DataInfo, seed: int = 0) -> np.ndarray:
    """The evaluation dataset ``name`` for a model (float32, C-contiguous)."""
    rng = np.random.default_rng(seed)
    X = _BUILDERS[name](info, rng)
    if name != "categories":
        _fill_categories(X, info, rng, unseen=False)
    if not info.nan:
        X[np.isnan(X)] = 0.0
    if not info.inf:
        X[np.isinf(X)] = 0.0
    return np.ascontiguousarray(X, dtype=F32)


def _random(info: DataInfo, rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows drawn from the training rows' columns independently, with 1/3 fresh normals."""
    train = info.train
    X = train[rng.integers(0, train.shape[0], (n, info.num_features)), np.arange(info.num_features)]
    fresh = rng.random(X.shape) < 0.33
    X[fresh] = rng.normal(scale=1.5, size=int(fresh.sum()))
    return X.astype(F32)


def _plain(info: DataInfo, rng: np.random.Generator) -> np.ndarray:
    X = np.concatenate([info.train[:100], _random(info, rng, 200)])
    X[np.isnan(X)] = rng.normal(size=int(np.isnan(X).sum()))
    return X


def _nan(info: DataInfo, rng: np.random.Generator) -> np.ndarray:
    X = _random(info, rng, 300)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:20] = np.nan  # all missing: default directions only
    X[20:40, ::2] = np.nan
    X[40:60, 1::2] = np.nan
    return X


def _inf(info: DataInfo, rng: np.random.Generator) -> np.ndarray:
    X = _random(info, rng, 300)
    X[0], X[1] = np.inf, -np.inf
    X[2, ::2], X[2, 1::2] = np.inf, -np.inf
    X[3, ::2], X[3, 1::2] = -np.inf, np.inf
    pick = rng.random(X.shape) < 0.3
    X[pick] = rng.choice(np.array([np.inf, -np.inf, np.nan], F32), int(pick.sum()))
    return X


def _thresholds(info: DataInfo, rng: np.random.Generator) -> np.ndarray:
    blocks = []
    for j, thresholds in enumerate(info.thresholds):
        if not thresholds.size:
            continue
        values = np.unique(neighbours(thresholds))
        block = _random(info, rng, values.shape[0])
        block[rng.random(block.shape) < 0.1] = np.nan
        block[:, j] = values
        blocks.append(block)
    # Rows whose every split column sits on a threshold or next to one.
    every = _random(info, rng, 300)
    for j, thresholds in enumerate(info.thresholds):
        if thresholds.size:
            every[:, j] = rng.choice(neighbours(thresholds), 300)
    return np.concatenate([*blocks, every])


def _zeros(info: DataInfo, rng: np.random.Generator) -> np.ndarray:
    X = _random(info, rng, 300)
    pick = rng.random(X.shape) < 0.5
    X[pick] = rng.choice(ZERO_VALUES, int(pick.sum()))
    X[: len(ZERO_VALUES)] = ZERO_VALUES[:, None]  # whole rows of each zero-like value
    return X


def _categories(info: DataInfo, rng: np.random.Generator) -> np.ndarray:
    X = _random(info, rng, 400)
    _fill_categories(X, info, rng, unseen=True)
    return X


def _fill_categories(
    X: np.ndarray, info: DataInfo, rng: np.random.Generator, *, unseen: bool
) -> None:
    """Categorical columns get whole categories (known ones; with ``unseen`` also unseen,
    negative and fractional ones, NaN and +-inf as the model accepts)."""
    n = X.shape[0]
    values = np.arange(N_CATEGORIES, dtype=F32)
    if unseen:
        extra = [UNSEEN_CATEGORIES]
        if info.nan:
            extra.append(np.array([np.nan], F32))
        if info.category_inf:
            extra.append(np.array([np.inf, -np.inf], F32))
        values = np.concatenate([values, *extra])
    for j in info.categorical:
        X[:, j] = rng.choice(values, n)
        if unseen:
            X[: values.shape[0], j] = values  # each at least once


_BUILDERS = {
    "plain": _plain,
    "nan": _nan,
    "inf": _inf,
    "thresholds": _thresholds,
    "zeros": _zeros,
    "categories": _categories,
}


# --- Hypothesis --------------------------------------------------------------------------


@st.composite
def rows(draw: st.DrawFn, info: DataInfo, max_rows: int = 30) -> np.ndarray:
    """float32 matrices whose cells are (often) a threshold of their column or a float32
    step from one, zeros and LightGBM's zero band, categories seen and unseen, NaN and
    +-inf where the model accepts them, or any float32."""
    n_rows = draw(st.integers(1, max_rows))
    columns = []
    for j in range(info.num_features):
        special: list[float] = [float(v) for v in ZERO_VALUES]
        special += [float(v) for v in neighbours(info.thresholds[j], steps=1)]
        if info.nan:
            special.append(np.nan)
        is_category = j in info.categorical
        if info.inf and (info.category_inf or not is_category):
            special += [np.inf, -np.inf]
        if is_category:
            special += [float(v) for v in range(N_CATEGORIES)] + list(UNSEEN_CATEGORIES)
        elements = st.one_of(
            st.sampled_from(special),
            st.sampled_from(special),  # twice: weights thresholds and specials up
            st.floats(-4.0, 4.0, width=32),
            st.floats(
                width=32,
                allow_nan=info.nan,
                allow_infinity=info.inf and (info.category_inf or not is_category),
            ),
        )
        columns.append(draw(hnp.arrays(F32, n_rows, elements=elements)))
    X = np.column_stack(columns).astype(F32)
    if not info.inf:
        X[np.isinf(X)] = 0.0  # sampled_from specials never hold inf then; floats may round
    return np.ascontiguousarray(X)

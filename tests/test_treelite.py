"""The treelite loader: checkpoints -> Forest, scored by the Numba kernel.

Checkpoints imported by treelite's frontends from XGBoost, LightGBM and scikit-learn
models are formats of the registry entries (``"treelite"`` in tests/agreement/*_cases.py):
the agreement suite scores them against the native library. Here the oracle is treelite's
own reference predictor ``treelite.gtil.predict`` on the same rows (float32 rows, widened
to float64 for float64 models, as GTIL requires the leaf type), on hand-built models.

Rows hold NaN, +-inf, every split threshold of the model and its float32 neighbours.
Models built with treelite's ``ModelBuilder`` cover each comparison operator on float32
and float64 thresholds at edge values (midpoints between float32s, past the float32 range,
+-inf) and categorical splits with both ``category_list_right_child`` settings; their leaf
values are distinct powers of two, so a row routed to another leaf shows in the margin.

Tolerances
----------
Builder models with power-of-two leaves must agree exactly; sigmoid and exponential
postprocessors to ``atol=1e-6``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kernels
from kernels.loaders import detect_format
from kernels.loaders._thresholds import float32_above
from kernels.loaders.treelite import check_layout, float32_ceil

treelite = pytest.importorskip("treelite")
from treelite.model_builder import (  # noqa: E402
    Metadata,
    ModelBuilder,
    PostProcessorFunc,
    TreeAnnotation,
)

PROBABILITY_TOL = {"rtol": 0.0, "atol": 1e-6}
F32 = np.float32
F32_MAX = float(np.finfo(F32).max)
SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, F32_MAX, -F32_MAX]


def edge_rows(forest: kernels.Forest, n_random: int = 64, seed: int = 0) -> np.ndarray:
    """Rows with each threshold of the forest and its float32 neighbours in every column,
    specials, and random values."""
    rng = np.random.default_rng(seed)
    t = forest.threshold[forest.feature >= 0].astype(F32)
    t = t[np.isfinite(t)]
    values = np.concatenate(
        [t, np.nextafter(t, F32(np.inf)), np.nextafter(t, F32(-np.inf)), SPECIALS]
    ).astype(F32)
    n = forest.num_features
    columns = [rng.permutation(values) for _ in range(n)]
    rows = np.stack(columns, axis=1)
    random = rng.normal(size=(n_random, n)).astype(F32)
    return np.ascontiguousarray(np.concatenate([rows, random]), dtype=F32)


def save(model: Any, path: Path) -> Path:
    model.serialize(str(path))
    return path


def gtil(model: Any, X: np.ndarray, *, margin: bool = False) -> np.ndarray:
    leaf_type = model.get_header_accessor().get_field("leaf_output_type")[0]
    dtype = np.float32 if leaf_type == 2 else np.float64
    out = treelite.gtil.predict(model, X.astype(dtype), pred_margin=margin)
    out = out[:, 0, :]
    return out[:, 0] if out.shape[1] == 1 else out


def score(path: Path, X: np.ndarray, *, margin: bool = False) -> np.ndarray:
    forest = kernels.load_model(path, cache=False)
    kernel = kernels.compile_model(forest, backend="numba")
    return kernel.predict(X, output="margin" if margin else "prediction")


# --- thresholds --------------------------------------------------------------------------


def test_float32_rules_on_edge_thresholds() -> None:
    """``x < t`` iff ``x < float32_ceil(t)``, ``x <= t`` iff ``x < float32_above(t)`` for
    float32 ``x`` and float64 ``t``: float32 values, midpoints, range edges, infinities."""
    base = np.array([0.0, 1.0, -1.0, 0.1, 1e-45, -1e-45, 3.5, F32_MAX, -F32_MAX, 1e-38])
    base32 = base.astype(F32)
    with np.errstate(over="ignore"):
        up, down = np.nextafter(base32, F32(np.inf)), np.nextafter(base32, F32(-np.inf))
    mids = (base32.astype(np.float64) + up.astype(np.float64)) / 2
    t = np.concatenate(
        [
            base,
            base32,
            mids,
            np.nextafter(mids, np.inf),
            np.nextafter(mids, -np.inf),
            [np.inf, -np.inf, 1e39, -1e39, F32_MAX * (1 + 2**-25), 0.1 + 1e-17],
        ]
    )
    x = np.concatenate([base32, up, down, [np.inf, -np.inf, F32(0.1)]]).astype(F32)
    xx = x[:, None].astype(np.float64)
    assert np.array_equal(xx < t[None, :], x[:, None] < float32_ceil(t)[None, :])
    finite = t < np.inf  # x <= +inf is settled by swapping children
    le = x[:, None] < float32_above(t[finite])[None, :]
    assert np.array_equal(xx <= t[finite][None, :], le)


# --- treelite's ModelBuilder: every operator, exact routing ------------------------------


def build(
    nodes: list[tuple[str, Any]],
    *,
    threshold_type: str = "float64",
    postprocessor: str = "identity",
    num_feature: int = 2,
) -> Any:
    """A one-tree regressor from ``(kind, args)`` nodes: ``("num", (f, t, op, dl, l, r))``,
    ``("cat", (f, cats, right, dl, l, r))`` or ``("leaf", value)``, keyed by position."""
    builder = ModelBuilder(
        threshold_type=threshold_type,
        leaf_output_type=threshold_type,
        metadata=Metadata(
            num_feature=num_feature,
            task_type="kRegressor",
            average_tree_output=False,
            num_target=1,
            num_class=[1],
            leaf_vector_shape=(1, 1),
        ),
        tree_annotation=TreeAnnotation(num_tree=1, target_id=[0], class_id=[0]),
        postprocessor=PostProcessorFunc(name=postprocessor),
        base_scores=[0.0],
    )
    builder.start_tree()
    for key, (kind, args) in enumerate(nodes):
        builder.start_node(key)
        if kind == "leaf":
            builder.leaf(args)
        elif kind == "num":
            f, t, op, dl, left, right = args
            builder.numerical_test(
                f, t, default_left=dl, opname=op, left_child_key=left, right_child_key=right
            )
        else:
            f, cats, right_child, dl, left, right = args
            builder.categorical_test(
                f,
                default_left=dl,
                category_list=cats,
                category_list_right_child=right_child,
                left_child_key=left,
                right_child_key=right,
            )
        builder.end_node()
    builder.end_tree()
    return builder.commit()


EDGE_THRESHOLDS = [0.1, 1.0, -2.5, (1.0 + float(np.nextafter(F32(1), F32(2)))) / 2, 1e39]
EDGE_THRESHOLDS += [-1e39, np.inf, -np.inf, 0.0]


@pytest.mark.parametrize("threshold_type", ["float32", "float64"])
@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_builder_operators_route_exactly(tmp_path: Path, op: str, threshold_type: str) -> None:
    """Two levels of splits with each operator, thresholds at edges, both NaN directions."""
    X_parts = []
    for i, t in enumerate(EDGE_THRESHOLDS):
        if threshold_type == "float32":
            with np.errstate(over="ignore"):
                t = float(F32(t))
        model = build(
            [
                ("num", (0, t, op, i % 2 == 0, 1, 2)),
                ("num", (1, -t, op, True, 3, 4)),
                ("num", (1, t, op, False, 5, 6)),
                ("leaf", 1.0),
                ("leaf", 2.0),
                ("leaf", 4.0),
                ("leaf", 8.0),
            ],
            threshold_type=threshold_type,
        )
        path = save(model, tmp_path / f"m{i}.tl")
        t32 = F32(t) if abs(t) <= F32_MAX else F32(np.sign(t) * np.inf)
        col = np.array(
            [t32, np.nextafter(t32, F32(np.inf)), np.nextafter(t32, F32(-np.inf)), -t32, *SPECIALS],
            dtype=F32,
        )
        X = np.array([[a, b] for a in col for b in col], dtype=F32)
        X_parts.append(X)
        np.testing.assert_array_equal(score(path, X), gtil(model, X).astype(F32))


@pytest.mark.parametrize("right_child", [False, True])
@pytest.mark.parametrize("threshold_type", ["float32", "float64"])
def test_builder_categorical_routes_exactly(
    tmp_path: Path, threshold_type: str, right_child: bool
) -> None:
    model = build(
        [
            ("cat", (0, [0, 3, 31, 32, 70], right_child, True, 1, 2)),
            ("cat", (1, [1], not right_child, False, 3, 4)),
            ("leaf", 1.0),
            ("leaf", 2.0),
            ("leaf", 4.0),
        ],
        threshold_type=threshold_type,
    )
    path = save(model, tmp_path / "cat.tl")
    col = [0, -0.0, -0.5, -1, 0.5, 1, 1.5, 2, 3, 3.9, 31, 32, 33, 70, 71, 1e9, 2**24, 2**32]
    col = np.array(col + SPECIALS, dtype=F32)
    X = np.array([[a, b] for a in col for b in col], dtype=F32)
    forest = kernels.load_model(path, cache=False)
    assert forest.has_categorical
    np.testing.assert_array_equal(score(path, X), gtil(model, X).astype(F32))


def test_builder_sigmoid_exponential(tmp_path: Path) -> None:
    nodes = [("num", (0, 0.5, "<", True, 1, 2)), ("leaf", -0.75), ("leaf", 1.25)]
    X = np.array([[0.0, 0], [1.0, 0], [np.nan, 0]], dtype=F32)
    for post in ("sigmoid", "exponential"):
        model = build(nodes, postprocessor=post)
        path = save(model, tmp_path / f"{post}.tl")
        np.testing.assert_allclose(score(path, X), gtil(model, X), **PROBABILITY_TOL)


def rng_data(n: int = 400, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(F32)
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) > 0).astype(int)
    return X, np.stack([y, y + (np.nan_to_num(X[:, 2]) > 0.5)], axis=1)


# --- unsupported models, corrupt files, detection ----------------------------------------


def test_unsupported_models(tmp_path: Path) -> None:
    ensemble = pytest.importorskip("sklearn.ensemble")
    X, _ = rng_data()
    X = np.nan_to_num(X)
    iso = ensemble.IsolationForest(n_estimators=3, random_state=0).fit(X)
    forest2 = ensemble.RandomForestRegressor(2, max_depth=2, random_state=0).fit(X, X[:, :2])
    eq = build([("num", (0, 1.0, "==", True, 1, 2)), ("leaf", 1.0), ("leaf", 2.0)])
    cases = [
        (treelite.sklearn.import_model(iso), "exponential_standard_ratio"),
        (treelite.sklearn.import_model(forest2), "multi-target"),
        (eq, "'=='"),
    ]
    for i, (model, message) in enumerate(cases):
        path = save(model, tmp_path / f"u{i}.tl")
        with pytest.raises(kernels.UnsupportedModelError, match=message):
            kernels.load_model(path, cache=False)


def test_corrupt_checkpoints_raise_format_error(tmp_path: Path) -> None:
    """Truncated, extended and byte-flipped checkpoints raise ModelFormatError naming the
    file (or load as some valid model): treelite's deserializer is never handed a file
    whose lengths do not fit, where it could crash or hang."""
    xgb = pytest.importorskip("xgboost")
    X, y = rng_data(n=100)
    booster = xgb.train({"max_depth": 2, "nthread": 1}, xgb.DMatrix(X, y[:, 0]), 2)
    data = treelite.frontend.from_xgboost(booster).serialize_bytes()
    check_layout(data)
    rng = np.random.default_rng(0)
    variants = [data[:cut] for cut in range(14, len(data), 7)] + [data + b"\0"]
    for _ in range(150):
        flipped = bytearray(data)
        for pos in rng.integers(14, len(data), size=2):
            flipped[pos] = int(rng.integers(0, 256))
        variants.append(bytes(flipped))
    path = tmp_path / "corrupt.tl"
    for variant in variants:
        path.write_bytes(variant)
        try:
            kernels.load_model(path, cache=False)
        except kernels.ModelFormatError as exc:
            assert str(path) in str(exc)
        except kernels.UnsupportedModelError:
            pass
        else:
            assert variant == data or len(variant) == len(data)


def test_detect_format(tmp_path: Path) -> None:
    model = build([("leaf", 1.0)], threshold_type="float32")
    data = model.serialize_bytes()
    assert detect_format(data) == "treelite"
    assert detect_format(data, "model.bin") == "treelite"
    assert detect_format(b"\x04\0\0\0garbage") != "treelite"
    assert detect_format(b"tree\nversion=v4\n") == "lightgbm-text"
    assert detect_format(b'{"learner": {}}') == "xgboost-json"
    forest = kernels.load_model(save(model, tmp_path / "leaf.tl"), cache=False)
    assert forest.source_format == "treelite" and forest.num_trees == 1

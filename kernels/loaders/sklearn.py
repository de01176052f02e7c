"""scikit-learn estimators (pickle, joblib, skops, or in memory) -> :class:`Forest`.

The rules reproduced are those behind each estimator's own ``predict``/``predict_proba``
(scikit-learn 1.9):

* ``sklearn.tree`` trees (``_tree.pyx``, ``Tree.apply``; gradient boosting's
  ``predict_stages``) cast the input to float32 and go left iff ``x <= threshold``
  (float64); NaN follows the node's ``missing_go_to_left`` (``predict_stages`` has no NaN
  branch: NaN goes right, and its estimators reject NaN anyway).
* histogram gradient boosting (``_predictor.pyx``) widens the input to float64 and goes
  left iff ``x <= num_threshold``; NaN follows ``missing_go_to_left``. A categorical
  split sends a category in the node's bitset left, another known category right, and an
  unknown one (or NaN) the missing direction.

For float32 ``x``, ``x <= t`` is ``x < t'`` with ``t'`` the smallest float32 above ``t``
(:func:`_float32_above`). Both kinds of tree split "NaN or not" with ``threshold = +inf``,
which ``x < t'`` cannot write, since ``x = +inf`` must go left. sklearn's trees reject
``+-inf`` in predict, so there it stays ``x < +inf`` (an infinite value, which sklearn
would refuse, goes right). Histogram boosting accepts infinities: there it becomes
``x < -inf`` (never true) with the children swapped, which is exact, and such forests
take the reference CPU layout.

Histogram boosting's categorical columns go through an OrdinalEncoder first, so its
bitsets hold codes; they are mapped back to the raw integer categories. Unknown values go
the missing direction, the IR's categorical rule sends them right, so a node whose missing
direction is left stores the categories that go right and swaps its children. One
divergence remains: sklearn treats a non-integer value as an unknown category, the IR
truncates it toward zero (``2.5`` acts as category ``2``).

Pipelines of element-wise, non-decreasing transformers (scalers, a NaN imputer) before
the model are folded into the thresholds exactly: a split on the transformed value is a
split on the raw float32 value at the first raw value that goes right, found by binary
search over the float32s with the pipeline's own ``transform`` (:class:`PipelinePrefix`). An
imputer's fill value, passed through the later steps, decides each node's NaN direction.

Forests average their trees: ``1 / n_trees`` is folded into the leaves (sklearn sums, then
divides: the two differ by float64 rounding only). Gradient boosting's learning rate is
folded the way ``predict_stages`` applies it (``learning_rate * value``) and its constant
init estimator becomes the base margin. A ``k``-class tree becomes ``k`` trees, one per
class column.
"""

from __future__ import annotations

import io
import json
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels.errors import KernelError, ModelFormatError, UnsupportedModelError
from kernels.ir import Forest
from kernels.loaders._layout import breadth_first, concatenate
from kernels.loaders._sklearn_linear import LINEAR_MODELS, linear_terms
from kernels.loaders._sklearn_rules import NativeTree, PipelinePrefix, to_ir

#: Types a skops file may hold beyond those skops trusts by default (which already cover
#: scikit-learn's estimators, losses and numpy arrays): what the supported models need.
SKOPS_TRUSTED = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        # histogram boosting's categorical preprocessor: FunctionTransformer(partial(check_array))
        "functools.partial",
        "sklearn.utils.validation.check_array",
        "numpy.dtype",
    }
)

#: Pipeline steps folded into thresholds: element-wise and non-decreasing in each column.
_FOLDABLE_STEPS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler")
_LINEAR = frozenset(
    {"LinearRegression", "LogisticRegression", "Ridge", "RidgeClassifier", "Lasso", "ElasticNet"}
)
#: Largest integer category an HGB categorical split may hold (bounds the IR bitsets).
MAX_CATEGORY = 1 << 16


def load_pickle(data: bytes) -> Forest:
    """Unpickle a pickle or joblib file (trusted by the caller) and convert the model."""
    try:
        try:
            import joblib
        except ImportError:  # plain pickles still load without joblib
            obj = pickle.loads(data)
        else:
            obj = joblib.load(io.BytesIO(data))
    except Exception as exc:  # unpickling runs arbitrary code: anything can come out
        raise ModelFormatError(f"cannot unpickle the model ({type(exc).__name__}: {exc})") from exc
    return _convert(obj, "sklearn-pickle")


def load_skops(data: bytes) -> Forest:
    """Load a skops file, trusting only :data:`SKOPS_TRUSTED` beyond skops' defaults."""
    try:
        import skops.io as sio
    except ImportError:
        raise ModelFormatError("reading skops files needs the skops package") from None
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelFormatError(f"not a skops file ({type(exc).__name__}: {exc})") from exc
    unknown = sorted(set(untrusted) - SKOPS_TRUSTED)
    if unknown:
        raise ModelFormatError(f"skops file holds types lakescore does not trust: {unknown}")
    try:
        obj = sio.loads(data, trusted=sorted(untrusted))
    except Exception as exc:
        raise ModelFormatError(f"cannot load skops file ({type(exc).__name__}: {exc})") from exc
    return _convert(obj, "sklearn-skops")


def forest_from_estimator(est: Any, *, source_format: str = "sklearn") -> Forest:
    """Convert a fitted scikit-learn estimator (or a supported Pipeline ending in one).

    Raises
    ------
    UnsupportedModelError
        The estimator, a pipeline step or a model feature is not supported.
    """
    steps, model = _unwrap_pipeline(est)
    if steps and getattr(model, "is_categorical_", None) is not None:
        raise UnsupportedModelError("categorical splits behind a pipeline step are not supported")
    name = type(model).__name__
    if _is_sklearn(model) and name in LINEAR_MODELS:
        return _linear_forest(est, model, steps, source_format)
    builder = _BUILDERS.get(name) if _is_sklearn(model) else None
    if builder is None:
        if name in _LINEAR:
            raise UnsupportedModelError(f"{name}: this linear model is not supported")
        raise UnsupportedModelError(f"{_qualname(model)} is not a supported estimator")
    if not (hasattr(model, "n_features_in_") and hasattr(est, "n_features_in_")):
        raise UnsupportedModelError(f"{name} is not fitted")
    num_features = int(est.n_features_in_)
    native = builder(model)
    colmap = PipelinePrefix(steps, num_features, native.input_dtype) if steps else None
    ir_trees = to_ir(native.trees, colmap, swap_inf=native.accepts_inf)
    arrays, offsets = concatenate([breadth_first(t) for t in ir_trees])
    names = getattr(est, "feature_names_in_", None)
    metadata = {"estimator": _qualname(model)}
    if native.classes is not None:
        metadata["classes"] = json.dumps([str(c) for c in native.classes])
    if steps:
        metadata["pipeline"] = ",".join(type(s).__name__ for s in steps)
    return Forest(
        **arrays,
        tree_offsets=offsets,
        tree_group=np.asarray(native.groups, dtype=np.int32),
        base_margin=np.asarray(native.base_margin, dtype=np.float64),
        link=native.link,
        num_features=num_features,
        feature_names=tuple(
            str(n) for n in (names if names is not None else (f"f{i}" for i in range(num_features)))
        ),
        objective=native.objective,
        source_format=source_format,
        metadata=metadata,
    )


def _linear_forest(est: Any, model: Any, steps: list[Any], source_format: str) -> Forest:
    if not hasattr(model, "coef_"):
        raise UnsupportedModelError(f"{type(model).__name__} is not fitted")
    coef, intercept, link, objective, classes = linear_terms(model, steps)
    num_features = coef.shape[1]
    names = getattr(est, "feature_names_in_", None)
    metadata = {"estimator": _qualname(model)}
    if classes is not None:
        metadata["classes"] = json.dumps([str(c) for c in classes])
    if steps:
        metadata["pipeline"] = ",".join(type(s).__name__ for s in steps)
    arrays, offsets = concatenate([])
    return Forest(
        **arrays,
        tree_offsets=offsets,
        tree_group=np.zeros(0, dtype=np.int32),
        base_margin=intercept,
        link=link,
        num_features=num_features,
        feature_names=tuple(
            str(n) for n in (names if names is not None else (f"f{i}" for i in range(num_features)))
        ),
        objective=objective,
        source_format=source_format,
        metadata=metadata,
        linear_coef=coef,
    )


def forest_from_object(obj: Any) -> Forest:
    """A fitted model object in memory: XGBoost, LightGBM or scikit-learn."""
    return _convert(obj, "in-memory")


def _convert(obj: Any, source_format: str) -> Forest:
    module = type(obj).__module__.split(".")[0]
    if module in ("xgboost", "lightgbm"):
        return _foreign(obj, module)
    if not (hasattr(obj, "fit") and hasattr(obj, "get_params")):
        raise ModelFormatError(f"the file holds a {_qualname(obj)}, not a scikit-learn model")
    try:
        return forest_from_estimator(obj, source_format=source_format)
    except KernelError:
        raise
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelFormatError(f"malformed {type(obj).__name__} ({exc})") from exc


def _foreign(obj: Any, module: str) -> Forest:
    """A pickled XGBoost or LightGBM model (sklearn wrapper or Booster): its native loader."""
    if module == "xgboost":
        from kernels.loaders.xgboost import load_xgboost_json

        booster = obj.get_booster() if hasattr(obj, "get_booster") else obj
        return load_xgboost_json(bytes(booster.save_raw(raw_format="json")))
    try:
        from kernels.loaders.lightgbm import forest_from_booster
    except ImportError:
        raise UnsupportedModelError("LightGBM models are not supported by this build") from None
    return forest_from_booster(getattr(obj, "booster_", obj))


def _is_sklearn(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "sklearn"


def _qualname(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


# --- native trees ------------------------------------------------------------------------


@dataclass
class _Native:
    trees: list[NativeTree]
    groups: list[int]
    base_margin: np.ndarray
    link: str
    objective: str
    input_dtype: type
    classes: Any = None
    #: Whether predict accepts +-inf (else a +inf threshold may send +inf right).
    accepts_inf: bool = False


def _unwrap_pipeline(est: Any) -> tuple[list[Any], Any]:
    """The transformers before the model (nested pipelines flattened), and the model."""
    if not _is_pipeline(est):
        return [], est
    steps: list[Any] = []
    for _, step in est.steps[:-1]:
        if _is_pipeline(step):
            inner, last = _unwrap_pipeline(step)
            steps += [*inner, last]
        elif step is not None and not isinstance(step, str):  # "passthrough"
            steps.append(step)
    inner, model = _unwrap_pipeline(est.steps[-1][1])
    steps += inner
    for step in steps:
        _check_step(step)
    return steps, model


def _is_pipeline(obj: Any) -> bool:
    return _is_sklearn(obj) and type(obj).__name__ == "Pipeline"


def _check_step(step: Any) -> None:
    name = type(step).__name__
    if _is_sklearn(step) and name in _FOLDABLE_STEPS:
        return
    if _is_sklearn(step) and name == "SimpleImputer":
        missing = step.missing_values
        if not (isinstance(missing, float) and np.isnan(missing)) or step.add_indicator:
            raise UnsupportedModelError(
                "SimpleImputer is supported only with missing_values=nan and no indicator"
            )
        return
    raise UnsupportedModelError(
        f"pipeline step {_qualname(step)} is not supported (supported before a tree model: "
        f"{', '.join(_FOLDABLE_STEPS)}, SimpleImputer)"
    )


def _sklearn_tree(est: Any, value: np.ndarray, *, nan_left: bool = True) -> NativeTree:
    t = est.tree_
    left = np.asarray(t.children_left, dtype=np.int64)
    if nan_left:
        missing = np.asarray(t.missing_go_to_left, dtype=bool)
    else:
        missing = np.zeros(left.shape[0], dtype=bool)
    return NativeTree(
        feature=np.asarray(t.feature, dtype=np.int64),
        threshold=np.asarray(t.threshold, dtype=np.float64),
        left=left,
        right=np.asarray(t.children_right, dtype=np.int64),
        missing_left=missing,
        value=np.asarray(value, dtype=np.float64),
    )


def _single_output(est: Any) -> None:
    if int(getattr(est, "n_outputs_", 1)) != 1:
        raise UnsupportedModelError(f"{type(est).__name__}: multi-output models are not supported")


def _tree_classifier(est: Any) -> _Native:
    """predict_proba: the mean over trees of each leaf's class fractions (``tree_.value``)."""
    _single_output(est)
    members = est.estimators_ if hasattr(est, "estimators_") else [est]
    k = int(est.n_classes_)
    if k < 2:
        raise UnsupportedModelError(f"{type(est).__name__} was fitted on a single class")
    columns = [1] if k == 2 else list(range(k))
    scale = 1.0 / len(members)
    trees, groups = [], []
    for member in members:
        proba = np.asarray(member.tree_.value, dtype=np.float64)[:, 0, :k]
        for group, column in enumerate(columns):
            trees.append(_sklearn_tree(member, proba[:, column] * scale))
            groups.append(group)
    return _Native(
        trees, groups, np.zeros(len(columns)), "identity", str(est.criterion), np.float32,
        classes=est.classes_,
    )  # fmt: skip


def _tree_regressor(est: Any) -> _Native:
    _single_output(est)
    members = est.estimators_ if hasattr(est, "estimators_") else [est]
    scale = 1.0 / len(members)
    trees = [_sklearn_tree(m, np.asarray(m.tree_.value)[:, 0, 0] * scale) for m in members]
    return _Native(trees, [0] * len(trees), np.zeros(1), "identity", str(est.criterion), np.float32)


#: Loss link (class name) -> (IR link, factor on the raw prediction).
_LINKS = {
    "IdentityLink": ("identity", 1.0),
    "LogLink": ("exp", 1.0),
    "LogitLink": ("sigmoid", 1.0),
    "HalfLogitLink": ("sigmoid", 2.0),  # exponential loss: proba = expit(2 * raw)
    "MultinomialLogit": ("softmax", 1.0),
}


def _loss_link(est: Any, *, regressor_identity: bool) -> tuple[str, float]:
    if regressor_identity and not hasattr(est, "classes_"):
        return "identity", 1.0  # GradientBoostingRegressor.predict returns the raw sum
    name = type(est._loss.link).__name__
    if name not in _LINKS:
        raise UnsupportedModelError(f"{type(est).__name__}: loss link {name} is not supported")
    return _LINKS[name]


def _gradient_boosting(est: Any) -> _Native:
    init = est.init_
    constant = (isinstance(init, str) and init == "zero") or (
        type(init).__name__ in ("DummyClassifier", "DummyRegressor")
        and getattr(init, "strategy", "") != "stratified"  # the only random one
    )
    if not constant:
        raise UnsupportedModelError(
            f"{type(est).__name__}: init estimator {init!r} is not supported "
            "(only 'zero' or a constant Dummy estimator, the default)"
        )
    link, factor = _loss_link(est, regressor_identity=True)
    probe = np.zeros((1, int(est.n_features_in_)), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = np.asarray(est._raw_predict_init(probe), dtype=np.float64)[0] * factor
    rate = float(est.learning_rate)
    trees, groups = [], []
    for stage in est.estimators_:
        for k, member in enumerate(stage):
            # predict_stages adds ``scale * value`` (float64); factor 2 is exact
            value = rate * np.asarray(member.tree_.value, dtype=np.float64)[:, 0, 0] * factor
            trees.append(_sklearn_tree(member, value, nan_left=False))
            groups.append(k)
    return _Native(
        trees, groups, base, link, str(est.loss), np.float32,
        classes=getattr(est, "classes_", None),
    )  # fmt: skip


def _hist_gradient_boosting(est: Any) -> _Native:
    link, factor = _loss_link(est, regressor_identity=False)
    if factor != 1.0:
        raise UnsupportedModelError(f"{type(est).__name__}: loss link factor {factor}")
    feature_map, categories = _hgb_columns(est)
    known, f_idx_map = est._bin_mapper.make_known_categories_bitsets()
    trees, groups = [], []
    for iteration in est._predictors:
        for k, predictor in enumerate(iteration):
            trees.append(_hgb_tree(predictor, feature_map, categories, known, f_idx_map))
            groups.append(k)
    base = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
    loss = getattr(est, "loss", "")
    return _Native(
        trees, groups, base, link, str(loss), np.float64,
        classes=getattr(est, "classes_", None), accepts_inf=True,
    )  # fmt: skip


def _hgb_columns(est: Any) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Map the predictors' columns to the input's; for each categorical predictor column,
    the raw category value of each code the preprocessor's OrdinalEncoder assigns."""
    n = int(est.n_features_in_)
    pre = est._preprocessor
    if pre is None:
        return np.arange(n), {}
    feature_map = np.full(n, -1, dtype=np.int64)
    categories: dict[int, np.ndarray] = {}
    for name, transformer, columns in pre.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        source = np.arange(n)[columns]
        out = pre.output_indices_[name]
        feature_map[out] = source
        if name != "encoder":
            continue
        for i, cats in enumerate(transformer.categories_):
            cats = np.asarray(cats)
            label = f"categorical feature {source[i]}"
            if cats.dtype.kind not in "iuf":
                raise UnsupportedModelError(f"{label} has non-numeric categories")
            cats = cats.astype(np.float64)
            cats = cats[~np.isnan(cats)]  # NaN, last when seen in training, is not a code
            if ((cats != np.floor(cats)) | (cats < 0) | (cats >= MAX_CATEGORY)).any():
                raise UnsupportedModelError(
                    f"{label}: categories must be integers in [0, {MAX_CATEGORY})"
                )
            categories[out.start + i] = cats.astype(np.int64)
    if (feature_map < 0).any():
        raise UnsupportedModelError("histogram boosting preprocessor drops columns")
    return feature_map, categories


def _bits(words: np.ndarray) -> np.ndarray:
    """The members of a bitset of 32-bit words."""
    c = np.arange(32 * words.shape[0])
    return c[((words[c >> 5] >> (c & 31).astype(np.uint32)) & 1).astype(bool)]


def _bitset(members: np.ndarray) -> np.ndarray:
    members = np.asarray(members, dtype=np.int64)
    words = np.zeros(int(members.max()) // 32 + 1 if members.size else 0, dtype=np.uint32)
    np.bitwise_or.at(words, members >> 5, (np.uint32(1) << (members & 31).astype(np.uint32)))
    return words


def _hgb_tree(
    predictor: Any,
    feature_map: np.ndarray,
    categories: dict[int, np.ndarray],
    known: np.ndarray,
    f_idx_map: np.ndarray,
) -> NativeTree:
    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(bool)
    column = nodes["feature_idx"].astype(np.int64)
    missing_left = nodes["missing_go_to_left"].astype(bool)
    tree = NativeTree(
        feature=np.where(leaf, -1, feature_map[np.where(leaf, 0, column)]),
        threshold=nodes["num_threshold"].astype(np.float64),
        left=np.where(leaf, -1, nodes["left"].astype(np.int64)),
        right=np.where(leaf, -1, nodes["right"].astype(np.int64)),
        missing_left=missing_left,
        value=np.where(leaf, nodes["value"], 0.0).astype(np.float64),
        cat_words={},
        cat_swap={},
    )
    for i in np.flatnonzero(~leaf & nodes["is_categorical"].astype(bool)):
        # Codes: left set, then known. Unknown raw values (and NaN) go the missing way, so
        # the IR bitset holds the side they do not go to, and the children swap if needed.
        left_codes = _bits(predictor.raw_left_cat_bitsets[nodes["bitset_idx"][i]])
        known_codes = _bits(known[f_idx_map[column[i]]])
        swap = bool(missing_left[i])
        codes = np.setdiff1d(known_codes, left_codes) if swap else left_codes
        tree.cat_words[int(i)] = _bitset(categories[int(column[i])][codes])
        tree.cat_swap[int(i)] = swap
    return tree


_BUILDERS: dict[str, Callable[[Any], _Native]] = {
    "DecisionTreeClassifier": _tree_classifier,
    "RandomForestClassifier": _tree_classifier,
    "ExtraTreesClassifier": _tree_classifier,
    "DecisionTreeRegressor": _tree_regressor,
    "RandomForestRegressor": _tree_regressor,
    "ExtraTreesRegressor": _tree_regressor,
    "GradientBoostingClassifier": _gradient_boosting,
    "GradientBoostingRegressor": _gradient_boosting,
    "HistGradientBoostingClassifier": _hist_gradient_boosting,
    "HistGradientBoostingRegressor": _hist_gradient_boosting,
}

"""XGBoost models saved as JSON or UBJSON (``Booster.save_model``) -> :class:`Forest`.

XGBoost's own rule (``x < split_condition`` goes left, NaN follows ``default_left``) is the
IR's rule, so thresholds and leaf values are taken as the float32 values XGBoost stores.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from kernels.errors import KernelError, ModelFormatError, UnsupportedModelError
from kernels.ir import Forest
from kernels.loaders import _ubjson
from kernels.loaders._layout import (
    TreeArrays,
    breadth_first,
    check_split_features,
    concatenate,
)

#: Bounds on sizes read from the file: a damaged header must not allocate without limit.
MAX_FEATURES = 1 << 24
MAX_OUTPUTS = 1 << 16

# objective -> (link, how base_score becomes a margin)
_OBJECTIVES: dict[str, str] = {
    "binary:logistic": "sigmoid",
    "reg:logistic": "sigmoid",
    "binary:logitraw": "identity",
    "reg:squarederror": "identity",
    "reg:squaredlogerror": "identity",
    "reg:pseudohubererror": "identity",
    "reg:absoluteerror": "identity",
    "reg:quantileerror": "identity",
    "count:poisson": "exp",
    "reg:gamma": "exp",
    "reg:tweedie": "exp",
    "multi:softprob": "softmax",
    "multi:softmax": "argmax",
}


def load_xgboost_json(data: bytes) -> Forest:
    return load_xgboost(data, ubjson=False)


def load_xgboost_ubj(data: bytes) -> Forest:
    return load_xgboost(data, ubjson=True)


def load_xgboost(data: bytes, *, ubjson: bool) -> Forest:
    """Parse the bytes of an XGBoost model file."""
    try:
        doc = _ubjson.loads(data) if ubjson else json.loads(data)
        learner = doc["learner"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        kind = "UBJSON" if ubjson else "JSON"
        raise ModelFormatError(f"not an XGBoost {kind} model ({exc})") from exc
    try:
        return _learner_to_forest(learner, "xgboost-ubj" if ubjson else "xgboost-json")
    except KernelError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        # A document with the right top level but a missing or mistyped field inside.
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ModelFormatError(f"malformed XGBoost model: {what}") from exc


def _floats(value: Any) -> list[float]:
    """base_score is ``"5E-1"`` before XGBoost 3 and ``"[5E-1]"`` (a vector) after."""
    text = str(value).strip().strip("[]")
    return [float(part) for part in text.split(",") if part.strip()]


def _base_margin(objective: str, link: str, base_score: float) -> float:
    if link == "sigmoid":
        if not 0.0 < base_score < 1.0:
            raise ModelFormatError(f"base_score {base_score} outside (0, 1) for {objective}")
        return math.log(base_score / (1.0 - base_score))
    if link == "exp":
        if base_score <= 0.0:
            raise ModelFormatError(f"base_score {base_score} must be positive for {objective}")
        return math.log(base_score)
    return base_score


def _learner_to_forest(learner: dict[str, Any], source_format: str) -> Forest:
    objective = str(learner["objective"]["name"])
    link = _OBJECTIVES.get(objective)
    if link is None:
        raise UnsupportedModelError(f"XGBoost objective {objective!r} is not supported")
    booster = learner["gradient_booster"]
    if booster.get("name") != "gbtree":
        raise UnsupportedModelError(f"XGBoost booster {booster.get('name')!r} is not supported")
    params = learner["learner_model_param"]
    if int(params.get("num_target", 1)) > 1:
        raise UnsupportedModelError("multi-target XGBoost models are not supported")
    num_class = int(params.get("num_class", 0))
    if not 0 <= num_class <= MAX_OUTPUTS:
        raise ModelFormatError(f"num_class {num_class} outside [0, {MAX_OUTPUTS}]")
    n_outputs = max(num_class, 1)
    if (num_class > 1) != (link in ("softmax", "argmax")):
        raise ModelFormatError(f"objective {objective} with num_class {num_class}")
    num_features = int(params["num_feature"])
    if not 0 < num_features <= MAX_FEATURES:
        raise ModelFormatError(f"num_feature {num_features} outside [1, {MAX_FEATURES}]")
    model = booster["model"]
    trees = [_tree(t, num_features) for t in model["trees"]]
    groups = np.asarray(model.get("tree_info", [0] * len(trees)), dtype=np.int32)
    if groups.shape[0] != len(trees) or (
        groups.size and not 0 <= groups.min() <= groups.max() < n_outputs
    ):
        raise ModelFormatError(f"tree_info does not match a model with {n_outputs} output(s)")

    # One base score per output; XGBoost stores multiclass intercepts as margins already.
    base_scores = _floats(params["base_score"])
    if len(base_scores) == 1 and n_outputs > 1:
        base_scores = base_scores * n_outputs
    if len(base_scores) != n_outputs:
        raise ModelFormatError(f"expected {n_outputs} base_score value(s), got {len(base_scores)}")
    base_margin = np.array(
        [b if n_outputs > 1 else _base_margin(objective, link, b) for b in base_scores],
        dtype=np.float64,
    )

    names = [str(n) for n in learner.get("feature_names") or []]
    if names and len(names) != num_features:
        raise ModelFormatError("feature_names length differs from num_feature")
    arrays, offsets = concatenate([breadth_first(t) for t in trees])
    return Forest(
        **arrays,
        tree_offsets=offsets,
        tree_group=groups,
        base_margin=base_margin,
        link=link,
        num_features=num_features,
        feature_names=tuple(names or (f"f{i}" for i in range(num_features))),
        objective=objective,
        source_format=source_format,
        metadata={"feature_types": ",".join(map(str, learner.get("feature_types") or []))},
    )


def _tree(tree: dict[str, Any], num_features: int) -> TreeArrays:
    if int(tree["tree_param"].get("size_leaf_vector", 1)) > 1:
        raise UnsupportedModelError("vector-leaf (multi-target) trees are not supported")
    left = np.asarray(tree["left_children"], dtype=np.int64)
    right = np.asarray(tree["right_children"], dtype=np.int64)
    n = left.shape[0]
    feature = np.asarray(tree["split_indices"], dtype=np.int64)
    # XGBoost stores float32 values; parse in float64 and round once to recover them.
    cond = np.asarray(tree["split_conditions"], dtype=np.float64).astype(np.float32)
    default_left = np.asarray(tree["default_left"], dtype=np.uint8)
    for name, arr in (
        ("right_children", right),
        ("split_indices", feature),
        ("split_conditions", cond),
        ("default_left", default_left),
    ):
        if arr.shape[0] != n:
            raise ModelFormatError(f"tree {tree.get('id')}: {name} has {arr.shape[0]} != {n}")
    inner = left >= 0
    if n == 0 or (inner & ((left >= n) | (right < 0) | (right >= n))).any():
        raise ModelFormatError(f"tree {tree.get('id')}: child index out of range")
    check_split_features(tree.get("id"), feature, inner, num_features)
    arrays = TreeArrays(
        feature=feature,
        threshold=cond,
        left=left,
        right=right,
        default_left=default_left,
        value=cond.astype(np.float64),
    )
    split_type = np.asarray(tree.get("split_type", []), dtype=np.int64)
    if split_type.size and split_type.any():
        _categorical_splits(tree, arrays, split_type)
    return arrays


def _categorical_splits(tree: dict[str, Any], arrays: TreeArrays, split_type: np.ndarray) -> None:
    """XGBoost's categorical (partition) splits: the categories a node lists go right, the
    rest left, NaN by default_left. The IR sends the set left, so the children swap."""
    n = arrays.left.shape[0]
    nodes = np.asarray(tree["categories_nodes"], dtype=np.int64)
    segments = np.asarray(tree["categories_segments"], dtype=np.int64)
    sizes = np.asarray(tree["categories_sizes"], dtype=np.int64)
    categories = np.asarray(tree["categories"], dtype=np.int64)
    if not (nodes.shape == segments.shape == sizes.shape) or set(nodes) != set(
        np.flatnonzero(split_type)
    ):
        raise ModelFormatError(f"tree {tree.get('id')}: categories do not match split_type")
    categorical = np.zeros(n, np.uint8)
    cat_start = np.zeros(n, np.int32)
    cat_len = np.zeros(n, np.int32)
    words: list[np.ndarray] = []
    used = 0
    for node, start, size in zip(nodes, segments, sizes, strict=True):
        members = categories[start : start + size]
        if members.size and (members.min() < 0 or members.max() >= 1 << 24):
            raise ModelFormatError(f"tree {tree.get('id')}: category out of range")
        bits = np.zeros(int(members.max()) // 32 + 1 if members.size else 0, np.uint32)
        np.bitwise_or.at(
            bits, members // 32, np.left_shift(np.uint32(1), members % 32).astype(np.uint32)
        )
        # mode 3: XGBoost reads negative values as invalid categories (they go right)
        categorical[node], cat_start[node], cat_len[node] = 3, used, bits.shape[0]
        words.append(bits)
        used += bits.shape[0]
        arrays.left[node], arrays.right[node] = arrays.right[node], arrays.left[node]
        arrays.default_left[node] = 1 - arrays.default_left[node]
        arrays.threshold[node] = 0.0
    arrays.categorical = categorical
    arrays.cat_start = cat_start
    arrays.cat_len = cat_len
    arrays.cat_bits = np.concatenate(words) if words else np.zeros(0, np.uint32)

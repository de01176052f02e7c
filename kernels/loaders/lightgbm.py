"""LightGBM models saved as text (``Booster.save_model``, ``model_to_string``) -> :class:`Forest`.

The rules reproduced are those of LightGBM's ``Tree::NumericalDecision`` and
``Tree::CategoricalDecision`` (``include/LightGBM/tree.h``) behind ``Booster.predict`` on a
dense matrix, which first widens each value to float64 and drops every value in the zero
band ``|x| <= kZeroThreshold`` (``src/c_api.cpp``), so that it reads as exactly 0.0:

* numerical: left iff ``x <= threshold`` (float64). On float32 inputs this is ``x < t'``
  with ``t'`` the smallest float32 above the threshold (:func:`float32_above`); a threshold
  inside the zero band is moved to the band's edge, so band values go where 0.0 goes
  (:func:`numeric_thresholds`). A threshold of +inf (NaN apart from every number) becomes
  swapped children and ``x < -inf``.
* missing type (bits 2-3 of ``decision_type``): *None*: NaN reads as 0.0, so it goes where
  0.0 goes; *NaN*: NaN goes the default direction (bit 1); *Zero* (``zero_as_missing``):
  NaN and the zero band go the default direction (the IR's ``zero_missing``).
* categorical (bit 0): left iff ``int(x)`` (truncated) is a category whose bit is set in
  the node's bitset; NaN, negative categories and categories past the bitset go right.

Leaf values are float64 and already include the learning rate; LightGBM folds the initial
score into the first tree, so the base margin is 0.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from kernels.errors import KernelError, ModelFormatError, UnsupportedModelError
from kernels.ir import Forest
from kernels.loaders._layout import TreeArrays, breadth_first, concatenate
from kernels.loaders._thresholds import float32_above

#: LightGBM's ``kZeroThreshold`` (``1e-35f`` widened to double): ``|x| <= ZERO_BAND`` is zero.
ZERO_BAND = float(np.float32(1e-35))

_CATEGORICAL = 1
_DEFAULT_LEFT = 2
_MISSING_NONE, _MISSING_ZERO = 0, 1  # and 2: NaN

#: objective (first word of the ``objective=`` line) -> link
_OBJECTIVES: dict[str, str] = {
    "regression": "identity",
    "regression_l1": "identity",
    "huber": "identity",
    "fair": "identity",
    "quantile": "identity",
    "mape": "identity",
    "lambdarank": "identity",
    "rank_xendcg": "identity",
    "custom": "identity",  # no objective line: predict returns the raw score
    "poisson": "exp",
    "gamma": "exp",
    "tweedie": "exp",
    "binary": "sigmoid",
    "cross_entropy": "sigmoid",
    "multiclassova": "sigmoid",
    "multiclass": "softmax",
}


def load_lightgbm_text(data: bytes) -> Forest:
    """Parse the bytes of a LightGBM text model file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFormatError(f"not a LightGBM text model ({exc})") from exc
    return _text_to_forest(text, "lightgbm-text")


def forest_from_booster(booster: Any) -> Forest:
    """The forest of an in-memory ``lightgbm.Booster`` (the trees its ``predict`` uses)."""
    return _text_to_forest(booster.model_to_string(), "lightgbm-booster")


def numeric_thresholds(threshold: np.ndarray) -> np.ndarray:
    """IR thresholds for LightGBM's ``x <= t`` behind a predict that reads the zero band as
    0.0: a threshold inside the band sends the whole band where 0.0 goes."""
    t = np.asarray(threshold, dtype=np.float64)
    out = float32_above(t)
    in_band = (t >= -ZERO_BAND) & (t < ZERO_BAND)
    band_left = np.nextafter(np.float32(ZERO_BAND), np.float32(np.inf))  # x <= band edge
    band_right = np.float32(-ZERO_BAND)  # x below the band
    out = np.where(in_band & (t >= 0.0), band_left, out)
    return np.where(in_band & (t < 0.0), band_right, out).astype(np.float32)


# --- the text format ---------------------------------------------------------------------


def _text_to_forest(text: str, source_format: str) -> Forest:
    try:
        header, trees, rest = _sections(text)
        return _build(header, trees, rest, source_format)
    except KernelError:
        raise
    except (KeyError, ValueError, IndexError, OverflowError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ModelFormatError(f"malformed LightGBM model: {what}") from exc


def _sections(text: str) -> tuple[dict[str, str], list[dict[str, str]], list[str]]:
    """Header keys, one key dict per ``Tree=`` block, and the lines after the trees."""
    lines = text.lstrip().splitlines()
    if not lines or lines[0].strip() != "tree":
        raise ModelFormatError("not a LightGBM text model (no 'tree' first line)")
    header: dict[str, str] = {}
    i = 1
    while i < len(lines) and not lines[i].startswith(("Tree=", "end of trees")):
        key, _, value = lines[i].strip().partition("=")
        if key:
            header[key] = value
        i += 1
    trees: list[dict[str, str]] = []
    while i < len(lines) and lines[i].startswith("Tree="):
        block = {"Tree": lines[i][5:]}
        i += 1
        while i < len(lines) and lines[i].strip():
            key, eq, value = lines[i].strip().partition("=")
            if not eq:
                raise ModelFormatError(f"tree {block['Tree']}: line without '=': {key[:40]!r}")
            block[key] = value
            i += 1
        trees.append(block)
        while i < len(lines) and not lines[i].strip():
            i += 1
    if i >= len(lines) or lines[i].strip() != "end of trees":
        raise ModelFormatError("truncated LightGBM model (no 'end of trees' line)")
    return header, trees, lines[i + 1 :]


def _build(
    header: dict[str, str], blocks: list[dict[str, str]], rest: list[str], source_format: str
) -> Forest:
    words = header.get("objective", "custom").split()
    objective = words[0] if words else "custom"
    options = dict(word.partition(":")[::2] for word in words[1:])
    link = _OBJECTIVES.get(objective)
    if link is None:
        raise UnsupportedModelError(f"LightGBM objective {objective!r} is not supported")
    if "sqrt" in options:
        raise UnsupportedModelError(f"LightGBM objective '{objective} sqrt' is not supported")
    # prediction = link(sigmoid * raw / n_iterations): sigmoid for binary-like objectives,
    # n_iterations for random forests (boosting=rf), whose raw score is the plain sum.
    link_scale = float(options.get("sigmoid", 1.0)) if link == "sigmoid" else 1.0
    if any(line.strip() == "[linear_tree: 1]" for line in rest):
        raise UnsupportedModelError("LightGBM linear trees (linear_tree=True) are not supported")

    num_features = int(header["max_feature_idx"]) + 1
    outputs = int(header.get("num_tree_per_iteration", header["num_class"]))
    if num_features < 1 or outputs < 1:
        raise ModelFormatError("bad max_feature_idx or num_tree_per_iteration")
    if len(blocks) % outputs:
        raise ModelFormatError(f"{len(blocks)} trees is not a multiple of {outputs} outputs")
    names = header["feature_names"].split(" ")
    if len(names) != num_features:
        raise ModelFormatError("feature_names length differs from max_feature_idx + 1")

    if "average_output" in header:
        if not blocks:
            raise ModelFormatError("a random forest (average_output) without trees")
        link_scale /= len(blocks) // outputs
    trees = [_tree(block, num_features) for block in blocks]
    arrays, offsets = concatenate(trees)
    metadata = {"feature_infos": header.get("feature_infos", "")}
    for line in rest:
        if line.startswith("pandas_categorical:") and line[19:].strip() != "null":
            metadata["pandas_categorical"] = json.dumps(json.loads(line[19:]))
    return Forest(
        **arrays,
        tree_offsets=offsets,
        tree_group=(np.arange(len(trees)) % outputs).astype(np.int32),
        base_margin=np.zeros(outputs, dtype=np.float64),
        link=link,
        num_features=num_features,
        feature_names=tuple(names),
        objective=objective,
        source_format=source_format,
        metadata=metadata,
        link_scale=link_scale,
    )


def _array(block: dict[str, str], key: str, dtype: type, size: int) -> np.ndarray:
    """A space-separated array field; floats go through Python's correctly rounded parser."""
    parts = block[key].split()
    if len(parts) != size:
        raise ModelFormatError(f"tree {block['Tree']}: {key} has {len(parts)} != {size} entries")
    if dtype is np.float64:
        return np.array([float(p) for p in parts], dtype=np.float64)
    return np.array([int(p) for p in parts], dtype=np.int64).astype(dtype)


def _tree(block: dict[str, str], num_features: int) -> TreeArrays:
    name = block["Tree"]
    if int(block.get("is_linear", "0")):
        raise UnsupportedModelError("LightGBM linear trees (linear_tree=True) are not supported")
    n_leaves = int(block["num_leaves"])
    if n_leaves < 1:
        raise ModelFormatError(f"tree {name}: num_leaves {n_leaves} < 1")
    leaf_value = _array(block, "leaf_value", np.float64, n_leaves)
    n_inner = n_leaves - 1
    total = n_inner + n_leaves
    if n_inner == 0:
        return TreeArrays(
            feature=np.full(1, -1, np.int32),
            threshold=np.zeros(1, np.float32),
            left=np.full(1, -1, np.int32),
            right=np.full(1, -1, np.int32),
            default_left=np.zeros(1, np.uint8),
            value=leaf_value,
        )
    feature = _array(block, "split_feature", np.int64, n_inner)
    raw_threshold = _array(block, "threshold", np.float64, n_inner)
    decision = (
        _array(block, "decision_type", np.int64, n_inner)
        if "decision_type" in block
        else np.zeros(n_inner, np.int64)
    )
    # Children: >= 0 an inner node, < 0 the leaf ~child; leaves follow the inner nodes here.
    children = [_array(block, key, np.int64, n_inner) for key in ("left_child", "right_child")]
    left, right = (np.where(c >= 0, c, n_inner + ~c) for c in children)
    targets = np.sort(np.concatenate([left, right]))
    if not np.array_equal(targets, np.arange(1, total)):
        raise ModelFormatError(f"tree {name}: children do not form a tree")
    bad = (feature < 0) | (feature >= num_features)
    if bad.any():
        raise ModelFormatError(
            f"tree {name}: split feature {int(feature[bad][0])} out of range "
            f"(the model has {num_features} features)"
        )

    categorical = (decision & _CATEGORICAL) != 0
    default_bit = (decision & _DEFAULT_LEFT) != 0
    missing = (decision >> 2) & 3
    numeric = ~categorical
    if np.isnan(raw_threshold).any():
        raise ModelFormatError(f"tree {name}: NaN threshold")
    # NaN: missing type None reads it as 0.0; categorical splits always send it right.
    default_left = np.where(missing == _MISSING_NONE, raw_threshold >= 0.0, default_bit)
    default_left &= numeric
    zero_missing = numeric & (missing == _MISSING_ZERO)
    threshold = np.where(numeric, numeric_thresholds(raw_threshold), np.float32(0))
    # ``x <= +inf`` (LightGBM's split of NaN from every number) sends +inf left, which no
    # float32 ``x < t'`` does: swap the children so that no value goes left (``x < -inf``)
    # and only the missing ones may.
    swap = numeric & (raw_threshold == np.inf)
    left, right = np.where(swap, right, left), np.where(swap, left, right)
    threshold = np.where(swap, np.float32(-np.inf), threshold)
    default_left ^= swap

    cat_start = np.zeros(n_inner, np.int64)
    cat_len = np.zeros(n_inner, np.int64)
    cat_bits = np.zeros(0, np.uint32)
    if categorical.any():
        num_cat = int(block.get("num_cat", "0"))
        bounds = _array(block, "cat_boundaries", np.int64, num_cat + 1)
        cat_bits = _array(block, "cat_threshold", np.int64, int(bounds[-1]))
        if bounds[0] != 0 or (np.diff(bounds) < 0).any() or (cat_bits >> 32).any():
            raise ModelFormatError(f"tree {name}: bad cat_boundaries or cat_threshold")
        index = np.where(categorical, raw_threshold, 0.0)
        if ((index < 0) | (index >= num_cat) | (index != np.floor(index))).any():
            raise ModelFormatError(f"tree {name}: categorical split index out of range")
        index = index.astype(np.int64)
        cat_start = np.where(categorical, bounds[index], 0)
        cat_len = np.where(categorical, bounds[index + 1] - bounds[index], 0)

    def nodes(inner: np.ndarray, leaf: object, dtype: type) -> np.ndarray:
        return np.concatenate([inner, np.full(n_leaves, leaf)]).astype(dtype)

    tree = TreeArrays(
        feature=nodes(feature, -1, np.int32),
        threshold=nodes(threshold, 0, np.float32),
        left=nodes(left, -1, np.int32),
        right=nodes(right, -1, np.int32),
        default_left=nodes(default_left, 0, np.uint8),
        value=np.concatenate([np.zeros(n_inner), leaf_value]),
        zero_missing=nodes(zero_missing, 0, np.uint8),
        categorical=nodes(categorical, 0, np.uint8),
        cat_start=nodes(cat_start, 0, np.int32),
        cat_len=nodes(cat_len, 0, np.int32),
        cat_bits=cat_bits.astype(np.uint32),
    )
    laid_out = breadth_first(tree)
    if laid_out.feature.shape[0] != total:
        raise ModelFormatError(f"tree {name}: unreachable nodes")
    return laid_out

"""Treelite checkpoints (``treelite.Model.serialize``) -> :class:`Forest`.

Treelite itself parses the file (``Model.deserialize_bytes``); the arrays are read with its
field accessors (``get_header_accessor``, ``get_tree_accessor``, treelite >= 4.2), which
hand over the stored thresholds and leaf values bit for bit. (``dump_as_json`` is not used:
RapidJSON writes a non-finite threshold as nothing, ``"threshold":,``.)

The rules reproduced are those of treelite's reference predictor, GTIL
(``src/gtil/predict.cc``, ``postprocessor.cc``):

* numerical: left iff ``x <op> threshold``, compared in the model's threshold type
  (float32 or float64), ``op`` one of ``<``, ``<=``, ``>``, ``>=``. On float32 inputs
  ``x < t`` is ``x < t'`` with ``t'`` the smallest float32 ``>= t`` (:func:`float32_ceil`);
  ``x <= t`` is ``x < t'`` with ``t'`` the smallest float32 ``> t`` (:func:`float32_above`;
  ``t = +inf`` becomes swapped children and ``x < -inf``); ``>`` and ``>=`` are the
  negations of ``<=`` and ``<`` with the children swapped. ``==`` is not supported.
* NaN goes to the default child (``default_left``) at every test node.
* categorical: ``x`` is a category iff ``0 <= x <= min(2**32 - 1, 2**mantissa)``; it is
  ``uint32(x)`` (truncated) and matches iff it is in ``category_list``. A match goes left,
  or right where ``category_list_right_child``: the IR's mode 3 (no negatives, truncate),
  with the children swapped in the latter case. Categories must be below 2**20.
* a tree adds its leaf to output ``class_id``; a tree with ``class_id == -1`` has leaf
  vectors over the classes and becomes one tree per class. With ``average_tree_output``
  each output is divided by the number of its trees: folded into the leaves (``v / n``
  instead of ``sum / n``, a float64 rounding apart). Then ``base_scores`` are added and
  the postprocessor applied: ``identity``, ``identity_multiclass``, ``sigmoid`` and
  ``multiclass_ova`` (``link_scale = sigmoid_alpha``), ``softmax``, ``exponential``.

Not supported: multi-target models (``num_target > 1``), the postprocessors
``exponential_standard_ratio`` (isolation forests), ``signed_square``, ``hinge`` and
``logarithm_one_plus_exp``, and the ``==`` operator.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import treelite

from kernels.errors import KernelError, ModelFormatError, UnsupportedModelError
from kernels.ir import Forest
from kernels.loaders._layout import (
    TreeArrays,
    breadth_first,
    check_split_features,
    concatenate,
)
from kernels.loaders._thresholds import float32_above

#: treelite postprocessor -> (link, whether ``sigmoid_alpha`` scales the margin)
_POSTPROCESSORS: dict[str, tuple[str, bool]] = {
    "identity": ("identity", False),
    "identity_multiclass": ("identity", False),
    "sigmoid": ("sigmoid", True),
    "multiclass_ova": ("sigmoid", True),
    "softmax": ("softmax", False),
    "exponential": ("exp", False),
}
#: treelite's ``Operator`` enum
_EQ, _LT, _LE, _GT, _GE = 1, 2, 3, 4, 5
_OPERATORS = {_EQ: "==", _LT: "<", _LE: "<=", _GT: ">", _GE: ">="}
_LEAF, _NUMERICAL, _CATEGORICAL = 0, 1, 2
#: Largest category accepted (bitsets are dense: 2**20 categories take 128 KiB per node).
MAX_CATEGORY = 2**20 - 1


def load_treelite_checkpoint(data: bytes) -> Forest:
    """Parse the bytes of a treelite checkpoint (``Model.serialize``)."""
    check_layout(data)
    try:
        model = treelite.Model.deserialize_bytes(data)
    except treelite.TreeliteError as exc:
        raise ModelFormatError(f"corrupt treelite checkpoint ({_first_line(exc)})") from None
    try:
        return _build(model)
    except KernelError:
        raise
    except (treelite.TreeliteError, KeyError, ValueError, IndexError, OverflowError) as exc:
        raise ModelFormatError(f"malformed treelite model: {_first_line(exc)}") from None


def check_layout(data: bytes) -> None:
    """Walk the v4 checkpoint's fields (``docs/serialization/v4.rst``) and check that every
    length fits the bytes and that the file ends where the last tree does.

    Treelite's own deserializer trusts the lengths it reads: a corrupt checkpoint can crash
    or hang the process, so only a file with a sound layout is handed to it.
    """
    reader = _Reader(data)
    major, _minor, _patch = reader.scalars("<3i")
    if major != 4:
        raise UnsupportedModelError(
            f"treelite checkpoint format v{major} not supported (re-serialize with treelite 4)"
        )
    threshold_type, leaf_type = reader.scalars("<2B")
    sizes = {2: 4, 3: 8}
    if threshold_type not in sizes or leaf_type not in sizes:
        raise ModelFormatError(f"bad threshold/leaf types {threshold_type}, {leaf_type}")
    (num_tree,) = reader.scalars("<Q")
    reader.scalars("<iBB")  # num_feature, task_type, average_tree_output
    reader.scalars("<i")  # num_target
    for size in (4, 4, 4, 4, 1):  # num_class, leaf_vector_shape, target/class_id, postproc.
        reader.array(size)
    reader.scalars("<2f")  # sigmoid_alpha, ratio_c
    reader.array(8)  # base_scores
    reader.array(1)  # attributes
    if reader.scalars("<i") != (0,):
        raise UnsupportedModelError("treelite checkpoint with optional model fields")
    thr, leaf = sizes[threshold_type], sizes[leaf_type]
    if num_tree > len(data):
        raise ModelFormatError(f"tree count {num_tree} exceeds the file size")
    for t in range(num_tree):
        num_nodes, _ = reader.scalars("<iB")
        # node_type, cleft, cright, split_index, default_left, leaf_value, threshold, cmp,
        # category_list_right_child: one entry per node.
        for size in (1, 4, 4, 4, 1, leaf, thr, 1, 1):
            if reader.array(size) != num_nodes:
                raise ModelFormatError(f"tree {t}: node array length differs from num_nodes")
        reader.array(leaf)  # leaf_vector
        for size in (8, 8):  # leaf_vector_begin, _end
            if reader.array(size) != num_nodes:
                raise ModelFormatError(f"tree {t}: leaf vector offsets length")
        reader.array(4)  # category_list
        for size in (8, 8):  # category_list_begin, _end
            if reader.array(size) != num_nodes:
                raise ModelFormatError(f"tree {t}: category list offsets length")
        for size in (8, 1, 8, 1, 8, 1):  # data_count, sum_hess, gain and their *_present
            reader.array(size)
        if reader.scalars("<2i") != (0, 0):
            raise UnsupportedModelError("treelite checkpoint with optional tree/node fields")
    if reader.offset != len(data):
        raise ModelFormatError(f"{len(data) - reader.offset} bytes after the last tree")


class _Reader:
    """Little-endian fields of a byte string, checked against its end."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def scalars(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        self._need(size)
        values = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += size
        return values

    def array(self, item_size: int) -> int:
        """Skip a length-prefixed array; returns its length."""
        (length,) = self.scalars("<Q")
        self._need(length * item_size)
        self.offset += length * item_size
        return length

    def _need(self, size: int) -> None:
        if size > len(self.data) - self.offset:
            raise ModelFormatError(f"truncated treelite checkpoint (at byte {self.offset})")


def float32_ceil(threshold: np.ndarray) -> np.ndarray:
    """The smallest float32 ``>=`` each float64 threshold (``+inf`` past the float32 range),
    so that for every float32 ``x``, ``x < t`` iff ``x < float32_ceil(t)``.

    If ``x < t`` then ``x < t <= t'``; if ``x >= t`` then ``x >= t'``, as ``t'`` is the
    smallest float32 that is ``>= t``. Rounding to nearest gives ``t'`` or the float32 below.
    """
    t = np.asarray(threshold, dtype=np.float64)
    with np.errstate(over="ignore"):  # past float32 max: +inf, as wanted
        nearest = t.astype(np.float32)
        up = np.nextafter(nearest, np.float32(np.inf))
        return np.where(nearest >= t, nearest, up).astype(np.float32)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:200] if text else type(exc).__name__


def _build(model: Any) -> Forest:
    header = model.get_header_accessor()

    def field(name: str) -> np.ndarray:
        return np.asarray(header.get_field(name))

    num_target = int(field("num_target")[0])
    if num_target != 1:
        raise UnsupportedModelError(f"multi-target treelite models ({num_target}) not supported")
    num_class = int(field("num_class")[0])
    num_feature = int(field("num_feature")[0])
    if num_class < 1 or num_feature < 1:
        raise ModelFormatError(f"bad num_class {num_class} or num_feature {num_feature}")
    postprocessor = str(header.get_field("postprocessor"))
    if postprocessor not in _POSTPROCESSORS:
        raise UnsupportedModelError(f"treelite postprocessor {postprocessor!r} not supported")
    link, scaled = _POSTPROCESSORS[postprocessor]
    link_scale = float(field("sigmoid_alpha")[0]) if scaled else 1.0
    base_scores = field("base_scores").astype(np.float64)
    if base_scores.shape != (num_class,):
        raise ModelFormatError(f"base_scores has {base_scores.size} entries, not {num_class}")

    num_tree = int(model.num_tree)
    class_id = field("target_id"), field("class_id")
    if any(ids.shape != (num_tree,) for ids in class_id):
        raise ModelFormatError("target_id or class_id length differs from the tree count")
    if ((class_id[0] != 0) & (class_id[0] != -1)).any():
        raise ModelFormatError("target_id out of range")
    classes = class_id[1]
    if ((classes < -1) | (classes >= num_class)).any():
        raise ModelFormatError("class_id out of range")

    trees: list[TreeArrays] = []
    groups: list[int] = []
    for t in range(num_tree):
        width = num_class if classes[t] == -1 else 1
        tree, leaves = _tree(model.get_tree_accessor(t), t, num_feature, width)
        for k in range(width):
            trees.append(_with_leaves(tree, leaves[:, k]))
            groups.append(k if width > 1 else int(classes[t]))
    tree_group = np.asarray(groups, dtype=np.int32)
    if bool(field("average_tree_output")[0]):
        counts = np.bincount(tree_group, minlength=num_class)
        trees = [
            _with_leaves(tree, tree.value / counts[g])
            for tree, g in zip(trees, tree_group, strict=True)
        ]
    arrays, offsets = concatenate(trees)
    return Forest(
        **arrays,
        tree_offsets=offsets,
        tree_group=tree_group,
        base_margin=base_scores,
        link=link,
        num_features=num_feature,
        feature_names=tuple(f"f{i}" for i in range(num_feature)),
        objective=postprocessor,
        source_format="treelite",
        metadata={"task_type": str(int(field("task_type")[0]))},
        link_scale=link_scale,
    )


def _with_leaves(tree: TreeArrays, leaves: np.ndarray) -> TreeArrays:
    return TreeArrays(
        **{**tree.__dict__, "value": np.where(tree.left < 0, leaves, 0.0).astype(np.float64)}
    )


def _tree(accessor: Any, t: int, num_feature: int, width: int) -> tuple[TreeArrays, np.ndarray]:
    """Tree ``t`` in the IR's rule (breadth-first) and its leaf values, ``(nodes, width)``."""

    def get(name: str) -> np.ndarray:
        return np.asarray(accessor.get_field(name))

    node_type = get("node_type").astype(np.int64)
    n = node_type.shape[0]
    left, right = get("cleft").astype(np.int64), get("cright").astype(np.int64)
    feature = get("split_index").astype(np.int64)
    default_left = get("default_left").astype(bool)
    op = get("cmp").astype(np.int64)
    raw_threshold = get("threshold").astype(np.float64)
    if n < 1 or any(a.shape[0] != n for a in (left, right, feature, default_left, op)):
        raise ModelFormatError(f"tree {t}: node arrays of different lengths")
    is_leaf = left < 0
    inner = ~is_leaf
    if (node_type[is_leaf] != _LEAF).any() or (node_type[inner] == _LEAF).any():
        raise ModelFormatError(f"tree {t}: node types disagree with the children")
    children = np.concatenate([left[inner], right[inner]])
    if ((children <= 0) | (children >= n)).any() or (np.bincount(children) > 1).any():
        raise ModelFormatError(f"tree {t}: children do not form a tree")
    check_split_features(t, feature, inner, num_feature)

    numerical = inner & (node_type == _NUMERICAL)
    categorical = inner & (node_type == _CATEGORICAL)
    if (inner & ~numerical & ~categorical).any():
        raise ModelFormatError(f"tree {t}: unknown node type")
    bad_op = numerical & ~np.isin(op, (_LT, _LE, _GT, _GE))
    if bad_op.any():
        name = _OPERATORS.get(int(op[bad_op][0]), str(op[bad_op][0]))
        raise UnsupportedModelError(f"tree {t}: comparison operator {name!r} not supported")
    if np.isnan(raw_threshold[numerical]).any():
        raise ModelFormatError(f"tree {t}: NaN threshold")

    # '>' and '>=' are the negations of '<=' and '<': swap the children.
    swap = numerical & ((op == _GT) | (op == _GE))
    strict = numerical & ((op == _LT) | (op == _GE))
    threshold = np.where(strict, float32_ceil(raw_threshold), float32_above(raw_threshold))
    # 'x <= +inf' holds for every number: no value goes to the child that was right.
    inf_le = numerical & ~strict & (raw_threshold == np.inf)
    threshold = np.where(inf_le, np.float32(-np.inf), threshold)
    swap ^= inf_le

    cat_start = np.zeros(n, np.int64)
    cat_len = np.zeros(n, np.int64)
    words: list[np.ndarray] = []
    if categorical.any():
        swap |= categorical & get("category_list_right_child").astype(bool)
        cats = get("category_list").astype(np.int64)
        begin, end = get("category_list_begin"), get("category_list_end")
        offset = 0
        for node in np.flatnonzero(categorical):
            lo, hi = int(begin[node]), int(end[node])
            if not 0 <= lo <= hi <= cats.shape[0]:
                raise ModelFormatError(f"tree {t}: bad category_list offsets")
            members = cats[lo:hi]
            if members.size and members.max() > MAX_CATEGORY:
                raise UnsupportedModelError(
                    f"tree {t}: category {members.max()} above {MAX_CATEGORY} not supported"
                )
            bits = np.zeros(int(members.max()) // 32 + 1 if members.size else 0, np.uint32)
            np.bitwise_or.at(
                bits, members // 32, (np.uint32(1) << (members % 32)).astype(np.uint32)
            )
            cat_start[node], cat_len[node] = offset, bits.shape[0]
            offset += bits.shape[0]
            words.append(bits)

    leaves = _leaf_values(get, t, is_leaf, width)
    tree = TreeArrays(
        feature=np.where(inner, feature, -1).astype(np.int32),
        threshold=np.where(numerical, threshold, 0).astype(np.float32),
        left=np.where(swap, right, left).astype(np.int32),
        right=np.where(swap, left, right).astype(np.int32),
        default_left=(default_left ^ swap).astype(np.uint8),
        value=np.arange(n, dtype=np.float64),  # node ids, to carry leaves through re-layout
        categorical=np.where(categorical, 3, 0).astype(np.uint8),
        cat_start=cat_start.astype(np.int32),
        cat_len=cat_len.astype(np.int32),
        cat_bits=np.concatenate(words) if words else np.zeros(0, np.uint32),
    )
    laid_out = breadth_first(tree)
    if laid_out.feature.shape[0] != n:
        raise ModelFormatError(f"tree {t}: unreachable nodes")
    order = laid_out.value.astype(np.int64)
    return laid_out, leaves[np.where(laid_out.left < 0, order, 0)]


def _leaf_values(get: Any, t: int, is_leaf: np.ndarray, width: int) -> np.ndarray:
    """``(nodes, width)`` float64: each leaf's scalar value, or its leaf vector."""
    n = is_leaf.shape[0]
    scalar = get("leaf_value").astype(np.float64)
    vector = get("leaf_vector").astype(np.float64)
    begin = get("leaf_vector_begin").astype(np.int64)
    end = get("leaf_vector_end").astype(np.int64)
    if scalar.shape[0] != n or begin.shape[0] != n or end.shape[0] != n:
        raise ModelFormatError(f"tree {t}: leaf arrays of different lengths")
    out = np.zeros((n, width), np.float64)
    for node in np.flatnonzero(is_leaf):
        lo, hi = int(begin[node]), int(end[node])
        if hi == lo and width == 1:
            out[node, 0] = scalar[node]
        elif hi - lo == width and lo >= 0 and hi <= vector.shape[0]:
            out[node] = vector[lo:hi]
        else:
            raise ModelFormatError(f"tree {t}: leaf {node} has no value of width {width}")
    return out

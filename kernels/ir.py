"""The intermediate representation every loader produces and every backend compiles.

A :class:`Forest` is a structure of flat arrays (one entry per node, all trees laid end to
end) plus the few scalars needed to turn summed leaf values into the native library's
output. Loaders normalise every split to one rule, so backends implement exactly one:

    go left  iff  x < threshold            (x and threshold both float32)
    NaN      ->  left if default_left else right

Two node kinds extend it, for the formats that need them (each is off unless set):

* ``zero_missing``: LightGBM's ``zero_as_missing``: a value in its zero band
  (``-k <= x <= k``, ``k = float32(1e-35)``) is missing at this node, like NaN.
* ``categorical``: go left iff ``x`` is a category ``c`` (``x`` truncated toward zero,
  so ``-1 < x < 0`` is category 0) whose bit is set in the node's bitset, the 32-bit
  words ``cat_bits[cat_start : cat_start + cat_len]`` (bit ``c % 32`` of word
  ``c // 32``); other categories, values ``<= -1`` and values past the bitset go right;
  NaN follows ``default_left``. ``categorical == 2`` (scikit-learn) counts only whole
  numbers as categories, ``categorical == 3`` (XGBoost) no negative value: any other
  value goes right.

XGBoost uses this rule natively. Rules such as LightGBM's ``x <= t`` on float64 thresholds
are rewritten by their loader to the equivalent ``x < t'`` on float32 (``t'`` is the
smallest float32 above ``t``), which is exact for float32 inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

#: Output transforms from summed margin to what the native library's predict returns.
#: ``argmax`` gives the index of the largest margin (XGBoost's ``multi:softmax``).
LINKS = ("identity", "sigmoid", "exp", "softmax", "argmax")


#: The Forest's arrays with one entry per node.
NODE_FIELDS = (
    "feature",
    "threshold",
    "left",
    "right",
    "default_left",
    "value",
    "zero_missing",
    "categorical",
    "cat_start",
    "cat_len",
)
#: Every array of the Forest, in a fixed order (fingerprints and the model cache use it).
ARRAY_FIELDS = (
    *NODE_FIELDS,
    "tree_offsets",
    "tree_group",
    "base_margin",
    "cat_bits",
    "linear_coef",
)


@dataclass(frozen=True, eq=False)
class Forest:
    """A tree ensemble as flat arrays.

    Node arrays have one entry per node of every tree; ``tree_offsets[t]`` is the index of
    tree ``t``'s root and child indices are relative to that root.

    Attributes
    ----------
    feature
        int32, the split feature of an inner node, ``-1`` for a leaf.
    threshold
        float32, split threshold (go left iff ``x < threshold``).
    left, right
        int32, child node index within the tree (``-1`` for a leaf).
    default_left
        uint8, 1 if a missing value (NaN) goes left.
    value
        float64, the leaf value (0 for inner nodes).
    tree_offsets
        int64, ``n_trees + 1`` entries, start of each tree in the node arrays.
    tree_group
        int32, the output column each tree adds to (the class for multiclass models).
    base_margin
        float64, ``n_outputs`` entries added to every row's margin.
    link
        One of :data:`LINKS`: how margin becomes the native prediction.
    num_features
        Width of the input matrix.
    feature_names
        The model's feature names, or ``f0..fN-1`` when it was trained without any.
    objective
        The native objective name, e.g. ``binary:logistic``.
    source_format
        Where the model came from, e.g. ``xgboost-json``.
    sha256
        Hex digest of the model file's bytes (empty when built in memory).
    zero_missing
        uint8 per node, 1 where LightGBM's zero band counts as missing (default all 0).
    categorical
        uint8 per node, 1 (LightGBM), 2 (whole numbers only: scikit-learn) or 3 (no
        negatives: XGBoost) for a categorical split.
    cat_start, cat_len
        int32 per node: the node's words in ``cat_bits``.
    cat_bits
        uint32, the bitsets of every categorical split.
    linear_coef
        float64 ``(n_outputs, num_features)``: a linear term added to the margin,
        ``margin[k] += sum_j linear_coef[k, j] * x_j`` (linear models, which have no
        trees); shape ``(n_outputs, 0)`` (the default) for none.
    link_scale
        The prediction is ``link(link_scale * margin)``: LightGBM's ``sigmoid`` parameter,
        and ``1 / n_iterations`` for its random forests, which average their trees. The
        margin output stays the raw sum, as the native ``raw_score`` is.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    default_left: np.ndarray
    value: np.ndarray
    tree_offsets: np.ndarray
    tree_group: np.ndarray
    base_margin: np.ndarray
    link: str
    num_features: int
    feature_names: tuple[str, ...]
    objective: str
    source_format: str
    sha256: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    zero_missing: np.ndarray | None = None
    categorical: np.ndarray | None = None
    cat_start: np.ndarray | None = None
    cat_len: np.ndarray | None = None
    cat_bits: np.ndarray | None = None
    link_scale: float = 1.0
    linear_coef: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.feature.shape[0]
        coef = self.linear_coef
        coef = np.zeros((self.base_margin.shape[0], 0)) if coef is None else coef
        object.__setattr__(self, "linear_coef", np.ascontiguousarray(coef, np.float64))
        if self.linear_coef.size and self.linear_coef.shape != (
            self.base_margin.shape[0],
            self.num_features,
        ):
            raise ValueError("linear_coef must have shape (n_outputs, num_features)")
        defaults = {
            "zero_missing": np.zeros(n, np.uint8),
            "categorical": np.zeros(n, np.uint8),
            "cat_start": np.zeros(n, np.int32),
            "cat_len": np.zeros(n, np.int32),
            "cat_bits": np.zeros(0, np.uint32),
        }
        for name, default in defaults.items():
            value = getattr(self, name)
            value = default if value is None else np.ascontiguousarray(value, default.dtype)
            object.__setattr__(self, name, value)
        if self.link not in LINKS:
            raise ValueError(f"unknown link {self.link!r}; expected one of {LINKS}")
        if len(self.feature_names) != self.num_features:
            raise ValueError("feature_names must have num_features entries")
        for name in NODE_FIELDS:
            arr = getattr(self, name)
            if arr.ndim != 1 or arr.shape[0] != self.num_nodes:
                raise ValueError(f"node array {name} must have {self.num_nodes} entries")
        for arr in self.arrays().values():
            arr.setflags(write=False)

    @property
    def num_trees(self) -> int:
        return int(self.tree_offsets.shape[0] - 1)

    @property
    def num_nodes(self) -> int:
        return int(self.feature.shape[0])

    @property
    def num_outputs(self) -> int:
        return int(self.base_margin.shape[0])

    def tree_depths(self) -> np.ndarray:
        """Depth of each tree (a lone leaf has depth 0), one vectorised pass per level."""
        depths = np.zeros(self.num_trees, dtype=np.int64)
        roots = self.tree_offsets[:-1].astype(np.int64)
        tree_of_node = np.repeat(np.arange(self.num_trees), np.diff(self.tree_offsets))
        frontier = roots
        level = 0
        while frontier.size:
            depths[tree_of_node[frontier]] = level
            inner = frontier[self.feature[frontier] >= 0]
            base = roots[tree_of_node[inner]]
            frontier = np.concatenate([base + self.left[inner], base + self.right[inner]])
            level += 1
        return depths

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the forest by name (:data:`ARRAY_FIELDS`)."""
        return {name: getattr(self, name) for name in ARRAY_FIELDS}

    @property
    def has_linear(self) -> bool:
        return bool(self.linear_coef.size)

    @property
    def has_categorical(self) -> bool:
        return bool(self.categorical.any())

    @property
    def has_zero_missing(self) -> bool:
        return bool(self.zero_missing.any())

    def fingerprint(self) -> str:
        """A digest of the scoring content (arrays and link), independent of the file."""
        digest = hashlib.sha256()
        for name, arr in self.arrays().items():
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(arr).tobytes())
        digest.update(self.link.encode())
        digest.update(repr(float(self.link_scale)).encode())
        return digest.hexdigest()

    def describe(self) -> dict[str, object]:
        """A short JSON-ready summary, as ``lakescore inspect`` prints it."""
        depths = self.tree_depths()
        types = self.metadata.get("feature_types", "")
        return {
            "format": self.source_format,
            "objective": self.objective,
            "link": self.link,
            "outputs": self.num_outputs,
            "classes": self.classes(),
            "trees": self.num_trees,
            "max_depth": int(depths.max()) if depths.size else 0,
            "nodes": self.num_nodes,
            "leaves": int((self.feature < 0).sum()),
            "categorical_splits": int((self.categorical != 0).sum()),
            "linear_term": self.has_linear,
            "features": self.num_features,
            "feature_names": list(self.feature_names),
            "feature_types": types.split(",") if types else ["float"] * self.num_features,
            "ir_bytes": int(sum(a.nbytes for a in self.arrays().values())),
            "sha256": self.sha256,
        }

    def classes(self) -> list[str] | None:
        """Class labels of a classifier (as the native model names them, else 0..K-1)."""
        if "classes" in self.metadata:
            return [str(c) for c in json.loads(self.metadata["classes"])]
        if self.link in ("sigmoid",) and self.num_outputs == 1 and "binary" in self.objective:
            return ["0", "1"]
        if self.num_outputs > 1 and self.link in ("softmax", "argmax", "sigmoid"):
            return [str(k) for k in range(self.num_outputs)]
        return None

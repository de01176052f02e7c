"""scikit-learn's split rule -> the IR's, for plain trees and behind pipelines.

A native tree (:class:`NativeTree`) goes left iff ``x <= threshold`` on float64 thresholds;
the IR goes left iff ``x < t'`` on float32. Without a pipeline ``t'`` is
:func:`~kernels.loaders._thresholds.float32_above`. Behind element-wise, non-decreasing
transformers (scalers, a NaN imputer), ``t'`` is found by a binary search over the
float32s run through the pipeline's own ``transform`` (:class:`PipelinePrefix`), so the
cut is the transformer's own arithmetic, not a re-derivation of it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels.errors import UnsupportedModelError
from kernels.loaders._layout import TreeArrays
from kernels.loaders._thresholds import float32_above

_F32_MAX_KEY = 0x7F7FFFFF  # order key of the largest finite float32


@dataclass
class NativeTree:
    """One tree in its library's rule: left iff ``x <= threshold`` (float64) in the model's
    input dtype, NaN -> ``missing_left``; ``left == -1`` marks a leaf; ``feature`` indexes
    the estimator's input columns. Categorical nodes carry their IR bitset words and
    whether their children must be swapped for the IR (see :func:`_hgb_tree`)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    cat_words: dict[int, np.ndarray] | None = None
    cat_swap: dict[int, bool] | None = None


def _from_key(key: np.ndarray) -> np.ndarray:
    """float32 values from order keys (``-0.0`` and ``0.0`` share key 0)."""
    key = np.asarray(key, dtype=np.int64)
    bits = np.where(key >= 0, key, (-key) | 0x80000000).astype(np.uint32)
    return bits.view(np.float32)


def _first_false(goes_left: Callable[[np.ndarray], np.ndarray], n: int) -> np.ndarray:
    """For ``n`` predicates non-increasing over the finite float32s (called on one float32
    per predicate), the first float32 where each is false: ``+inf`` if it never is, and
    ``-float32 max`` if it is false everywhere."""
    lo = np.full(n, -_F32_MAX_KEY, dtype=np.int64)
    hi = np.full(n, _F32_MAX_KEY, dtype=np.int64)
    never_left = ~goes_left(_from_key(lo))
    always_left = goes_left(_from_key(hi))
    for _ in range(33):  # the key range spans < 2**32 values
        mid = (lo + hi) // 2
        left = goes_left(_from_key(mid))
        lo = np.where(left, mid, lo)
        hi = np.where(left, hi, mid)
    out = _from_key(hi)
    out[always_left] = np.inf
    out[never_left] = -np.finfo(np.float32).max
    return out


class PipelinePrefix:
    """The pipeline steps before the model, as a map of each raw column to the model's."""

    def __init__(self, steps: list[Any], num_features: int, input_dtype: type) -> None:
        self.steps = steps
        self.num_features = num_features
        self.input_dtype = input_dtype
        probe = self._transform(np.zeros((2, num_features), dtype=np.float32))
        if probe.shape != (2, num_features):
            raise UnsupportedModelError("a pipeline step changes the number of columns")

    def _transform(self, X: np.ndarray) -> np.ndarray:
        """The steps' own transforms. A value a step overflows to +-inf would make the next
        step (and so sklearn's predict) reject the row; it is clipped to the largest finite
        value instead, which keeps every column non-decreasing for the search."""
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            for step in self.steps:
                X = np.asarray(step.transform(X))
                big = np.finfo(X.dtype).max
                X = np.clip(X, -big, big)
        return X

    def image(self, feature: np.ndarray, x: np.ndarray) -> np.ndarray:
        """What the model sees (in its input dtype, as float64) for raw ``x[i]`` in column
        ``feature[i]``."""
        X = np.zeros((feature.shape[0], self.num_features), dtype=np.float32)
        rows = np.arange(feature.shape[0])
        X[rows, feature] = x
        seen = self._transform(X)[rows, feature]
        return seen.astype(self.input_dtype).astype(np.float64)

    def splits(
        self, feature: np.ndarray, threshold: np.ndarray, missing_left: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """IR thresholds and NaN directions of native splits on the transformed columns."""
        pairs, inverse = np.unique(
            np.stack([feature.astype(np.float64), threshold]), axis=1, return_inverse=True
        )
        feat, thr = pairs[0].astype(np.int64), pairs[1]
        first = _first_false(lambda x: self.image(feat, x) <= thr, feat.shape[0])
        nan_seen = self.image(feat, np.full(feat.shape[0], np.nan, np.float32))
        nan_left = np.where(np.isnan(nan_seen), np.nan, nan_seen <= thr)[inverse.reshape(-1)]
        default_left = np.where(np.isnan(nan_left), missing_left, nan_left == 1)
        return first[inverse.reshape(-1)], default_left


def to_ir(
    trees: list[NativeTree], colmap: PipelinePrefix | None, *, swap_inf: bool
) -> list[TreeArrays]:
    """Native trees -> IR trees (one vectorised threshold pass over all trees).

    ``swap_inf``: write ``x <= +inf`` exactly, as ``x < -inf`` with the children swapped;
    otherwise it stays ``x < +inf``, which differs only for ``x = +inf``.
    """
    inner = [t.left >= 0 for t in trees]
    feature = np.concatenate([t.feature[m] for t, m in zip(trees, inner, strict=True)])
    threshold = np.concatenate([t.threshold[m] for t, m in zip(trees, inner, strict=True)])
    missing = np.concatenate([t.missing_left[m] for t, m in zip(trees, inner, strict=True)])
    if colmap is None:
        ir_threshold, default_left = float32_above(threshold), missing
        nan_split = np.isposinf(threshold) & swap_inf
    elif feature.size:
        ir_threshold, default_left = colmap.splits(feature, threshold, missing)
        nan_split = np.zeros(feature.shape[0], dtype=bool)
    else:
        ir_threshold = default_left = nan_split = np.zeros(0, dtype=bool)
    bounds = np.cumsum([0] + [int(m.sum()) for m in inner])
    out = []
    for j, (tree, mask) in enumerate(zip(trees, inner, strict=True)):
        n = tree.left.shape[0]
        part = slice(bounds[j], bounds[j + 1])
        thr = np.zeros(n, dtype=np.float32)
        thr[mask] = ir_threshold[part]
        dl = np.zeros(n, dtype=np.uint8)
        dl[mask] = default_left[part]
        swap = np.zeros(n, dtype=bool)
        swap[mask] = nan_split[part]
        thr[swap] = -np.inf
        dl[swap] = ~tree.missing_left[swap]
        categorical = np.zeros(n, dtype=np.uint8)
        cat_start = np.zeros(n, dtype=np.int32)
        cat_len = np.zeros(n, dtype=np.int32)
        words: list[np.ndarray] = []
        for i, bits in (tree.cat_words or {}).items():
            # 2: only whole numbers are categories (sklearn maps 2.5 to 'unknown', the
            # missing side, which the swap below made the right one, as for NaN)
            categorical[i], thr[i], dl[i] = 2, 0.0, 0
            cat_start[i] = sum(w.shape[0] for w in words)
            cat_len[i] = bits.shape[0]
            words.append(bits)
            swap[i] = (tree.cat_swap or {})[i]
        out.append(
            TreeArrays(
                feature=np.where(mask, tree.feature, -1),
                threshold=thr,
                left=np.where(swap, tree.right, tree.left),
                right=np.where(swap, tree.left, tree.right),
                default_left=dl,
                value=tree.value,
                categorical=categorical,
                cat_start=cat_start,
                cat_len=cat_len,
                cat_bits=np.concatenate(words) if words else np.zeros(0, np.uint32),
            )
        )
    return out

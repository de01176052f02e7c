"""Rows for the benchmark: generated from the model itself, or sampled from a source.

Generated rows exercise every branch. Each feature takes values from a grid built from the
model's own thresholds for it (each threshold exactly, the midpoints between neighbours,
and a value beyond either end), so every interval between cuts is populated; then each row
is steered down one leaf of one tree (row ``i`` to leaf ``i mod L`` of all ``L`` leaves in
a shuffled order), overwriting the features on that leaf's path with values inside the
path's box. With at least as many rows as leaves, every leaf of every tree, and so every
branch, is reached by some row. A share of values (outside steered paths) is NaN, which
exercises every node's default direction.

Categorical splits are steered too (a category in, or -1 out of, the node's bitset);
LightGBM's zero band is not avoided, so a zero-as-missing model may miss a few leaves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import kernels
from engine.errors import BadInputError


@dataclass(frozen=True)
class Rows:
    """The matrix every contender scores and where it came from."""

    X: np.ndarray
    origin: str  # "generated" or the source path
    nan_rate: float
    seed: int
    leaves_targeted: int  # leaves a row was steered to (0 for sampled rows)
    leaves: int

    def describe(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "n_rows": int(self.X.shape[0]),
            "n_features": int(self.X.shape[1]),
            "nan_rate": self.nan_rate,
            "seed": self.seed,
            "leaves": self.leaves,
            "leaves_targeted": self.leaves_targeted,
            "matrix_bytes": int(self.X.nbytes),
        }


def generate_rows(
    forest: kernels.Forest, n_rows: int, *, seed: int = 0, nan_rate: float = 0.02
) -> Rows:
    """``n_rows`` C-contiguous float32 rows in the model's feature order (see module doc)."""
    rng = np.random.default_rng(seed)
    X = np.empty((n_rows, forest.num_features), dtype=np.float32)
    for j in range(forest.num_features):
        X[:, j] = rng.choice(_grid(forest, j), size=n_rows)
    if nan_rate > 0:
        X[rng.random(X.shape, dtype=np.float32) < nan_rate] = np.nan
    leaf, feat, value, n_leaves = _leaf_boxes(forest)
    targeted = 0
    if n_leaves:
        # Leaves renumbered in a random order, so fewer rows than leaves still spread.
        order = rng.permutation(n_leaves)
        rank = np.empty(n_leaves, dtype=np.int64)
        rank[order] = np.arange(n_leaves)
        entry_rank = rank[leaf]
        for first in range(0, n_rows, n_leaves):
            rows = first + entry_rank
            keep = rows < n_rows
            X[rows[keep], feat[keep]] = value[keep]
        targeted = min(n_rows, n_leaves)
    return Rows(X, "generated", nan_rate, seed, targeted, n_leaves)


def _grid(forest: kernels.Forest, j: int) -> np.ndarray:
    """Values for feature ``j``: its thresholds, their midpoints and a value past each end;
    categories 0..max and -1 for a categorical feature; N(0, 1) draws for an unused one."""
    inner = forest.feature == j
    numeric = inner & (forest.categorical == 0)
    cats = inner & (forest.categorical != 0)
    parts = []
    t = forest.threshold[numeric].astype(np.float64)
    t = np.unique(t[np.isfinite(t)])
    if t.size:
        spread = max(float(t[-1] - t[0]), 1.0) * 0.25
        parts += [t, (t[:-1] + t[1:]) / 2, [t[0] - spread, t[-1] + spread]]
        if forest.zero_missing[numeric].any():
            parts.append([0.0])
    if cats.any():
        top = int(forest.cat_len[cats].max()) * 32
        parts.append(np.arange(-1, top + 1, dtype=np.float64))
    if not parts:
        return np.random.default_rng(j).standard_normal(256).astype(np.float32)
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]).astype(np.float32)


def _leaf_boxes(forest: kernels.Forest) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """For every leaf of every tree, the (feature, value) pairs that lead a row to it.

    Returns flat arrays ``leaf``, ``feature``, ``value`` (one entry per constrained feature
    of each leaf's path) and the number of leaves.
    """
    leaves: list[int] = []
    feats: list[int] = []
    values: list[float] = []
    n_leaves = 0
    feature, threshold = forest.feature, forest.threshold
    left, right, categorical = forest.left, forest.right, forest.categorical
    for t in range(forest.num_trees):
        root = int(forest.tree_offsets[t])
        # (node, numeric bounds {feature: (lo, hi)}, categories {feature: (allowed, banned)})
        stack: list[tuple[int, dict, dict]] = [(0, {}, {})]
        while stack:
            rel, bounds, cats = stack.pop()
            node = root + rel
            f = int(feature[node])
            if f < 0:
                for g, (lo, hi) in bounds.items():
                    leaves.append(n_leaves)
                    feats.append(g)
                    values.append(_inside(lo, hi))
                for g, (allowed, banned) in cats.items():
                    leaves.append(n_leaves)
                    feats.append(g)
                    values.append(_category(allowed, banned))
                n_leaves += 1
                continue
            if categorical[node]:
                members = _members(forest, node)
                allowed, banned = cats.get(f, (None, frozenset()))
                go_left = members if allowed is None else allowed & members
                stack.append((int(left[node]), bounds, {**cats, f: (go_left, banned)}))
                stack.append((int(right[node]), bounds, {**cats, f: (allowed, banned | members)}))
                continue
            cut = float(threshold[node])
            lo, hi = bounds.get(f, (-math.inf, math.inf))
            stack.append((int(left[node]), {**bounds, f: (lo, min(hi, cut))}, cats))
            stack.append((int(right[node]), {**bounds, f: (max(lo, cut), hi)}, cats))
    return (
        np.asarray(leaves, dtype=np.int64),
        np.asarray(feats, dtype=np.int64),
        np.asarray(values, dtype=np.float32),
        n_leaves,
    )


def _inside(lo: float, hi: float) -> float:
    """A float32 value ``v`` with ``lo <= v < hi`` (left iff ``x < cut``)."""
    if math.isfinite(lo):
        return lo  # thresholds are float32 already: lo itself is exact
    if math.isfinite(hi):
        return float(np.float32(hi - max(1.0, abs(hi))))
    return 0.0


def _members(forest: kernels.Forest, node: int) -> frozenset[int]:
    words = forest.cat_bits[forest.cat_start[node] : forest.cat_start[node] + forest.cat_len[node]]
    return frozenset(
        32 * w + b for w, word in enumerate(words.tolist()) for b in range(32) if word >> b & 1
    )


def _category(allowed: frozenset[int] | None, banned: frozenset[int]) -> float:
    """A category inside every left turn and outside every right turn; -1 is in no set."""
    if allowed is None:
        return -1.0
    choice = sorted(allowed - banned)
    return float(choice[0]) if choice else -1.0


def sample_source(
    source: str, forest: kernels.Forest, n_rows: int, columns: dict[str, str] | None = None
) -> Rows:
    """Up to ``n_rows`` rows of ``source`` as the model's float32 matrix, repeated to fill
    ``n_rows`` when the source is smaller (files are read in order until enough)."""
    import pyarrow.parquet as pq

    from engine.features import FeatureMatrixBuilder, resolve_features
    from engine.source import scan_source

    features = resolve_features(forest.feature_names, columns or {})
    files = scan_source(source, features, None)
    names = list(features.values())
    builder = FeatureMatrixBuilder(names)
    chunks: list[np.ndarray] = []
    have = 0
    for f in files:
        for batch in pq.ParquetFile(f.path).iter_batches(batch_size=65_536, columns=names):
            chunks.append(np.array(builder.build(batch), dtype=np.float32, order="C"))
            have += batch.num_rows
            if have >= n_rows:
                break
        if have >= n_rows:
            break
    if not have:
        raise BadInputError(f"source {source}: no rows to sample")
    sampled = np.concatenate(chunks)[:n_rows]
    if sampled.shape[0] < n_rows:
        sampled = np.resize(sampled, (n_rows, sampled.shape[1]))
    X = np.ascontiguousarray(sampled, dtype=np.float32)
    return Rows(X, str(Path(source)), float(np.isnan(X).mean()), 0, 0, 0)

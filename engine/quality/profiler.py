"""Per-task profiling: batches in, one :class:`~engine.stats.ColumnProfile` per column out.

A worker calls :meth:`TaskProfiler.add_feature_column` with each feature column as the
feature-major float32 matrix for the kernel is built (one pass of
:mod:`engine.quality._pass` over the column while it is in cache; Arrow's null count comes
with it, since the matrix turns nulls into NaN; :meth:`TaskProfiler.add_features` takes a
whole matrix), and :meth:`TaskProfiler.add_scores` with the batch's score columns; a variant
run also calls :meth:`TaskProfiler.add_variants` with each row's variant, so that every
variant's acting score gets its own profile (merged across tasks like the whole run's).
No second pass over the data, no copy of the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from datasketches import kll_floats_sketch

from engine import _native
from engine.quality import pass_constants
from engine.stats import KLL_K, ColumnProfile, ColumnSummary, merge_categories


@dataclass(frozen=True)
class ProfileSpec:
    """What to profile, and the reference's bin edges; small and picklable.

    ``features`` are model feature names in matrix order and ``feature_kinds`` their kinds
    (``continuous`` or ``discrete``); ``edges`` maps a feature or score column to its
    reference histogram edges (absent: no histogram, e.g. on a first run);
    ``variant_edges`` a variant to the edges of its own reference's score.
    """

    features: tuple[str, ...]
    feature_kinds: tuple[str, ...]
    feature_edges: dict[str, tuple[float, ...]] = field(default_factory=dict)
    score_edges: dict[str, tuple[float, ...]] = field(default_factory=dict)
    variant_edges: dict[str, tuple[float, ...]] = field(default_factory=dict)


class _Block:
    """Accumulators for a group of columns profiled together by one kernel call."""

    def __init__(self, names: list[str], kinds: list[str], edges: dict[str, tuple[float, ...]]):
        n = len(names)
        self.names = names
        self.kinds = kinds
        width = max([len(edges.get(name, ())) for name in names] + [1])
        self.edges = np.zeros((n, width), dtype=np.float64)
        self.n_edges = np.zeros(n, dtype=np.int64)
        for j, name in enumerate(names):
            e = edges.get(name, ())
            self.edges[j, : len(e)] = e
            self.n_edges[j] = len(e)
        self.edge_tuples = [tuple(edges.get(name, ())) for name in names]
        self.discrete = np.array([k == "discrete" for k in kinds], dtype=np.bool_)
        self.hist = np.zeros((n, width + 1), dtype=np.int64)
        # Registers only where a discrete column needs them (never indexed otherwise).
        self.hll = np.zeros((n, pass_constants.HLL_M if self.discrete.any() else 1), dtype=np.uint8)
        self.cat_keys = np.full(
            (n, pass_constants.SLOTS), pass_constants.EMPTY_KEY, dtype=np.uint32
        )
        self.cat_counts = np.zeros((n, pass_constants.SLOTS), dtype=np.int64)
        self.cat_n = np.zeros(n, dtype=np.int64)
        self.counts = np.zeros((n, 4), dtype=np.int64)
        self.moments = np.zeros((n, 5), dtype=np.float64)
        self.summaries = [ColumnSummary() for _ in names]
        self.sketches = [kll_floats_sketch(KLL_K) for _ in names]
        self.rows = 0
        self.nulls = np.zeros(n, dtype=np.int64)
        self.ninf = np.zeros(n, dtype=np.int64)
        self.pinf = np.zeros(n, dtype=np.int64)
        # A batch's sample is at most 2 * SAMPLE_PER_BATCH values (see add_columns' stride).
        self._pass = _native.ProfilePass(
            self.edges, self.n_edges, self.discrete, self.counts, self.moments, self.hist,
            self.hll, self.cat_keys, self.cat_counts, self.cat_n,
            sample_width=2 * pass_constants.SAMPLE_PER_BATCH,
        )  # fmt: skip

    def add(self, X: np.ndarray, nulls: np.ndarray) -> None:
        """``X``: (columns, rows) float32, C-contiguous; ``nulls``: Arrow nulls per column."""
        self.add_columns(0, X, nulls)
        self.rows += X.shape[1]

    def add_columns(self, first: int, X: np.ndarray, nulls: np.ndarray) -> None:
        """Columns ``first .. first + len(X)`` of a batch (its rows are counted apart)."""
        n = X.shape[1]
        stride = max(1, n // pass_constants.SAMPLE_PER_BATCH)  # ceil(n / stride) < 2 * SAMPLE
        self._pass.run(first, X, stride)
        last = first + X.shape[0]
        sample, sample_n = self._pass.sample, self._pass.sample_n.tolist()
        counts, moments = self.counts[first:last].tolist(), self.moments[first:last].tolist()
        for i, arrow_nulls in enumerate(nulls.tolist()):
            j = first + i
            finite, nan, pinf, ninf = counts[i]
            lo, hi, shift, s1, s2 = moments[i]
            batch = ColumnSummary.from_shifted_sums(
                finite, nan - arrow_nulls, pinf + ninf, lo, hi, shift, s1, s2
            )
            self.summaries[j] = self.summaries[j].merge(batch)
            self.nulls[j] += arrow_nulls
            self.pinf[j] += pinf
            self.ninf[j] += ninf
            if sample_n[j]:
                self.sketches[j].update(sample[j, : sample_n[j]])

    def profiles(self) -> dict[str, ColumnProfile]:
        out: dict[str, ColumnProfile] = {}
        for j, name in enumerate(self.names):
            discrete = bool(self.discrete[j])
            categories = None
            if discrete and self.cat_n[j] >= 0:
                used = self.cat_keys[j] != pass_constants.EMPTY_KEY
                values = self.cat_keys[j][used].view(np.float32)
                categories = {
                    float(v): int(c) for v, c in zip(values, self.cat_counts[j][used], strict=True)
                }
            m = int(self.n_edges[j])
            out[name] = ColumnProfile(
                kind=self.kinds[j],
                rows=self.rows,
                nulls=int(self.nulls[j]),
                pos_inf=int(self.pinf[j]),
                neg_inf=int(self.ninf[j]),
                moments=self.summaries[j],
                kll=self.sketches[j],
                hll=self.hll[j].copy() if discrete else None,
                categories=categories,
                edges=self.edge_tuples[j],
                hist=[int(c) for c in self.hist[j, : m + 1]] if m else None,
            )
        return out


class TaskProfiler:
    """Accumulates one task's profiles of every feature and score column."""

    def __init__(self, spec: ProfileSpec) -> None:
        self.spec = spec
        self._features = _Block(list(spec.features), list(spec.feature_kinds), spec.feature_edges)
        self._scores: _Block | None = None
        self._strings: dict[str, ColumnProfile] = {}
        self._variants: dict[str, _Block] = {}

    def add_features(self, X_T: np.ndarray, columns: list[pa.Array]) -> None:
        """``X_T``: the kernel's (rows, features) view of a feature-major buffer;
        ``columns``: the batch's Arrow columns in feature order (for their nulls)."""
        X = X_T.T  # the feature-major buffer itself: no copy
        if not X.flags.c_contiguous:
            X = np.ascontiguousarray(X)
        nulls = np.array([c.null_count for c in columns], dtype=np.int64)
        self._features.add(X, nulls)

    def add_feature_column(self, j: int, values: np.ndarray, nulls: int) -> None:
        """Feature ``j`` of the current batch, as soon as its column is built: the pass
        reads it from the core's cache. Profiled after the whole matrix was built, it read
        13 MB per batch back from memory and evicted what the other stages had cached:
        in alternating runs of the reference job (1M rows x 50 features) the kernel's
        thread and the decoding then took 0.35 CPU s more with statistics than without;
        column by column, no more. ``values``: the float32 column (nulls as NaN); after
        the last column, :meth:`end_feature_batch`."""
        self._features.add_columns(j, values.reshape(1, -1), np.array([nulls], dtype=np.int64))

    def end_feature_batch(self, n_rows: int) -> None:
        self._features.rows += n_rows

    def add_scores(self, scores: dict[str, np.ndarray]) -> None:
        numeric = {k: v for k, v in scores.items() if v.dtype.kind in "fiub"}
        if self._scores is None:
            kinds = ["continuous" if v.dtype.kind == "f" else "discrete" for v in numeric.values()]
            self._scores = _Block(list(numeric), kinds, self.spec.score_edges)
        X = np.empty((len(numeric), len(next(iter(scores.values())))), dtype=np.float32)
        for j, values in enumerate(numeric.values()):
            X[j] = values
        self._scores.add(X, np.zeros(len(numeric), dtype=np.int64))
        for name, values in scores.items():
            if name not in numeric:  # class names as strings: exact category counts
                self._strings[name] = self._strings.get(name, ColumnProfile("string")).merge(
                    string_profile(values)
                )

    def add_variants(self, names: tuple[str, ...], which: np.ndarray, score: np.ndarray) -> None:
        """Profile the acting ``score`` of each variant's rows (``which``: each row's
        variant index into ``names``), on the bins of that variant's reference."""
        for k, name in enumerate(names):
            values = score[which == k]
            if not values.size:
                continue
            block = self._variants.get(name)
            if block is None:
                edges = self.spec.variant_edges.get(name, ())
                block = _Block(["score"], ["continuous"], {"score": edges} if edges else {})
                self._variants[name] = block
            X = np.ascontiguousarray(values, dtype=np.float32).reshape(1, -1)
            block.add(X, np.zeros(1, dtype=np.int64))

    def result(self) -> dict[str, dict[str, Any]]:
        """``{"features": {name: profile}, "scores": {...}}``, plus ``"variants":
        {variant: {"score": profile}}`` when :meth:`add_variants` was called."""
        scores = self._scores.profiles() if self._scores is not None else {}
        out: dict[str, dict[str, Any]] = {
            "features": self._features.profiles(),
            "scores": {**scores, **self._strings},
        }
        if self._variants:
            out["variants"] = {name: b.profiles() for name, b in self._variants.items()}
        return out


def string_profile(values: np.ndarray) -> ColumnProfile:
    """A string column: rows, nulls and the exact category counts (while few)."""
    import pyarrow.compute as pc  # only for string scores (labels), not on every worker

    arr = pa.array(values)
    counts = pc.value_counts(arr.drop_null())
    categories: dict[float | str, int] | None = {
        str(v): int(c)
        for v, c in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        )
    }
    return ColumnProfile(
        kind="string",
        rows=len(arr),
        nulls=arr.null_count,
        categories=merge_categories(categories, {}),
    )


def profile_spec(
    features: dict[str, str],
    schema: pa.Schema,
    reference_edges: tuple[dict, dict] = ({}, {}),
    variant_edges: dict[str, tuple[float, ...]] | None = None,
) -> ProfileSpec:
    """What a run profiles: every model feature (integer and boolean source columns are
    discrete), with the reference's histogram edges (and each variant's reference's)."""

    def kind(column: str) -> str:
        dtype = schema.field(column).type
        discrete = pa.types.is_integer(dtype) or pa.types.is_boolean(dtype)
        return "discrete" if discrete else "continuous"

    feature_edges, score_edges = reference_edges
    return ProfileSpec(
        features=tuple(features),
        feature_kinds=tuple(kind(c) for c in features.values()),
        feature_edges={k: v for k, v in feature_edges.items() if k in features},
        score_edges=dict(score_edges),
        variant_edges=dict(variant_edges or {}),
    )

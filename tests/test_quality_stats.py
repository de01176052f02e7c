"""Column profiles: exact counts, merged moments and sketches against one-pass statistics,
drift metrics on shifted and unshifted data, the [drift] and [checks] tables."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine.errors import BadInputError
from engine.features import FeatureMatrixBuilder
from engine.quality import parse_checks, parse_drift
from engine.quality.drift import column_drift
from engine.quality.profiler import ProfileSpec, TaskProfiler
from engine.quality.reference import bin_edges
from engine.stats import ColumnProfile

SPEC_COLUMNS = ("x", "n", "flag")


def make_table(n: int, seed: int, shift: float = 0.0, null_share: float = 0.05) -> pa.Table:
    """A float column with nulls, NaN and infinities, an integer and a boolean column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(10.0 + shift, 3.0, n)
    x[rng.random(n) < 0.02] = np.nan
    x[rng.random(n) < 0.001] = np.inf
    x[rng.random(n) < 0.001] = -np.inf
    return pa.table(
        {
            "x": pa.array(x, mask=rng.random(n) < null_share),
            "n": pa.array(rng.integers(0, 20, n).astype(np.int32)),
            "flag": pa.array(rng.random(n) < 0.3),
        }
    )


def profile_of(
    table: pa.Table,
    batch_rows: int,
    edges: dict[str, tuple[float, ...]] | None = None,
    by_column: bool = True,
) -> dict[str, ColumnProfile]:
    """``by_column``: each column profiled as the builder fills it (as a worker does),
    else the whole matrix after it is built."""
    spec = ProfileSpec(SPEC_COLUMNS, ("continuous", "discrete", "discrete"), edges or {})
    profiler = TaskProfiler(spec)
    builder = FeatureMatrixBuilder(list(SPEC_COLUMNS))
    for batch in table.to_batches(max_chunksize=batch_rows):
        if by_column:
            X = builder.build(batch, profiler.add_feature_column)
            profiler.end_feature_batch(batch.num_rows)
        else:
            X = builder.build(batch)
            profiler.add_features(X, [batch.column(c) for c in SPEC_COLUMNS])
        profiler.add_scores({"score": X[:, 1] / 20})
    return {**profiler.result()["features"], **profiler.result()["scores"]}


def merged_profile(
    table: pa.Table, splits: list[int], edges: dict[str, tuple[float, ...]] | None = None
) -> dict[str, ColumnProfile]:
    """Profiles of ``table`` cut into tasks at ``splits`` (batch sizes differ per task),
    round-tripped through their JSON task-record form and merged."""
    bounds = [0, *splits, table.num_rows]
    merged: dict[str, ColumnProfile] = {}
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        batch_rows = [997, 4096, 65536][i % 3]
        part = profile_of(table.slice(lo, hi - lo), batch_rows=batch_rows, edges=edges)
        for name, p in part.items():
            p = ColumnProfile.from_dict(p.to_dict())
            merged[name] = merged[name].merge(p) if name in merged else p
    return merged


def test_counts_are_exact_and_nulls_are_not_nan() -> None:
    table = make_table(20_000, seed=1)
    x = table.column("x").combine_chunks()
    values = x.to_numpy(zero_copy_only=False)  # nulls become NaN here
    valid = np.asarray(x.is_valid())
    p = merged_profile(table, [5_000, 12_345])["x"]
    assert p.rows == 20_000
    assert p.nulls == x.null_count > 0
    assert p.nan == int(np.isnan(values[valid]).sum()) > 0
    assert p.pos_inf == int((values == np.inf).sum()) > 0
    assert p.neg_inf == int((values == -np.inf).sum()) > 0
    finite = values[np.isfinite(values)].astype(np.float32).astype(np.float64)
    assert p.count == finite.size
    assert p.moments.min == finite.min() and p.moments.max == finite.max()
    assert math.isclose(p.moments.mean, finite.mean(), rel_tol=1e-12)
    assert math.isclose(p.moments.variance, finite.var(), rel_tol=1e-9)
    assert p.null_rate == pytest.approx((p.nulls + p.nan) / 20_000)


_EDGE_FLOATS = [
    0.0,
    -0.0,
    np.nan,
    np.inf,
    -np.inf,
    1e-45,
    -1e-45,
    1.1754942e-38,
    float(np.finfo(np.float32).max),
    float(np.finfo(np.float32).min),
    1.0,
    -1.0,
]


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.integers(1, 300),
        elements=st.one_of(st.sampled_from(_EDGE_FLOATS), st.floats(width=32, allow_nan=True)),
    )
)
def test_one_pass_counts_and_bounds_are_exact(values: np.ndarray) -> None:
    """The pass's counts, min, max and mean against numpy, on floats of every kind: NaN,
    infinities, signed zeros, subnormals, float32's extremes, columns with no finite
    value."""
    spec = ProfileSpec(("x",), ("continuous",))
    profiler = TaskProfiler(spec)
    profiler.add_feature_column(0, values.copy(), 0)
    profiler.end_feature_batch(len(values))
    p = profiler.result()["features"]["x"]
    finite = values[np.isfinite(values)].astype(np.float64)
    assert (p.nan, p.pos_inf, p.neg_inf) == (
        int(np.isnan(values).sum()), int((values == np.inf).sum()), int((values == -np.inf).sum())
    )  # fmt: skip
    assert p.count == finite.size
    if finite.size:
        assert p.moments.min == finite.min() and p.moments.max == finite.max()
        # sums of deviations from the first finite value, reassociated: within rounding
        # of the largest magnitude
        scale = np.abs(finite).max() * finite.size
        assert abs(p.moments.mean - finite.mean()) <= 1e-12 * scale
    else:
        assert (p.moments.min, p.moments.max) == (math.inf, -math.inf)


def test_column_by_column_equals_the_whole_matrix() -> None:
    """Counts, moments, histograms, HLL and categories exactly; the KLL sketches hold the
    same values (DataSketches compacts at random, so not bit for bit)."""
    table = make_table(30_000, seed=4)
    edges = {name: bin_edges(p) for name, p in profile_of(table, 4096).items()}
    by_column = profile_of(table, 4096, edges)
    whole = profile_of(table, 4096, edges, by_column=False)
    assert by_column.keys() == whole.keys()
    for name in by_column:
        a, b = by_column[name].to_dict(), whole[name].to_dict()
        assert {k: v for k, v in a.items() if k != "kll"} == {
            k: v for k, v in b.items() if k != "kll"
        }, name
        ka, kb = by_column[name].kll, whole[name].kll
        assert ka.n == kb.n and ka.get_min_value() == kb.get_min_value(), name
        if name == "x":  # the one column without ties (a tie's rank jumps)
            ranks = [0.1, 0.5, 0.9]
            error = ka.normalized_rank_error(False)
            for q, r in zip(ka.get_quantiles(ranks), ranks, strict=True):
                assert abs(kb.get_rank(q) - r) <= 2 * error, name
    assert by_column["x"].hist and by_column["n"].hll is not None


def test_merged_sketches_agree_with_one_pass_statistics() -> None:
    """Tasks of 5k..90k rows in batches of 997..65,536 rows: merged KLL quantiles sit
    within the stated rank error of the exact ones, the histogram is exact, the
    HyperLogLog count is within 4 standard errors, categories are exact."""
    n = 200_000
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 50_000, n)
    table = make_table(n, seed=2).append_column("ids", pa.array(ids))
    edges = {"x": (2.0, 6.0, 10.0, 14.0, 18.0)}
    spec_columns = (*SPEC_COLUMNS, "ids")
    spec = ProfileSpec(spec_columns, ("continuous", "discrete", "discrete", "discrete"), edges)
    bounds = [0, 5_000, 95_000, 140_000, n]
    merged: dict[str, ColumnProfile] = {}
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        profiler = TaskProfiler(spec)
        builder = FeatureMatrixBuilder(list(spec_columns))
        for batch in table.slice(lo, hi - lo).to_batches(max_chunksize=[997, 65536, 4096][i % 3]):
            profiler.add_features(builder.build(batch), [batch.column(c) for c in spec_columns])
        for name, p in profiler.result()["features"].items():
            p = ColumnProfile.from_dict(p.to_dict())
            merged[name] = merged[name].merge(p) if name in merged else p

    values = table.column("x").to_numpy(zero_copy_only=False).astype(np.float32)
    finite = np.sort(values[np.isfinite(values)])
    x = merged["x"]
    error = x.rank_error()
    assert error is not None and error < 0.06
    for rank, q in zip((0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99), x.quantiles(), strict=True):
        true_rank = np.searchsorted(finite, q, side="right") / finite.size
        assert abs(true_rank - rank) <= error, (rank, true_rank, error)
    expected = np.histogram(finite, bins=[-np.inf, 2, 6, 10, 14, 18, np.inf])[0]
    hist = np.array(x.hist)  # last bin closed at 18; none of these floats is exactly 18
    assert hist.tolist() == expected.tolist()

    distinct = len(np.unique(ids))
    hll = merged["ids"]
    assert hll.categories is None  # 50,000 values are not categories
    assert abs(hll.distinct - distinct) / distinct < 4 * 1.04 / 64
    counts = np.bincount(table.column("n").to_numpy())
    assert merged["n"].categories == {float(v): int(c) for v, c in enumerate(counts) if c}
    assert merged["n"].distinct == 20.0
    assert merged["flag"].categories == {
        0.0: int((~table.column("flag").to_numpy(zero_copy_only=False)).sum()),
        1.0: int(table.column("flag").to_numpy(zero_copy_only=False).sum()),
    }


def drift_of(reference: pa.Table, current: pa.Table) -> dict[str, object]:
    ref = merged_profile(reference, [30_000])
    edges = {name: bin_edges(p) for name, p in ref.items()}
    cur = merged_profile(current, [10_000], edges=edges)
    limits = parse_drift({}).defaults
    return {name: column_drift(name, "feature", ref[name], cur[name], limits) for name in ref}


def test_same_distribution_gives_no_drift() -> None:
    drift = drift_of(make_table(60_000, seed=3), make_table(40_000, seed=4))
    for name, d in drift.items():
        assert d.status == "ok", (name, d.reasons)
        assert d.psi is not None and d.psi < 0.01
        assert d.ks is not None and d.ks < 0.05
    assert drift["n"].unseen_categories == []


def test_shifted_mean_fails_and_null_rate_warns() -> None:
    shifted = drift_of(make_table(60_000, seed=3), make_table(40_000, seed=4, shift=3.0))["x"]
    assert shifted.status == "fail"
    assert shifted.psi > 0.25 and shifted.ks > 0.3
    assert any(r.startswith("PSI") for r in shifted.reasons)

    nulls = drift_of(make_table(60_000, seed=3), make_table(40_000, seed=4, null_share=0.2))
    assert nulls["x"].status == "warn"
    assert nulls["x"].null_rate_change == pytest.approx(15.0, abs=1.0)


def test_out_of_range_and_unseen_categories() -> None:
    reference = make_table(60_000, seed=3)
    current = make_table(40_000, seed=4)
    wide = pa.array(np.where(np.arange(40_000) < 400, 25, current.column("n").to_numpy()))
    current = current.set_column(1, "n", wide.cast(pa.int32()))
    d = drift_of(reference, current)["n"]
    assert d.unseen_categories == ["25"]
    assert d.unseen_share == pytest.approx(0.01)
    assert d.out_of_range_share == pytest.approx(0.01)


def test_drift_and_checks_tables_are_validated() -> None:
    config = parse_drift({"psi_warn": 0.2, "columns": {"age": {"psi_fail": 0.5}}})
    assert config.limits("age").psi_warn == 0.2  # inherits the [drift] defaults
    assert config.limits("age").psi_fail == 0.5
    assert config.limits("other").psi_fail == 0.25
    with pytest.raises(BadInputError, match=r"drift\.columns\.age: unknown key 'psi'"):
        parse_drift({"columns": {"age": {"psi": 1}}})
    with pytest.raises(BadInputError, match=r"checks\.on_fail"):
        parse_checks({"on_fail": "explode"})
    with pytest.raises(BadInputError, match=r"checks\.min_rows"):
        parse_checks({"min_rows": -1})

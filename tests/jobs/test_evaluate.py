"""``evaluate``: outcomes joined to a variant run, per-variant metrics, proposed weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from scoring_helpers import ID, read_sink
from variant_helpers import make_registry, train_challenger, variants_job

from engine.coordinator import run_job
from engine.errors import BadInputError
from engine.evaluate import evaluate, propose_weights, variant_metrics, wilson_interval
from engine.reweight import write_weights
from engine.spec import load_job_file


@pytest.fixture(scope="module")
def variant_run(
    model_file: Path, lake: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A committed champion/challenger run (50/50) over the small lake: (job file, sink)."""
    root = tmp_path_factory.mktemp("evaluate")
    train_challenger(root / "challenger.json")
    make_registry(root / "reg", model_file, root / "challenger.json")
    job = variants_job(root, lake, root / "reg", weights=(0.5, 0.5))
    run_job(load_job_file(job), progress=False)
    return job, root / "scores"


def write_outcomes(sink: Path, path: Path, rates: dict[str, float], seed: int) -> Path:
    """Outcomes drawn per variant at ``rates``, one event row per id plus duplicates."""
    scored = read_sink(sink).sort_by(ID)  # the same id draws the same outcome in every read
    variant = pc.cast(scored.column("variant"), pa.string()).to_numpy(zero_copy_only=False)
    p = np.vectorize(rates.__getitem__)(variant)
    y = (np.random.default_rng(seed).random(len(p)) < p).astype(np.int8)
    ids = scored.column(ID).to_numpy()
    # a converted id also has an earlier 0 row: an id converts when any outcome is 1
    table = pa.table(
        {ID: np.concatenate([ids, ids[y == 1]]), "outcome": np.concatenate([y, 0 * y[y == 1]])}
    )
    pq.write_table(table, path)
    return path


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson_interval(10, 100)
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)
    assert wilson_interval(0, 50)[0] == pytest.approx(0.0, abs=1e-15)


def test_auc_and_calibration_match_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    n = 4000
    score = np.round(rng.random(n), 2)  # many ties
    y = (rng.random(n) < score).astype(np.int64)
    variant = np.where(rng.random(n) < 0.5, "a", "b")
    joined = pl.DataFrame({"score": score, "outcome": y, "variant": variant})
    metrics = variant_metrics(joined)
    for name in ("a", "b"):
        mask = variant == name
        assert metrics[name].auc == pytest.approx(roc_auc_score(y[mask], score[mask]), abs=1e-12)
        assert metrics[name].conversions == int(y[mask].sum())
        deciles = metrics[name].calibration
        assert [d["decile"] for d in deciles] == list(range(10))
        assert sum(d["rows"] for d in deciles) == int(mask.sum())
        rates = [d["observed_rate"] for d in deciles]
        assert rates[-1] > rates[0] + 0.5  # calibrated scores: the top decile converts most
        assert all(abs(d["mean_score"] - d["observed_rate"]) < 0.1 for d in deciles)


def test_proposal_moves_weight_only_on_decisive_evidence() -> None:
    moved, best, did = propose_weights([200, 300], [2000, 2000], [0.8, 0.2])
    assert did and moved[1] > 0.9 and moved[0] == pytest.approx(0.05, abs=1e-3)
    assert best[1] > 0.99
    kept, _, did = propose_weights([200, 203], [2000, 2000], [0.8, 0.2])
    assert not did and kept == [0.8, 0.2]
    again, _, _ = propose_weights([200, 300], [2000, 2000], [0.8, 0.2])
    assert again == moved  # fixed seed: the same proposal every time


def test_evaluate_finds_the_better_challenger_and_writes_the_table(
    variant_run: tuple[Path, Path], tmp_path: Path
) -> None:
    _, sink = variant_run
    outcomes = write_outcomes(
        sink, tmp_path / "o.parquet", {"champion": 0.15, "challenger": 0.35}, 1
    )
    result = evaluate(sink, outcomes)
    by = {p.variant: p for p in result.variants}
    assert [p.variant for p in result.variants] == ["champion", "challenger"]
    assert by["champion"].rows + by["challenger"].rows == 3000
    assert by["challenger"].ci_low > by["champion"].ci_high
    assert by["challenger"].lift == pytest.approx(by["challenger"].rate / by["champion"].rate)
    assert by["champion"].lift == 1.0
    assert result.weights_moved and by["challenger"].proposed_weight > 0.9
    assert by["challenger"].model["version"] == 2 and by["champion"].model["alias"] == "champion"
    # rates within the Wilson bounds of the truth: the join and dedup counted right
    assert by["champion"].ci_low < 0.15 < by["champion"].ci_high
    evaluate(sink, outcomes)  # a second evaluation adds its own rows
    table = ds.dataset(sink / "_lakescore" / "variant_performance").to_table()
    assert table.num_rows == 4 and len(set(table.column("evaluation_id").to_pylist())) == 2
    assert set(table.column("run_id").to_pylist()) == {result.run_id}


def test_equal_variants_keep_their_weights(variant_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, sink = variant_run
    outcomes = write_outcomes(sink, tmp_path / "o.parquet", {"champion": 0.2, "challenger": 0.2}, 5)
    result = evaluate(sink, outcomes)
    assert not result.weights_moved
    assert [p.proposed_weight for p in result.variants] == [0.5, 0.5]


def test_missing_outcomes_count_as_zero_or_are_dropped(
    variant_run: tuple[Path, Path], tmp_path: Path
) -> None:
    _, sink = variant_run
    ids = read_sink(sink).column(ID).to_numpy()[:100]
    outcomes = tmp_path / "o.csv"
    pl.DataFrame({ID: ids, "outcome": np.ones(100, np.int64)}).write_csv(outcomes)
    zero = evaluate(sink, outcomes)
    assert sum(p.rows for p in zero.variants) == 3000
    assert sum(p.conversions for p in zero.variants) == 100
    dropped = evaluate(sink, outcomes, missing="drop")
    assert sum(p.rows for p in dropped.variants) == 100


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({ID: [1, 2], "outcome": [0, 2]}, "must be 0 or 1"),
        ({ID: [1, 2], "converted": [0, 1]}, "no column 'outcome'"),
        ({ID: ["x", "y"], "outcome": [0, 1]}, ID),
    ],
)
def test_bad_outcomes_are_bad_input(
    variant_run: tuple[Path, Path], tmp_path: Path, table: dict, message: str
) -> None:
    _, sink = variant_run
    path = tmp_path / "o.parquet"
    pq.write_table(pa.table(table), path)
    before = sorted((sink / "_lakescore").rglob("*"))
    with pytest.raises(BadInputError, match=message):
        evaluate(sink, path)
    assert sorted((sink / "_lakescore").rglob("*")) == before


def test_write_weights_rewrites_only_the_numbers(
    variant_run: tuple[Path, Path], tmp_path: Path
) -> None:
    job, _ = variant_run
    copy = tmp_path / "job.toml"
    copy.write_text("# nightly\n" + job.read_text())
    write_weights(copy, {"champion": 0.1, "challenger": 0.9})
    spec = load_job_file(copy)
    assert spec.variants is not None
    assert [(v.name, v.weight) for v in spec.variants.variants] == [
        ("champion", 0.1),
        ("challenger", 0.9),
    ]
    assert copy.read_text().startswith("# nightly\n")
    with pytest.raises(BadInputError, match="differ"):
        write_weights(copy, {"champion": 1.0})


@pytest.mark.slow
def test_cli_evaluate(cli, variant_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, sink = variant_run
    outcomes = write_outcomes(sink, tmp_path / "o.parquet", {"champion": 0.1, "challenger": 0.3}, 2)
    done = cli("evaluate", "--outcomes", outcomes, "--sink", sink, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["weights_moved"] and doc["variants"][1]["variant"] == "challenger"
    text = cli("evaluate", "--outcomes", outcomes, "--sink", sink, "--propose-weights")
    assert "challenger" in text.stdout and "proposed weights moved" in text.stdout
    plain = cli("evaluate", "--outcomes", outcomes, "--sink", sink)
    assert "challenger" in plain.stdout and "proposed weights" not in plain.stdout
    bad = cli("evaluate", "--outcomes", tmp_path / "none.parquet", "--sink", sink)
    assert bad.returncode == 2


def test_a_run_without_variants_is_one_variant(
    model_file: Path, lake: Path, tmp_path: Path
) -> None:
    import engine

    engine.score(model_file, lake, tmp_path / "scores", id_column=ID)
    ids = np.arange(0, 3000, 3)
    outcomes = tmp_path / "o.parquet"
    pq.write_table(pa.table({ID: ids, "outcome": np.ones(len(ids), np.int8)}), outcomes)
    result = evaluate(tmp_path / "scores", outcomes)
    (only,) = result.variants
    assert (only.variant, only.rows, only.conversions) == ("model", 3000, 1000)
    assert only.model["sha256"] and not result.weights_moved and only.proposed_weight == 1.0

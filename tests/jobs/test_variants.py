"""Variants: deterministic assignment, each row scored by its variant's model, shadow scores,
per-variant statistics in the run record, stability across batching, tasks and executors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scoring_helpers import ID, oracle_scores, read_sink
from variant_helpers import challenger_oracle, variants_job

from engine.coordinator import run_job
from engine.errors import BadInputError
from engine.spec import load_job_file
from engine.variants import assign, assignment_units


def by_id(table: pa.Table, column: str) -> dict[int, object]:
    values = pc.cast(table.column(column), pa.string()) if column == "variant" else None
    values = (values or table.column(column)).to_pylist()
    return dict(zip(table.column(ID).to_pylist(), values, strict=True))


def test_assignment_is_the_documented_hash() -> None:
    ids = pa.array([0, 17, 123456789], pa.int64())
    want = [
        (int.from_bytes(hashlib.blake2b(b"s\x1f" + str(i).encode(), digest_size=8).digest()) >> 11)
        * 2.0**-53
        for i in ids.to_pylist()
    ]
    assert assignment_units(ids, "s").tolist() == want
    # the same customer whether its id is stored as a number or as text, in any int width
    as_text = assignment_units(pa.array(["0", "17", "123456789"]), "s")
    as_int32 = assignment_units(pa.array([0, 17, 123456789], pa.int32()), "s")
    assert as_text.tolist() == want == as_int32.tolist()
    assert assignment_units(ids, "other salt").tolist() != want


def _reference_units(salt: str, texts: list[bytes]) -> list[float]:
    prefix = salt.encode() + b"\x1f"
    blake = hashlib.blake2b
    return [
        (int.from_bytes(blake(prefix + t, digest_size=8).digest()) >> 11) * 2.0**-53 for t in texts
    ]


@pytest.mark.parametrize(
    "ids",
    [
        pa.array([0, -1, 9, 10, 2**63 - 1, -(2**63), 123456789012], pa.int64()),
        pa.array([0, 255, 7], pa.uint8()),
        pa.array([0, 2**64 - 1, 2**63], pa.uint64()),
        pa.array(["", "a", "é-ü", "x" * 123, "y" * 124, "z" * 300, "q" * 252]),
        pa.array(["a", "bb", "ccc", "dddd"], pa.large_string()).slice(1, 2),
        pa.array([b"\x00\xff", b"", b"k" * 200], pa.binary()),
        pa.array(["p", "q", "p"]).dictionary_encode(),
        pa.chunked_array([pa.array([5, 6]), pa.array([7])]),
        # every length over 2.5 blocks, random bytes: each message word matters
        pa.array([np.random.default_rng(n).bytes(n) for n in range(300)], pa.binary()),
        pa.array(np.random.default_rng(1).integers(-(2**63), 2**63 - 1, 500), pa.int64()),
    ],
    ids=[
        "int64",
        "uint8",
        "uint64",
        "string",
        "sliced-large",
        "binary",
        "dict",
        "chunked",
        "lengths",
        "random-int64",
    ],
)
def test_compiled_hash_matches_hashlib(ids: pa.Array) -> None:
    values = ids.to_pylist()
    texts = [v if isinstance(v, bytes) else str(v).encode() for v in values]
    assert assignment_units(ids, "campaign-7").tolist() == _reference_units("campaign-7", texts)


def test_assignment_shares_are_within_binomial_bounds_of_the_weights() -> None:
    n = 200_000
    which = assign(pa.array(np.arange(n)), "nov-campaign", (0.7, 0.9, 1.0))
    for k, weight in enumerate((0.7, 0.2, 0.1)):
        share = float((which == k).mean())
        sigma = (weight * (1 - weight) / n) ** 0.5
        assert abs(share - weight) < 5 * sigma, (k, share)


def test_null_or_float_ids_are_bad_input() -> None:
    with pytest.raises(BadInputError, match="customer_id: 1 null"):
        assign(pa.array([1, None]), "s", (1.0,), ID)
    with pytest.raises(BadInputError, match="customer_id: type double"):
        assign(pa.array([1.5]), "s", (1.0,), ID)


def test_each_row_is_scored_by_its_variants_model(
    model_file: Path,
    challenger_file: Path,
    registry_root: Path,
    lake: Path,
    lake_table,
    tmp_path: Path,
) -> None:
    spec = load_job_file(variants_job(tmp_path, lake, registry_root))
    result = run_job(spec, progress=False)
    sink = read_sink(tmp_path / "scores")
    assert sink.num_rows == lake_table.num_rows
    assert sink.schema.field("model_version").type == pa.int32()
    variant, version, score = (
        by_id(sink, "variant"),
        by_id(sink, "model_version"),
        by_id(sink, "score"),
    )
    ids = lake_table.column(ID).to_pylist()
    expect = assign(lake_table.column(ID), "nov-campaign", (0.8, 1.0))
    champion = oracle_scores(model_file, lake_table)
    challenger = challenger_oracle(challenger_file, lake_table)
    for row, i in enumerate(ids):
        name = ("champion", "challenger")[expect[row]]
        assert variant[i] == name
        assert version[i] == (1 if name == "champion" else 2)
        want = champion[row] if name == "champion" else challenger[row]
        assert score[i] == pytest.approx(float(want), abs=1e-6)
    stats = result.record["variants"]
    assert stats["champion"]["rows"] == int((expect == 0).sum())
    assert stats["challenger"]["rows"] == int((expect == 1).sum())
    assert stats["challenger"]["model_version"] == 2 and stats["champion"]["alias"] == "champion"
    mean = float(np.mean(challenger[expect == 1]))
    assert stats["challenger"]["score"]["mean"] == pytest.approx(mean, rel=1e-5)
    assert stats["champion"]["score"]["quantiles"]["0.5"] == pytest.approx(
        float(np.median(champion[expect == 0])), abs=0.03
    )


def test_shadow_scores_every_row_with_every_variant(
    model_file: Path,
    challenger_file: Path,
    registry_root: Path,
    lake: Path,
    lake_table,
    tmp_path: Path,
) -> None:
    run_job(load_job_file(variants_job(tmp_path, lake, registry_root, shadow=True)), progress=False)
    sink = read_sink(tmp_path / "scores")
    ids = lake_table.column(ID).to_pylist()
    champion, challenger = by_id(sink, "score_champion"), by_id(sink, "score_challenger")
    acting, variant = by_id(sink, "score"), by_id(sink, "variant")
    assert [champion[i] for i in ids] == pytest.approx(
        oracle_scores(model_file, lake_table).tolist(), abs=1e-6
    )
    assert [challenger[i] for i in ids] == pytest.approx(
        challenger_oracle(challenger_file, lake_table).tolist(), abs=1e-6
    )
    for i in ids:
        assert acting[i] == (champion[i] if variant[i] == "champion" else challenger[i])


def test_assignment_is_stable_across_batches_and_task_splits(
    registry_root: Path, lake: Path, tmp_path: Path
) -> None:
    first = load_job_file(
        variants_job(tmp_path / "a", lake, registry_root, extra="batch_rows = 1000\n")
    )
    second = load_job_file(
        variants_job(
            tmp_path / "b", lake, registry_root, extra="batch_rows = 37\ntask_rows = 128\n"
        )
    )
    a, b = run_job(first, progress=False), run_job(second, progress=False)
    assert b.tasks > a.tasks
    assert by_id(read_sink(tmp_path / "a" / "scores"), "variant") == by_id(
        read_sink(tmp_path / "b" / "scores"), "variant"
    )


@pytest.mark.slow
def test_assignment_is_the_same_on_ray(registry_root: Path, lake: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    local = load_job_file(variants_job(tmp_path / "a", lake, registry_root))
    on_ray = load_job_file(
        variants_job(tmp_path / "b", lake, registry_root, extra='cluster = "ray"\n')
    )
    run_job(local, progress=False)
    run_job(on_ray, progress=False)
    a, b = read_sink(tmp_path / "a" / "scores"), read_sink(tmp_path / "b" / "scores")
    assert by_id(a, "variant") == by_id(b, "variant")
    assert by_id(a, "score") == by_id(b, "score")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'model = "m.json"\n[variants]\nsalt = "s"\n'
            "[variants.models]\na = { model = 'x@1', weight = 1 }\n",
            "either model or \\[variants\\]",
        ),
        (
            "[variants]\nshadow = false\n[variants.models]\na = { model = 'x@1', weight = 1 }\n",
            "salt",
        ),
        (
            "[variants]\nsalt = 's'\n[variants.models]\na = { model = 'x@1', weight = 0 }\n",
            "a: weight",
        ),
        (
            "[variants]\nsalt = 's'\n[variants.models]\n'a b' = { model = 'x@1', weight = 1 }\n",
            "a b",
        ),
        ("[variants]\nsalt = 's'\nmodels = {}\n", "at least one variant"),
        (
            "[variants]\nsalt = 's'\nseed = 1\n"
            "[variants.models]\na = { model = 'x@1', weight = 1 }\n",
            "'seed'",
        ),
    ],
)
def test_bad_variants_tables_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    job = tmp_path / "job.toml"
    job.write_text('source = "l"\nsink = "s"\n' + text)
    with pytest.raises(BadInputError, match=message):
        load_job_file(job)


def test_variants_need_an_id_column_and_the_same_features(
    registry_root: Path, lake: Path, tmp_path: Path
) -> None:
    job = variants_job(tmp_path, lake, registry_root)
    job.write_text(job.read_text().replace('id_column = "customer_id"\n', ""))
    with pytest.raises(BadInputError, match="id column is required"):
        run_job(load_job_file(job), progress=False)
    import xgboost as xgb

    X = np.random.default_rng(0).random((50, 2)).astype(np.float32)
    other = tmp_path / "other.json"
    dtrain = xgb.DMatrix(X, label=(X[:, 0] > 0.5), feature_names=["spend_30d", "x"])
    xgb.train({"objective": "binary:logistic", "nthread": 1}, dtrain, 2).save_model(other)
    job = variants_job(tmp_path, lake, registry_root)
    job.write_text(job.read_text().replace('"churn@2"', f'"{other}"'))
    with pytest.raises(BadInputError, match="challenger and champion take different features"):
        run_job(load_job_file(job), progress=False)
    assert not (tmp_path / "scores").exists()

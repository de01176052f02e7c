"""Bad input through the CLI: exit code 2, one line naming what is at fault, sink untouched.

Each case runs ``lakescore score`` in a subprocess twice: once into a sink that already
holds a committed run (its tree and bytes must be the same afterwards) and once into a
sink that does not exist (it must still not exist).
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scoring_helpers import ID, error_line, read_sink, run_ids, snapshot

from engine import score


@dataclass
class Case:
    args: list[str | Path]  # everything but --sink
    named: list[str]  # what the error line must mention


def _args(model: Path, source: Path, *extra: str | Path) -> list[str | Path]:
    return ["--model", model, "--source", source, *extra]


def _rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path, row_group_size=128)


def missing_source(tmp: Path, model: Path, lake: Path) -> Case:
    source = tmp / "no-such-lake"
    return Case(_args(model, source, "--id-column", ID), [str(source), "not found"])


def missing_model(tmp: Path, model: Path, lake: Path) -> Case:
    path = tmp / "no-such-model.json"
    return Case(_args(path, lake), [str(path), "not found"])


def garbage_model(tmp: Path, model: Path, lake: Path) -> Case:
    path = tmp / "model.json"
    path.write_bytes(np.random.default_rng(5).bytes(4096).replace(b"{", b"x"))
    return Case(_args(path, lake), [str(path), "unknown model format"])


def untrusted_pickle_model(tmp: Path, model: Path, lake: Path) -> Case:
    path = tmp / "model.pkl"
    path.write_bytes(pickle.dumps({"not": "opened"}))  # never unpickled without the flag
    return Case(_args(path, lake), [str(path), "--trust-pickle"])


def not_json_model(tmp: Path, model: Path, lake: Path) -> Case:
    path = tmp / "model.json"
    path.write_bytes(b"{this is not json")
    return Case(_args(path, lake), [str(path)])


def empty_model(tmp: Path, model: Path, lake: Path) -> Case:
    path = tmp / "model.json"
    path.write_bytes(b"")
    return Case(_args(path, lake), [str(path)])


def json_model_without_trees(tmp: Path, model: Path, lake: Path) -> Case:
    path = tmp / "model.json"
    path.write_bytes(b'{"learner": {"objective": {"name": "binary:logistic"}}}')
    return Case(_args(path, lake), [str(path)])


def unsupported_objective_model(tmp: Path, model: Path, lake: Path) -> Case:
    from agreement.xgb_cases import train_unsupported

    path = train_unsupported("ranking", tmp)
    return Case(_args(path, lake), [str(path), "rank:pairwise"])


def feature_out_of_range_model(tmp: Path, model: Path, lake: Path) -> Case:
    doc = json.loads(model.read_text())
    doc["learner"]["gradient_booster"]["model"]["trees"][0]["split_indices"][0] = 99
    path = tmp / "model.json"
    path.write_text(json.dumps(doc))
    return Case(_args(path, lake), [str(path), "split feature 99 out of range"])


def lightgbm_linear_tree_model(tmp: Path, model: Path, lake: Path) -> Case:
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    params = {"objective": "regression", "linear_tree": True, "verbose": -1, "num_leaves": 4}
    booster = lgb.train(params, lgb.Dataset(X, X[:, 0] + rng.normal(size=200)), 2)
    path = tmp / "linear.txt"
    booster.save_model(str(path))
    return Case(_args(path, lake), [str(path), "linear trees"])


def missing_feature_column(tmp: Path, model: Path, lake: Path) -> Case:
    for f in lake.rglob("*.parquet"):
        _rewrite(f, lambda t: t.drop_columns(["tenure_months"]))
    return Case(_args(model, lake), ["'tenure_months'", "not found", str(lake)])


def string_feature_column(tmp: Path, model: Path, lake: Path) -> Case:
    bad = lake / "region=north" / "part-1.parquet"
    _rewrite(bad, lambda t: t.set_column(2, "visits_90d", pc.cast(t["visits_90d"], pa.string())))
    return Case(_args(model, lake, "--id-column", ID), [str(bad), "'visits_90d'", "string"])


def empty_directory(tmp: Path, model: Path, lake: Path) -> Case:
    source = tmp / "empty-lake"
    (source / "region=north").mkdir(parents=True)
    (source / "_SUCCESS").write_text("")
    (source / ".hidden.parquet").write_bytes(b"junk")
    return Case(_args(model, source), [str(source), "no rows"])


def zero_row_file(tmp: Path, model: Path, lake: Path) -> Case:
    source = tmp / "empty.parquet"
    pq.write_table(pq.read_table(next(lake.rglob("*.parquet"))).slice(0, 0), source)
    return Case(_args(model, source, "--id-column", ID), [str(source), "no rows"])


def truncated_parquet(tmp: Path, model: Path, lake: Path) -> Case:
    bad = lake / "region=south" / "part-0.parquet"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return Case(_args(model, lake, "--id-column", ID), [str(bad), "Parquet"])


def garbage_parquet(tmp: Path, model: Path, lake: Path) -> Case:
    bad = lake / "region=east" / "part-9.parquet"
    bad.write_bytes(np.random.default_rng(9).bytes(10_000))
    return Case(_args(model, lake, "--id-column", ID), [str(bad), "Parquet"])


def id_column_absent(tmp: Path, model: Path, lake: Path) -> Case:
    return Case(_args(model, lake, "--id-column", "account_id"), ["'account_id'", "not found"])


def schema_drift(tmp: Path, model: Path, lake: Path) -> Case:
    bad = lake / "region=south" / "part-1.parquet"
    _rewrite(bad, lambda t: t.drop_columns(["discount_share"]))
    return Case(_args(model, lake, "--id-column", ID), [str(bad), "'discount_share'"])


def id_type_drift(tmp: Path, model: Path, lake: Path) -> Case:
    bad = lake / "region=south" / "part-1.parquet"
    _rewrite(bad, lambda t: t.set_column(0, ID, pc.cast(t[ID], pa.string())))
    return Case(_args(model, lake, "--id-column", ID), [str(bad), f"'{ID}'", "string"])


def mapping_unknown_feature(tmp: Path, model: Path, lake: Path) -> Case:
    return Case(_args(model, lake, "--column", "spend_7d=spend_30d"), ["'spend_7d'"])


def mapping_to_missing_column(tmp: Path, model: Path, lake: Path) -> Case:
    return Case(_args(model, lake, "--column", "age=age_years"), ["'age_years'", "'age'"])


def malformed_mapping(tmp: Path, model: Path, lake: Path) -> Case:
    return Case(_args(model, lake, "--column", "age"), ["--column", "'age'"])


def unknown_backend(tmp: Path, model: Path, lake: Path) -> Case:
    return Case(_args(model, lake, "--backend", "fortran"), ["'fortran'"])


def unknown_cluster(tmp: Path, model: Path, lake: Path) -> Case:
    return Case(_args(model, lake, "--cluster", "mainframe"), ["cluster", "'mainframe'"])


def zero_batch_rows(tmp: Path, model: Path, lake: Path) -> Case:
    return Case(_args(model, lake, "--batch-rows", "0"), ["batch_rows"])


CASES = [
    missing_source,
    missing_model,
    garbage_model,
    untrusted_pickle_model,
    not_json_model,
    empty_model,
    json_model_without_trees,
    unsupported_objective_model,
    feature_out_of_range_model,
    lightgbm_linear_tree_model,
    missing_feature_column,
    string_feature_column,
    empty_directory,
    zero_row_file,
    truncated_parquet,
    garbage_parquet,
    id_column_absent,
    schema_drift,
    id_type_drift,
    mapping_unknown_feature,
    mapping_to_missing_column,
    malformed_mapping,
    unknown_backend,
    unknown_cluster,
    zero_batch_rows,
]


@pytest.fixture
def committed_sink(engine_data: Path, kernel_warm: None, tmp_path: Path) -> Path:
    """A sink that already holds one committed run (a copy of the warm-up run's sink)."""
    sink = tmp_path / "scores"
    shutil.copytree(engine_data / "warm-sink", sink)
    assert len(run_ids(sink)) == 1
    return sink


@pytest.mark.parametrize("make_case", CASES, ids=lambda f: f.__name__)
def test_bad_input_exits_2_and_leaves_the_sink_alone(
    cli, make_case, model_file: Path, copy_lake, committed_sink: Path, tmp_path: Path
) -> None:
    case = make_case(tmp_path, model_file, copy_lake())
    before = snapshot(committed_sink)
    absent = tmp_path / "new" / "scores"

    for sink in (committed_sink, absent):
        proc = cli("score", *case.args, "--sink", sink)
        assert proc.returncode == 2, proc.stderr
        line = error_line(proc)
        for name in case.named:
            assert name in line
        assert proc.stdout == ""

    assert snapshot(committed_sink) == before
    assert not absent.exists()
    assert not absent.parent.exists()


def test_sink_is_a_file(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    sink = tmp_path / "scores.parquet"
    sink.write_bytes(b"PAR1 not a directory")
    for target in (sink, sink / "sub"):
        proc = cli("score", "--model", model_file, "--source", lake, "--sink", target)
        assert proc.returncode == 2
        line = error_line(proc)
        assert str(target) in line
        assert "is a file" in line
    assert snapshot(sink) == {".": b"PAR1 not a directory"}
    assert sorted(tmp_path.iterdir()) == [sink]


def test_corrupt_data_page_fails_without_touching_the_sink(
    cli, model_file: Path, copy_lake, committed_sink: Path, tmp_path: Path
) -> None:
    """A file whose footer reads but whose pages do not fails while scoring: exit 2,
    the last line names the file, and the sink is byte for byte what it was (no staging
    area, no failed run record); a sink that did not exist is not created."""
    lake = copy_lake()
    bad = lake / "region=south" / "part-1.parquet"
    data = bytearray(bad.read_bytes())
    data[4:68] = bytes(b ^ 0x5A for b in data[4:68])  # the first page header (the id column)
    bad.write_bytes(bytes(data))
    before = read_sink(committed_sink)
    tree = snapshot(committed_sink)
    runs = run_ids(committed_sink)
    absent = tmp_path / "new" / "scores"

    for sink in (committed_sink, absent):
        proc = cli("score", "--model", model_file, "--source", lake, "--sink", sink,
                   "--id-column", ID)  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        last = proc.stderr.splitlines()[-1]
        assert last.startswith("lakescore: error: ")
        assert str(bad) in last

    assert run_ids(committed_sink) == runs
    assert read_sink(committed_sink).equals(before)
    assert snapshot(committed_sink) == tree
    assert not absent.parent.exists()


def test_api_raises_bad_input_error(model_file: Path, lake: Path, tmp_path: Path) -> None:
    from engine import BadInputError

    with pytest.raises(BadInputError, match="'account_id'"):
        score(model_file, lake, tmp_path / "scores", id_column="account_id")
    assert not (tmp_path / "scores").exists()


@pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="this machine has an NVIDIA GPU")
def test_cuda_backend_without_a_gpu_is_exit_2(cli, model_file: Path, lake: Path, tmp_path: Path):
    sink = tmp_path / "scores"
    proc = cli("score", *_args(model_file, lake), "--sink", sink, "--backend", "cuda")
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert "'cuda'" in line and "GPU" in line
    assert not sink.exists()

"""Governance of outputs: only the id, the scores and the kept columns reach the sink; the
id as a salted hash; the run record's ``columns_written`` is the sink's real schema.

The sink is read back as a dataset reader reads it and the hashes are recomputed with
``hashlib`` from the source's ids, so nothing here trusts the engine's own account.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from scoring_helpers import (
    ID,
    error_line,
    read_sink,
    run_ids,
    run_record,
    scores_by_id,
    snapshot,
)

from engine import score
from engine.errors import BadInputError
from engine.spec import load_job_file

SALT = "team-orange-2026"


def hashed(value: object, salt: str = SALT) -> str:
    return hashlib.sha256((salt + str(value)).encode()).hexdigest()


def assert_record_matches_parts(sink: Path, run_id: str) -> list[dict[str, str]]:
    """Every part file's schema is exactly the record's ``columns_written``."""
    written = run_record(sink, run_id)["columns_written"]
    parts = sorted((sink / run_id).glob("*.parquet"))
    assert parts
    for part in parts:
        schema = pq.read_schema(part)
        assert [{"name": f.name, "type": str(f.type)} for f in schema] == written
    return written


def test_only_the_id_the_scores_and_kept_columns_are_written(
    model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path
) -> None:
    plain = score(model_file, lake, tmp_path / "plain", id_column=ID)
    assert read_sink(tmp_path / "plain").column_names == [ID, "score", "run_id"]
    written = assert_record_matches_parts(tmp_path / "plain", plain.run_id)
    assert [c["name"] for c in written] == [ID, "score", "run_id"]

    # "age" is also a feature: it is read once and written as read
    kept = score(model_file, lake, tmp_path / "kept", id_column=ID, keep=["nickname", "age"])
    table = read_sink(tmp_path / "kept")
    assert table.column_names == [ID, "score", "nickname", "age", "run_id"]
    written = assert_record_matches_parts(tmp_path / "kept", kept.run_id)
    assert written[2:4] == [{"name": "nickname", "type": "string"},
                            {"name": "age", "type": "double"}]  # fmt: skip
    assert kept.record["keep"] == ["nickname", "age"]
    source = lake_table.sort_by(ID)
    table = table.sort_by(ID)
    for name in (ID, "nickname", "age"):
        assert table.column(name).equals(source.column(name)), name  # nulls included
    assert scores_by_id(table) == scores_by_id(read_sink(tmp_path / "plain"))


def test_without_an_id_column_the_locator_and_kept_columns_are_written(
    model_file: Path, lake: Path, tmp_path: Path
) -> None:
    result = score(model_file, lake, tmp_path / "s", keep=["nickname"])
    written = assert_record_matches_parts(tmp_path / "s", result.run_id)
    names = ["source_file", "row_number", "score", "nickname", "run_id"]
    assert [c["name"] for c in written] == names


def test_hash_id_writes_salted_hashes_of_the_ids(
    model_file: Path, lake: Path, lake_table: pa.Table, tmp_path: Path
) -> None:
    result = score(
        model_file, lake, tmp_path / "s", id_column=ID, hash_id_salt=SALT, keep=["nickname"]
    )
    table = read_sink(tmp_path / "s")
    assert table.schema.field(ID).type == pa.string()
    written = assert_record_matches_parts(tmp_path / "s", result.run_id)
    assert written[0] == {"name": ID, "type": "string"}
    # each row's hash is the hash of its own id: pair them through the kept nickname
    pairs = zip(lake_table[ID].to_pylist(), lake_table["nickname"].to_pylist(), strict=True)
    expected = {nickname: hashed(i) for i, nickname in pairs}
    got = dict(zip(table["nickname"].to_pylist(), table[ID].to_pylist(), strict=True))
    assert got == expected
    record_text = (
        tmp_path / "s" / "_lakescore" / "run_records" / f"{result.run_id}.json"
    ).read_text()
    assert SALT not in record_text  # the record names the salt only by its salt_id
    doc = json.loads(record_text)["id_hash"]
    assert doc["algorithm"] == "sha256" and len(doc["salt_id"]) == 16


def test_a_different_salt_is_a_different_job(model_file: Path, lake: Path, tmp_path: Path) -> None:
    sink = tmp_path / "s"
    first = score(model_file, lake, sink, id_column=ID, hash_id_salt=SALT)
    with pytest.raises(BadInputError, match="different job"):
        score(model_file, lake, sink, id_column=ID, hash_id_salt="other", run_id=first.run_id)
    again = score(model_file, lake, sink, id_column=ID, hash_id_salt=SALT, run_id=first.run_id)
    assert again.record["id_hash"] == first.record["id_hash"]


def test_the_salt_can_come_from_the_environment(
    model_file: Path, lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "job.toml"
    job.write_text(
        f'model = "{model_file}"\nsource = "{lake}"\nsink = "sink"\nid_column = "{ID}"\n'
        'keep = ["nickname"]\nhash_id_salt_env = "LAKESCORE_TEST_SALT"\n'
    )
    spec = load_job_file(job)
    assert spec.keep == ("nickname",)
    monkeypatch.delenv("LAKESCORE_TEST_SALT", raising=False)
    from engine.coordinator import run_job

    with pytest.raises(BadInputError, match="LAKESCORE_TEST_SALT"):
        run_job(spec, progress=False)
    assert not (tmp_path / "sink").exists()
    monkeypatch.setenv("LAKESCORE_TEST_SALT", SALT)
    run_job(spec, progress=False)
    table = read_sink(tmp_path / "sink")
    assert set(table[ID].to_pylist()) == {hashed(i) for i in range(3000)}
    assert SALT not in repr(spec)


@pytest.mark.slow
def test_cli_keep_and_hash_id(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    sink = tmp_path / "s"
    done = cli("score", "--model", model_file, "--source", lake, "--sink", sink, "--id-column",
               ID, "--keep", "nickname,age", "--hash-id", SALT, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert [c["name"] for c in record["columns_written"]] == [ID, "score", "nickname", "age",
                                                               "run_id"]  # fmt: skip
    table = read_sink(sink)
    assert pc.all(pc.equal(pc.utf8_length(table[ID]), 64)).as_py()
    assert hashed(0) in set(table[ID].to_pylist())


def _retyped_lake(copy_lake) -> Path:
    """A copy of the lake whose last file holds ``nickname`` as integers."""
    root = copy_lake()
    last = sorted(root.rglob("*.parquet"))[-1]
    table = pq.read_table(last)
    codes = pa.array(range(table.num_rows), pa.int64())
    table = table.set_column(table.schema.get_field_index("nickname"), "nickname", codes)
    pq.write_table(table, last, row_group_size=128)
    return root


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keep": ["segment"]}, "kept column 'segment' not found"),
        ({"keep": ["Nickname"]}, "kept column 'Nickname' not found"),
        ({"keep": ["score"]}, "'score' is the name of a column lakescore writes"),
        ({"keep": ["score_1"]}, "'score_1' is the name of a column lakescore writes"),
        ({"keep": ["run_id"]}, "'run_id' is the name"),
        ({"keep": ["variant"]}, "'variant' is the name"),
        ({"keep": ["label"]}, "'label' is the name"),
        ({"keep": [ID]}, f"{ID!r} is the id column"),
        ({"keep": ["age", "age"]}, "listed twice"),
        ({"keep": "age"}, "must be a list"),
        ({"id_column": None, "hash_id_salt": SALT}, "no id_column to hash"),
        ({"id_column": "age", "hash_id_salt": SALT}, "string or integer ids only"),
        ({"hash_id_salt": ""}, "non-empty"),
        ({"hash_id_salt": SALT, "hash_id_salt_env": "X"}, "not both"),
    ],
)
def test_bad_output_options_are_bad_input_and_write_nothing(
    options: dict[str, object], message: str, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "s"
    sink.mkdir()
    before = snapshot(sink)
    kwargs: dict[str, object] = {"id_column": ID, **options}
    with pytest.raises(BadInputError, match=message):
        score(model_file, lake, sink, **kwargs)  # type: ignore[arg-type]
    assert snapshot(sink) == before


@pytest.mark.slow
def test_a_kept_column_typed_differently_in_two_files_is_exit_2(
    cli, model_file: Path, copy_lake, tmp_path: Path
) -> None:
    lake = _retyped_lake(copy_lake)
    sink = tmp_path / "s"
    done = cli("score", "--model", model_file, "--source", lake, "--sink", sink,
               "--id-column", ID, "--keep", "nickname")  # fmt: skip
    assert done.returncode == 2
    line = error_line(done)
    assert "kept column 'nickname' has type int64" in line and "part-1.parquet" in line
    assert not sink.exists() and run_ids(sink) == set()


@pytest.mark.slow
def test_dry_run_checks_kept_columns_and_lists_the_columns_to_write(
    cli, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "s"
    done = cli("score", "--dry-run", "--model", model_file, "--source", lake, "--sink", sink,
               "--id-column", ID, "--keep", "nickname", "--hash-id", SALT, "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs = json.loads(done.stdout)["outputs"]
    assert outputs["columns_written"][0] == {"name": ID, "type": "string"}
    assert [c["name"] for c in outputs["columns_written"]] == [ID, "score", "nickname", "run_id"]
    assert SALT not in done.stdout
    done = cli("score", "--dry-run", "--model", model_file, "--source", lake, "--sink", sink,
               "--id-column", ID, "--keep", "segment")  # fmt: skip
    assert done.returncode == 2
    assert "kept column 'segment' not found" in done.stderr.splitlines()[-1]
    assert not sink.exists()

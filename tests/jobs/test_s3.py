"""S3: source, model and Delta sink on moto's S3 server (a real S3 API on 127.0.0.1).

Credentials come from the AWS environment variables only; the endpoint from
``AWS_ENDPOINT_URL`` or the job spec's ``[storage]`` table.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable
from pyarrow import fs
from s3_helpers import SECRET, read_delta, s3fs, storage_options, upload
from scoring_helpers import (
    ID,
    assert_scored_exactly,
    error_line,
    popen_cli,
    run_cli,
    scores_by_id,
    write_lake,
)

import engine.s3_delta_sink
from engine import BadInputError, ExecutionError, score


def test_end_to_end_delta_sink_on_s3(
    s3_lake: tuple[str, str], bucket: str, s3_env: str, model_file: Path,
    lake_table: pa.Table,
) -> None:  # fmt: skip
    source, model = s3_lake
    table = f"s3://{bucket}/scores"
    result = score(model, source, table, id_column=ID, format="delta", task_rows=300)
    assert result.rows_scored == 3000
    assert_scored_exactly(read_delta(table, s3_env), model_file, lake_table)
    polars = pl.read_delta(table, storage_options=storage_options(s3_env))
    assert polars.height == 3000
    # the run record is in the bucket, and no credential is in it
    s3 = s3fs(s3_env)
    with s3.open_input_stream(f"{bucket}/scores/_lakescore/run_records/{result.run_id}.json") as fh:
        record = fh.read().decode()
    assert '"status": "ok"' in record and SECRET not in record
    # a rerun of the committed run commits nothing
    version = DeltaTable(table, storage_options=storage_options(s3_env)).version()
    again = score(model, source, table, id_column=ID, format="delta", run_id=result.run_id)
    assert again.rows_scored == 3000
    assert DeltaTable(table, storage_options=storage_options(s3_env)).version() == version


def test_crash_between_upload_and_commit_then_rerun(
    s3_lake: tuple[str, str], bucket: str, s3_env: str, monkeypatch
) -> None:
    """Every part is uploaded, then the commit fails: the table does not exist (nothing
    visible); the rerun resumes (no task scored again) and commits each row once."""
    source, model = s3_lake
    table = f"s3://{bucket}/scores"

    def fail(self, run_id, parts):
        raise ExecutionError("connection reset during commit")

    commit = engine.s3_delta_sink.S3DeltaSink.commit_parts
    monkeypatch.setattr(engine.s3_delta_sink.S3DeltaSink, "commit_parts", fail)
    with pytest.raises(ExecutionError):
        score(model, source, table, id_column=ID, format="delta", task_rows=300)
    assert not DeltaTable.is_deltatable(table, storage_options=storage_options(s3_env))
    parts = s3fs(s3_env).get_file_info(fs.FileSelector(f"{bucket}/scores", recursive=True))
    assert sum(p.base_name.startswith("part-") for p in parts) == 12  # uploaded, not committed
    assert not [p for p in parts if "/_lakescore/" in p.path]  # no quality rows, no record
    monkeypatch.setattr(engine.s3_delta_sink.S3DeltaSink, "commit_parts", commit)
    result = score(model, source, table, id_column=ID, format="delta", task_rows=300)
    assert result.tasks_resumed == 12
    assert len(scores_by_id(read_delta(table, s3_env))) == 3000


@pytest.mark.slow
def test_killed_cli_run_on_s3_commits_once(
    cli, bucket: str, s3_env: str, model_file: Path, engine_data: Path, tmp_path: Path
) -> None:
    source = engine_data / "s3-kill-lake"
    if not source.exists():
        write_lake(source, regions=("north",), rows_per_file=20_000, row_group_rows=500)
    upload(s3_env, source, f"{bucket}/big")
    table = f"s3://{bucket}/scores"
    job = tmp_path / "job.toml"
    job.write_text(
        f'model = "{model_file}"\nsource = "s3://{bucket}/big"\nsink = "{table}"\n'
        f'id_column = "{ID}"\nformat = "delta"\ntask_rows = 1000\nbatch_rows = 250\n'
        f'[storage]\nendpoint_url = "{s3_env}"\n'
    )
    log = tmp_path / "first.log"
    proc = popen_cli("-v", "run", job, log=log)
    staging = tmp_path / "state"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list(staging.glob("sinks/*/_lakescore/staging/*/tasks/*.json")):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    assert not DeltaTable.is_deltatable(table, storage_options=storage_options(s3_env))
    again = run_cli("-v", "run", job, timeout=300)
    assert again.returncode == 0, again.stderr
    rows = read_delta(table, s3_env)
    assert rows.num_rows == 40_000 and len(scores_by_id(rows)) == 40_000
    assert SECRET not in log.read_text() + again.stderr + again.stdout


def test_delta_source_on_s3_with_time_travel(
    s3_lake: tuple[str, str], bucket: str, s3_env: str, lake_table: pa.Table, tmp_path: Path
) -> None:
    from deltalake import write_deltalake

    _, model = s3_lake
    uri = f"s3://{bucket}/customers"
    rows = lake_table.drop_columns(["nickname"])
    write_deltalake(uri, rows.slice(0, 1000), storage_options=storage_options(s3_env))
    write_deltalake(uri, rows.slice(1000, 500), mode="append",
                    storage_options=storage_options(s3_env))  # fmt: skip
    result = score(model, uri, tmp_path / "scores", id_column=ID, source_version=0)
    assert result.rows_scored == 1000 and result.record["source_version"] == 0
    result = score(model, uri, tmp_path / "latest", id_column=ID)
    assert result.rows_scored == 1500 and result.record["source_version"] == 1


def test_endpoint_from_the_job_spec(
    s3_lake: tuple[str, str], bucket: str, s3_env: str, tmp_path: Path, monkeypatch
) -> None:
    source, model = s3_lake
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    job = tmp_path / "job.toml"
    job.write_text(
        f'model = "{model}"\nsource = "{source}"\nsink = "s3://{bucket}/scores"\n'
        f'id_column = "{ID}"\nformat = "delta"\n[storage]\nendpoint_url = "{s3_env}"\n'
    )
    proc = run_cli("run", job)
    assert proc.returncode == 0, proc.stderr
    assert read_delta(f"s3://{bucket}/scores", s3_env).num_rows == 3000


# --- bad input: one line, exit 2, nothing written ------------------------------------------


def test_missing_bucket_and_unreachable_endpoint(
    cli, s3_lake: tuple[str, str], bucket: str, s3_env: str, lake: Path, model_file: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    source, _ = s3_lake
    cases = [
        (["--source", source, "--sink", "s3://no-such-bucket/scores"], {}, "no-such-bucket"),
        (["--source", "s3://no-such-bucket/lake", "--sink", tmp_path / "s"], {},
         "no-such-bucket"),
        (["--source", lake, "--sink", f"s3://{bucket}/scores"],
         {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "127.0.0.1:9"),
        (["--source", source, "--sink", f"s3://{bucket}/p", "--format", "parquet",
          "--partition-by", "region"], {}, "use --format delta"),
    ]  # fmt: skip
    before = {i.path for i in s3fs(s3_env).get_file_info(fs.FileSelector(bucket, recursive=True))}
    for flags, env, named in cases:
        fmt = [] if "--format" in flags else ["--format", "delta"]
        proc = _cli_env(env, "score", "--model", model_file, *flags, "--id-column", ID, *fmt)
        assert proc.returncode == 2, proc.stderr
        line = error_line(proc)
        assert named in line
        assert SECRET not in proc.stderr
    after = {i.path for i in s3fs(s3_env).get_file_info(fs.FileSelector(bucket, recursive=True))}
    assert after == before
    assert not (tmp_path / "s").exists()


def _cli_env(env: dict[str, str], *args):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return run_cli(*args)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_incompatible_table_on_s3(s3_lake: tuple[str, str], bucket: str, s3_env: str) -> None:
    from deltalake import write_deltalake

    source, model = s3_lake
    uri = f"s3://{bucket}/scores"
    write_deltalake(uri, pa.table({ID: ["x"], "other": [1.0]}),
                    storage_options=storage_options(s3_env))  # fmt: skip
    with pytest.raises(BadInputError, match="schema"):
        score(model, source, uri, id_column=ID, format="delta")
    assert DeltaTable(uri, storage_options=storage_options(s3_env)).version() == 0


def test_missing_model_object(s3_lake: tuple[str, str], bucket: str, tmp_path: Path) -> None:
    source, _ = s3_lake
    with pytest.raises(BadInputError, match="not found"):
        score(f"s3://{bucket}/models/nope.json", source, tmp_path / "s", id_column=ID)
    assert not (tmp_path / "s").exists()


def test_storage_table_refuses_credentials(tmp_path: Path, model_file: Path, lake: Path):
    job = tmp_path / "job.toml"
    job.write_text(
        f'model = "{model_file}"\nsource = "{lake}"\nsink = "s3://b/s"\nformat = "delta"\n'
        '[storage]\naws_secret_access_key = "x"\n'
    )
    proc = run_cli("run", job)
    assert proc.returncode == 2
    assert "credentials come from the AWS environment" in error_line(proc)


def test_parquet_sink_on_s3_copies_then_writes_the_manifest_last(
    s3_lake: tuple[str, str], bucket: str, s3_env: str, monkeypatch
) -> None:
    """The process dies after every part was copied and before the run's manifest: the
    rows are there once; the rerun writes the manifest and adds nothing."""
    import engine.s3_parquet_sink

    source, model = s3_lake
    sink = f"s3://{bucket}/pq"
    put = engine.s3_parquet_sink.S3ParquetSink.put_json

    def crash_on_manifest(self, uri, doc):
        if uri.endswith("/_manifest.json"):
            raise OSError("power cut")
        put(self, uri, doc)

    monkeypatch.setattr(engine.s3_parquet_sink.S3ParquetSink, "put_json", crash_on_manifest)
    with pytest.raises(OSError, match="power cut"):
        score(model, source, sink, id_column=ID, task_rows=300)
    s3 = s3fs(s3_env)
    visible = ds.dataset(f"{bucket}/pq", filesystem=s3, format="parquet").to_table()
    assert visible.num_rows == 3000  # copied once, manifest missing
    monkeypatch.setattr(engine.s3_parquet_sink.S3ParquetSink, "put_json", put)
    result = score(model, source, sink, id_column=ID, task_rows=300)
    assert result.tasks_resumed == result.tasks == 12
    table = ds.dataset(f"{bucket}/pq", filesystem=s3, format="parquet").to_table()
    assert len(scores_by_id(table)) == 3000
    manifest = f"{bucket}/pq/{result.run_id}/_manifest.json"
    assert s3.get_file_info(manifest).type == fs.FileType.File
    staged = s3.get_file_info(fs.FileSelector(f"{bucket}/pq/_lakescore/staging",
                                              allow_not_found=True, recursive=True))  # fmt: skip
    assert not [i for i in staged if i.type == fs.FileType.File]
    # committed: a rerun by id adds nothing, even from a machine without the local state
    shutil.rmtree(os.environ["LAKESCORE_STATE_DIR"])
    again = score(model, source, sink, id_column=ID, run_id=result.run_id)
    assert again.rows_scored == 3000
    assert ds.dataset(f"{bucket}/pq", filesystem=s3, format="parquet").count_rows() == 3000


def test_bad_data_leaves_the_s3_parquet_sink_untouched(
    s3_lake: tuple[str, str], bucket: str, s3_env: str, copy_lake
) -> None:
    _, model = s3_lake
    lake = copy_lake()
    bad = lake / "region=south" / "part-1.parquet"
    data = bytearray(bad.read_bytes())
    data[4:68] = bytes(b ^ 0x5A for b in data[4:68])
    bad.write_bytes(bytes(data))
    upload(s3_env, lake, f"{bucket}/badlake")
    s3 = s3fs(s3_env)
    before = {i.path for i in s3.get_file_info(fs.FileSelector(bucket, recursive=True))}
    with pytest.raises(BadInputError, match=r"part-1\.parquet"):
        score(model, f"s3://{bucket}/badlake", f"s3://{bucket}/pq", id_column=ID, task_rows=300)
    after = {i.path for i in s3.get_file_info(fs.FileSelector(bucket, recursive=True))}
    assert after == before

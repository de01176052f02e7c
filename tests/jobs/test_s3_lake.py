"""S3 beyond scoring: the registry, quality tables, profiles and dry runs, credentials,
concurrent writers. All on moto's S3 server (``s3_env``, ``bucket``: tests/jobs/s3_helpers.py).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable, write_deltalake
from pyarrow import fs
from s3_helpers import SECRET, read_delta, s3fs, storage_options
from scoring_helpers import ID, error_line, popen_cli, read_sink, scores_by_id
from variant_helpers import make_registry, train_challenger, variants_job

from engine import BadInputError, score
from engine._lakefs import LakeStore
from engine.coordinator import run_job
from engine.quality.tables import TABLES
from engine.registry import Registry
from engine.spec import load_job_file


def listing(endpoint: str, bucket: str) -> dict[str, int]:
    """Every object of the bucket and its size."""
    infos = s3fs(endpoint).get_file_info(fs.FileSelector(bucket, recursive=True))
    return {i.path: i.size for i in infos if i.type == fs.FileType.File}


# --- the model registry on S3 -----------------------------------------------------------


def test_registry_on_s3_register_list_alias_score_and_refuse_a_tampered_blob(
    cli, bucket: str, s3_env: str, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    registry = f"s3://{bucket}/registry"
    second = tmp_path / "churn.json"  # the same model, other bytes: another sha256
    second.write_bytes(model_file.read_bytes() + b"\n")
    for path in (model_file, second):
        proc = cli("models", "register", path, "--name", "churn", "--registry", registry)
        assert proc.returncode == 0, proc.stderr
    proc = cli("models", "alias", "churn@2", "champion", "--registry", registry)
    assert proc.returncode == 0, proc.stderr
    proc = cli("models", "list", "churn", "--registry", registry, "--json")
    listed = json.loads(proc.stdout)
    assert [v["version"] for v in listed["versions"]] == [1, 2]
    assert listed["aliases"]["champion"]["version"] == 2

    proc = cli("models", "list", "--registry", registry, "--json")
    assert json.loads(proc.stdout) == {"churn": {"versions": [1, 2]}}

    result = score("churn@champion", lake, tmp_path / "s", id_column=ID, registry=registry)
    assert result.rows_scored == 3000
    assert result.record["registry_model"]["version"] == 2
    assert result.record["model_sha256"] == listed["versions"][1]["sha256"]

    # Someone overwrites the stored model object: every load checks the sha256.
    blob = f"{bucket}/registry/churn/{listed['versions'][1]['file']}"
    with s3fs(s3_env).open_output_stream(blob) as out:
        out.write(model_file.read_bytes() + b"  ")
    sink = tmp_path / "tampered"
    args = ("--source", lake, "--sink", sink, "--id-column", ID, "--registry", registry)
    proc = cli("score", "--model", "churn@champion", *args)
    assert proc.returncode == 2
    assert "sha256" in error_line(proc) and "churn@2" in error_line(proc)
    assert not sink.exists()


def test_variant_job_with_models_from_an_s3_registry(
    bucket: str, s3_env: str, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    challenger = tmp_path / "challenger.json"
    train_challenger(challenger)
    registry = f"s3://{bucket}/registry"
    make_registry(registry, model_file, challenger)  # churn@1 = champion, churn@2
    job = variants_job(tmp_path / "job", lake, registry)
    result = run_job(load_job_file(job), progress=False)
    rows = read_sink(tmp_path / "job" / "scores")
    assert rows.num_rows == 3000
    pairs = set(zip(rows.column("variant").to_pylist(), rows.column("model_version").to_pylist(),
                    strict=True))  # fmt: skip
    assert pairs == {("champion", 1), ("challenger", 2)}
    plan = result.record["variant_plan"]["models"]
    assert plan["challenger"]["registry"] == registry and plan["challenger"]["version"] == 2


def test_concurrent_registrations_on_s3_never_share_a_version(
    bucket: str, s3_env: str, model_file: Path, monkeypatch
) -> None:
    """Every writer first tries version 1 at the same moment: S3's conditional put lets
    exactly one have each number, and the others take the next."""
    root = f"s3://{bucket}/registry"
    monkeypatch.setattr(Registry, "_next_version", lambda self, name: 1)
    writers = 4
    barrier = threading.Barrier(writers)
    versions: dict[int, int] = {}

    def register(i: int) -> None:
        barrier.wait()
        doc = Registry(root).register(model_file, "churn", metadata={"writer": str(i)})
        versions[i] = doc["version"]

    threads = [threading.Thread(target=register, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(versions.values()) == [1, 2, 3, 4]
    registry = Registry(root)
    for i, version in versions.items():  # each number holds its own writer's document
        assert registry.version("churn", version)["metadata"] == {"writer": str(i)}


def test_conditional_put_has_one_winner(bucket: str, s3_env: str) -> None:
    store = LakeStore(f"s3://{bucket}/registry")
    writers = 8
    barrier = threading.Barrier(writers)
    won: list[int] = []

    def claim(i: int) -> None:
        barrier.wait()
        if store.create_exclusive("m/versions/1.json", f"writer {i}".encode()):
            won.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(won) == 1
    assert store.read_bytes("m/versions/1.json") == f"writer {won[0]}".encode()


# --- quality tables of s3:// sinks ------------------------------------------------------


@pytest.mark.parametrize("fmt", ["delta", "parquet"])
def test_quality_tables_are_written_to_s3_sinks(
    fmt: str, bucket: str, s3_env: str, model_file: Path, lake: Path
) -> None:
    sink = f"s3://{bucket}/scores"
    first = score(model_file, lake, sink, id_column=ID, format=fmt)
    second = score(model_file, lake, sink, id_column=ID, format=fmt)
    s3 = s3fs(s3_env)

    def table(name: str) -> pa.Table:
        path = f"{bucket}/scores/_lakescore/{name}"
        return ds.dataset(path, filesystem=s3, format="parquet").to_table()

    runs = table("runs")
    assert sorted(runs.column("run_id").to_pylist()) == sorted([first.run_id, second.run_id])
    assert set(runs.column("status").to_pylist()) == {"ok"}
    features = len(first.record["features"])
    assert table("feature_stats").num_rows == 2 * features
    assert table("score_stats").num_rows == 2
    drift = table("drift")  # the first run had no reference; the second, the first run
    assert set(drift.column("run_id").to_pylist()) == {second.run_id}
    assert set(drift.column("reference").to_pylist()) == {f"run:{first.run_id}"}
    objects = listing(s3_env, bucket)
    for run in (first, second):
        for name in TABLES:
            assert f"{bucket}/scores/_lakescore/{name}/{run.run_id}.parquet" in objects
        assert f"{bucket}/scores/_lakescore/profiles/{run.run_id}.json" in objects
    # readers of the scores do not see the quality tables
    if fmt == "delta":
        assert read_delta(sink, s3_env).num_rows == 6000
    else:
        scores = ds.dataset(f"{bucket}/scores", filesystem=s3, format="parquet").to_table()
        assert scores.num_rows == 6000


def test_a_crash_before_the_runs_table_is_finished_by_the_rerun(
    bucket: str, s3_env: str, model_file: Path, lake: Path, monkeypatch
) -> None:
    """The run commits, then the process dies while uploading its quality files: the
    `runs` row (uploaded last) is missing; the rerun adds it, and nothing twice."""
    import engine.s3_staging

    put = engine.s3_staging.put_object

    def die_on_runs(filesystem, uri, data):
        if "/_lakescore/runs/" in uri:
            raise OSError("killed")
        put(filesystem, uri, data)

    monkeypatch.setattr(engine.s3_staging, "put_object", die_on_runs)
    sink = f"s3://{bucket}/scores"
    with pytest.raises(Exception, match="killed"):
        score(model_file, lake, sink, id_column=ID, format="delta")
    objects = listing(s3_env, bucket)
    assert not [k for k in objects if "/_lakescore/runs/" in k]
    assert read_delta(sink, s3_env).num_rows == 3000  # committed: the Delta log says so
    monkeypatch.setattr(engine.s3_staging, "put_object", put)
    again = score(model_file, lake, sink, id_column=ID, format="delta")
    assert again.tasks_resumed == again.tasks
    runs = ds.dataset(f"{bucket}/scores/_lakescore/runs", filesystem=s3fs(s3_env))
    assert runs.to_table().column("run_id").to_pylist() == [again.run_id]
    assert read_delta(sink, s3_env).num_rows == 3000


# --- profile and dry runs of s3:// and Delta sources ----------------------------------


def test_profile_of_s3_and_delta_sources(
    cli, s3_lake: tuple[str, str], bucket: str, s3_env: str, lake_table: pa.Table,
    tmp_path: Path,
) -> None:  # fmt: skip
    source, model = s3_lake
    out = tmp_path / "ref.json"
    proc = cli("profile", "--source", source, "--model", model, "-o", out)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["rows"] == 3000 and doc["source"] == source and doc["model"] == model

    delta = f"s3://{bucket}/customers"
    rows = lake_table.drop_columns(["nickname"])
    write_deltalake(delta, rows.slice(0, 1000), storage_options=storage_options(s3_env))
    write_deltalake(delta, rows.slice(1000, 500), mode="append",
                    storage_options=storage_options(s3_env))  # fmt: skip
    proc = cli("profile", "--source", delta, "--model", model, "-o", out)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["rows"] == 1500 and doc["source_version"] == 1


def test_dry_run_of_s3_and_delta_sources_writes_nothing(
    cli, s3_lake: tuple[str, str], bucket: str, s3_env: str, lake_table: pa.Table
) -> None:
    source, model = s3_lake
    delta = f"s3://{bucket}/customers"
    rows = lake_table.drop_columns(["nickname"])
    write_deltalake(delta, rows.slice(0, 1000), storage_options=storage_options(s3_env))
    write_deltalake(delta, rows.slice(1000, 500), mode="append",
                    storage_options=storage_options(s3_env))  # fmt: skip
    before = listing(s3_env, bucket)
    sink = f"s3://{bucket}/scores"
    for src, extra, rows_expected in (
        (source, [], 3000),
        (delta, [], 1500),
        (delta, ["--source-version", "0"], 1000),
    ):
        proc = cli("score", "--dry-run", "--json", "--model", model, "--source", src,
                   "--sink", sink, "--format", "delta", "--id-column", ID, *extra)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["source"]["rows"] == rows_expected
        assert report["sink"]["path"] == sink and report["sink"]["exists"] is False
        assert report["estimate"]["seconds"] > 0
    assert listing(s3_env, bucket) == before


# --- wrong credentials --------------------------------------------------------------------


def _moto_auth(endpoint: str, on: bool) -> None:
    """moto checks credentials once its count of unauthenticated requests is used up."""
    body = b"0" if on else b"inf"
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth", data=body, headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_wrong_credentials_are_one_line_exit_2_and_nothing_written(
    cli, s3_lake: tuple[str, str], bucket: str, s3_env: str, lake: Path, model_file: Path,
    tmp_path: Path, monkeypatch,
) -> None:  # fmt: skip
    source, _ = s3_lake
    before = listing(s3_env, bucket)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")  # unknown to the store
    cases = [
        (["--source", source, "--sink", tmp_path / "local"], source),
        (["--source", lake, "--sink", f"s3://{bucket}/scores", "--format", "delta"],
         f"s3://{bucket}/scores"),
        (["--source", lake, "--sink", tmp_path / "local", "--registry",
          f"s3://{bucket}/registry"], "registry"),
    ]  # fmt: skip
    _moto_auth(s3_env, on=True)
    try:
        for flags, named in cases:
            model = "churn@1" if "--registry" in flags else model_file
            proc = cli("score", "--model", model, *flags, "--id-column", ID)
            assert proc.returncode == 2, proc.stderr
            line = error_line(proc)
            assert named in line and "check the credentials" in line, line
            assert SECRET not in proc.stderr
    finally:
        _moto_auth(s3_env, on=False)
    assert listing(s3_env, bucket) == before
    assert not (tmp_path / "local").exists()


def test_keys_from_an_aws_profile_reach_pyarrow_deltalake_and_boto3(
    cli, s3_lake: tuple[str, str], bucket: str, s3_env: str, model_file: Path, lake: Path,
    tmp_path: Path, monkeypatch,
) -> None:  # fmt: skip
    """With moto checking credentials, a job whose only keys are in a profile reads the
    S3 source (pyarrow), commits to an S3 Delta table (deltalake) and registers a model
    on an S3 registry (boto3's conditional put)."""
    import boto3

    iam = boto3.client("iam", endpoint_url=s3_env, region_name="us-east-1")
    user = f"lake-{bucket}"
    iam.create_user(UserName=user)
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                     "Resource": "*"}]}  # fmt: skip
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=json.dumps(allow))
    keys = iam.create_access_key(UserName=user)["AccessKey"]
    credentials = tmp_path / "aws" / "credentials"
    credentials.parent.mkdir()
    credentials.write_text(f"[lake]\naws_access_key_id = {keys['AccessKeyId']}\n"
                           f"aws_secret_access_key = {keys['SecretAccessKey']}\n")  # fmt: skip
    (tmp_path / "aws" / "config").write_text("[profile lake]\nregion = us-east-1\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws" / "config"))
    monkeypatch.setenv("AWS_PROFILE", "lake")
    source, _ = s3_lake
    table = f"s3://{bucket}/scores"
    registry = f"s3://{bucket}/registry"
    _moto_auth(s3_env, on=True)
    try:
        proc = cli("models", "register", model_file, "--name", "churn", "--registry", registry)
        assert proc.returncode == 0, proc.stderr
        proc = cli("score", "--model", "churn@1", "--registry", registry, "--source", source,
                   "--sink", table, "--format", "delta", "--id-column", ID)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert keys["SecretAccessKey"] not in proc.stderr + proc.stdout
    finally:
        _moto_auth(s3_env, on=False)
    with_keys = {
        **storage_options(s3_env),
        "AWS_ACCESS_KEY_ID": "any",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    assert DeltaTable(table, storage_options=with_keys).to_pyarrow_table().num_rows == 3000


# --- two writers, one table -------------------------------------------------------------


@pytest.mark.slow
def test_two_concurrent_writers_to_one_s3_delta_table_both_land(
    cli, s3_lake: tuple[str, str], bucket: str, s3_env: str, tmp_path: Path
) -> None:
    """Two jobs create and append to the same new table at once: both runs land whole
    (Delta's put-if-absent log entries; the loser of a version retries)."""
    source, model = s3_lake
    table = f"s3://{bucket}/scores"
    procs = [
        popen_cli("score", "--model", model, "--source", source, "--sink", table, "--format",
                  "delta", "--id-column", ID, "--run-id", f"writer-{i}", log=tmp_path / f"{i}.log")
        for i in range(2)
    ]  # fmt: skip
    deadline = time.monotonic() + 300
    for i, proc in enumerate(procs):
        code = proc.wait(max(deadline - time.monotonic(), 1))
        assert code == 0, (tmp_path / f"{i}.log").read_text()
    rows = read_delta(table, s3_env)
    assert rows.num_rows == 6000
    for i in range(2):
        mine = rows.filter(pc.equal(rows.column("run_id"), f"writer-{i}"))
        assert len(scores_by_id(mine)) == 3000
    history = DeltaTable(table, storage_options=storage_options(s3_env)).history()
    assert len(history) == 2  # one commit per run: created by one, appended by the other


def test_missing_registry_bucket_is_bad_input(s3_env: str, model_file: Path) -> None:
    with pytest.raises(BadInputError, match="no-such-bucket"):
        Registry("s3://no-such-bucket/registry").register(model_file, "churn")


def test_partition_backfill_on_an_s3_delta_table(
    bucket: str, s3_env: str, model_file: Path, lake: Path
) -> None:
    """A backfill of one partition replaces it in one transaction; the other partitions
    keep their files (the same objects, untouched)."""
    table = f"s3://{bucket}/scores"
    first = score(model_file, lake, table, id_column=ID, format="delta", partition_by=["region"])
    files_before = set(DeltaTable(table, storage_options=storage_options(s3_env)).file_uris())
    objects_before = listing(s3_env, bucket)
    again = score(model_file, lake, table, id_column=ID, format="delta", partition_by=["region"],
                  overwrite_partition="region = 'north'")  # fmt: skip
    assert again.rows_scored == 1000  # only north's rows were read
    dt = DeltaTable(table, storage_options=storage_options(s3_env))
    rows = dt.to_pyarrow_table()
    assert rows.num_rows == 3000 and len(scores_by_id(rows)) == 3000
    by_region = {r: set() for r in ("north", "south", "east")}
    for region, run_id in zip(rows.column("region").to_pylist(),
                              rows.column("run_id").to_pylist(), strict=True):  # fmt: skip
        by_region[region].add(run_id)
    assert by_region["north"] == {again.run_id}
    assert by_region["south"] == by_region["east"] == {first.run_id}
    kept = {u for u in files_before if "region=north" not in u}
    assert kept <= set(dt.file_uris())
    objects_after = listing(s3_env, bucket)
    for uri in kept:
        path = uri.removeprefix("s3://")
        assert objects_after[path] == objects_before[path]

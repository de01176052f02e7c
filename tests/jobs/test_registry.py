"""The model registry: versions, aliases, concurrent registration, sha256 checks on load."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from scoring_helpers import ID, error_line, oracle_scores, read_sink, scores_by_id, snapshot

import engine
from engine._lakefs import LakeStore
from engine.errors import BadInputError
from engine.quality.reference import Profile
from engine.registry import REGISTRY_ENV, Registry, resolve_model
from engine.spec import load_job_file


def test_register_stores_schema_and_metadata(model_file: Path, tmp_path: Path) -> None:
    reference = tmp_path / "profile.json"
    Profile(meta={"source": "training"}).save(reference)
    registry = Registry(str(tmp_path / "reg"))
    not_a_profile = tmp_path / "notes.json"
    not_a_profile.write_text('{"spend_30d": {}}')
    with pytest.raises(BadInputError, match=r"notes\.json: not a lakescore profile"):
        registry.register(model_file, "churn", reference=not_a_profile)
    assert not (tmp_path / "reg").exists()  # nothing written
    doc = registry.register(model_file, "churn", reference=reference, metadata={"owner": "ds"})
    assert doc["version"] == 1
    assert doc["objective"] == "binary:logistic"
    assert doc["num_classes"] == 2
    assert [f["name"] for f in doc["features"]][:2] == ["spend_30d", "visits_90d"]
    assert {f["type"] for f in doc["features"]} == {"float"}
    assert doc["metadata"] == {"owner": "ds"}
    stored = tmp_path / "reg" / "churn" / doc["file"]
    assert stored.read_bytes() == model_file.read_bytes()
    stored_reference = tmp_path / "reg" / "churn" / doc["reference"]["file"]
    assert stored_reference.read_bytes() == reference.read_bytes()
    assert registry.register(model_file, "churn")["version"] == 2
    assert registry.versions("churn") == [1, 2]
    assert registry.names() == ["churn"]


def test_concurrent_registrations_never_share_a_version(model_file: Path, tmp_path: Path) -> None:
    root = str(tmp_path / "reg")

    def register(i: int) -> int:  # a Registry per thread, as separate processes would have
        return Registry(root).register(model_file, "churn", metadata={"i": str(i)})["version"]

    with ThreadPoolExecutor(8) as pool:
        versions = list(pool.map(register, range(16)))
    assert sorted(versions) == list(range(1, 17))
    metas = {Registry(root).version("churn", v)["metadata"]["i"] for v in versions}
    assert metas == {str(i) for i in range(16)}  # no registration overwrote another


def test_listing_a_directory_that_comes_and_goes_never_raises(tmp_path: Path) -> None:
    """The race behind a failed concurrent registration: a directory created (here also
    removed) while the store lists it. Arrow's listing raised about once in 40 tries."""
    store = LakeStore(str(tmp_path))
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            (tmp_path / "versions").mkdir()
            (tmp_path / "versions").rmdir()

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        listings = [store.list_names("versions") for _ in range(5000)]
    finally:
        stop.set()
        thread.join()
    assert all(names == [] for names in listings)


def test_aliases_move_and_keep_history(model_file: Path, tmp_path: Path) -> None:
    registry = Registry(str(tmp_path / "reg"))
    registry.register(model_file, "churn")
    registry.register(model_file, "churn")
    registry.set_alias("churn", 1, "champion")
    doc = registry.set_alias("churn", 2, "champion")
    assert doc["version"] == 2 and [h["version"] for h in doc["history"]] == [1]
    assert "set_at" in doc["history"][0]
    assert resolve_model("churn@champion", registry.root).version == 2
    assert resolve_model("churn@1", registry.root).version == 1
    with pytest.raises(BadInputError, match="no model churn@9"):
        registry.set_alias("churn", 9, "champion")
    with pytest.raises(BadInputError, match="no alias 'staging'"):
        resolve_model("churn@staging", registry.root)


def test_registry_model_scores_and_is_named_in_the_run_record(
    model_file: Path, lake: Path, lake_table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry(str(tmp_path / "reg"))
    doc = registry.register(model_file, "churn")
    registry.set_alias("churn", 1, "champion")
    monkeypatch.setenv(REGISTRY_ENV, registry.root)  # the location from the environment
    result = engine.score("churn@champion", lake, tmp_path / "scores", id_column=ID)
    named = result.record["registry_model"]
    assert (named["name"], named["version"], named["alias"]) == ("churn", 1, "champion")
    assert named["sha256"] == doc["sha256"] == result.record["model_sha256"]
    got = scores_by_id(read_sink(tmp_path / "scores"))
    want = oracle_scores(model_file, lake_table)
    ids = lake_table.column(ID).to_pylist()
    assert [got[i] for i in ids] == pytest.approx(want.tolist(), abs=1e-6)


def test_a_tampered_model_file_is_refused_and_nothing_is_scored(
    model_file: Path, lake: Path, tmp_path: Path
) -> None:
    registry = Registry(str(tmp_path / "reg"))
    doc = registry.register(model_file, "churn")
    stored = tmp_path / "reg" / "churn" / doc["file"]
    stored.write_bytes(stored.read_bytes() + b"\n")  # still a valid model, other bytes
    sink = tmp_path / "scores"
    with pytest.raises(BadInputError, match=r"churn@1.*sha256"):
        engine.score("churn@1", lake, sink, id_column=ID, registry=registry.root)
    assert snapshot(sink) is None


@pytest.mark.slow
def test_cli_register_list_alias_and_tamper_exit_2(
    cli, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    reg = tmp_path / "reg"
    done = cli(
        "models",
        "register",
        model_file,
        "--name",
        "churn",
        "--registry",
        reg,
        "--meta",
        "owner=ds",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == 1
    assert cli("models", "alias", "churn@1", "champion", "--registry", reg).returncode == 0
    listing = cli("models", "list", "churn", "--registry", reg)
    assert "churn@1" in listing.stdout and "champion" in listing.stdout
    ok = cli(
        "score",
        "--model",
        "churn@champion",
        "--registry",
        reg,
        "--source",
        lake,
        "--sink",
        tmp_path / "ok",
        "--id-column",
        ID,
        "--json",
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["registry_model"]["version"] == 1
    stored = next((reg / "churn" / "blobs").rglob("*.json"))
    stored.write_bytes(stored.read_bytes() + b" ")
    bad = cli(
        "score",
        "--model",
        "churn@champion",
        "--registry",
        reg,
        "--source",
        lake,
        "--sink",
        tmp_path / "bad",
        "--id-column",
        ID,
    )
    assert bad.returncode == 2
    assert "sha256" in error_line(bad)
    assert not (tmp_path / "bad").exists()


def test_job_file_keeps_registry_references(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text('model = "churn@champion"\nsource = "l"\nsink = "s"\nregistry = "reg"\n')
    spec = load_job_file(job)
    assert spec.model == "churn@champion"
    assert spec.registry == str(tmp_path / "reg")


def test_a_registry_reference_without_a_registry_is_bad_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(REGISTRY_ENV, raising=False)
    with pytest.raises(BadInputError, match="no registry is set"):
        resolve_model("churn@champion", None)

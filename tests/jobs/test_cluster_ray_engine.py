"""The engine on Ray: the ``--cluster`` value (a Ray this process has, one it starts and
stops, an address), and runs on Ray giving the same rows and scores as the local
executor, bad data found in an actor, and the CLI on its own or an existing Ray.

One Ray (2 CPUs) is started for the module; the CLI tests start or connect their own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from scoring_helpers import (  # noqa: E402
    ID,
    corrupt_first_page,
    error_line,
    read_sink,
    run_cli,
    scores_by_id,
)

import engine  # noqa: E402
from cluster import make_executor  # noqa: E402
from cluster.ray_connection import check_reachable  # noqa: E402
from cluster.ray_executor import RayExecutor  # noqa: E402
from engine.errors import BadInputError  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180), pytest.mark.usefixtures("local_ray")]


# --- choosing a cluster ------------------------------------------------------------------


def test_make_executor_reuses_the_ray_of_this_process(local_ray: str) -> None:
    for spec in ("ray", "auto", local_ray, f"ray://{local_ray}"):
        executor = make_executor(spec)
        assert isinstance(executor, RayExecutor)
        executor.shutdown()
        assert ray.is_initialized()  # a Ray it did not start is never shut down


OWN_RAY_SCRIPT = """
import ray
from cluster import make_executor

executor = make_executor("ray")
assert not ray.is_initialized()  # nothing starts before there is work
assert sorted(executor.execute(lambda: lambda t: t * 2, range(4))) == [0, 2, 4, 6]
assert ray.is_initialized() and ray.cluster_resources()["CPU"] >= 1
executor.shutdown()
assert not ray.is_initialized()  # the Ray it started is stopped
executor.shutdown()
print("ok")
"""


def test_ray_starts_its_own_ray_on_first_use_and_stops_it() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", OWN_RAY_SCRIPT],
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_make_executor_rejects_unknown_clusters() -> None:
    for spec in ("ray://nowhere", "nowhere", "host:port", "ray:", "local:0", "a/b:1"):
        with pytest.raises(ValueError, match="unknown cluster"):
            make_executor(spec)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ValueError, match=r"pip install 'lakescore\[ray\]'"):
        make_executor("ray")


def test_an_address_nothing_listens_on_fails_fast() -> None:
    started = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"cannot reach Ray at ray://127\.0\.0\.1:1: "):
        check_reachable("ray://127.0.0.1:1")
    assert time.perf_counter() - started < 10


# --- the engine on Ray -------------------------------------------------------------------


@pytest.mark.parametrize(("actor_cpus", "pool"), [(None, (1, 2)), (1, (2, 1))])
def test_engine_on_ray_matches_local(
    model_file: Path, lake: Path, tmp_path: Path, actor_cpus: int | None, pool: tuple[int, int]
) -> None:
    """By default one actor of both CPUs of this one-node Ray, running two tasks at once;
    or one actor per CPU."""
    local = engine.score(model_file, lake, tmp_path / "local", id_column=ID, task_rows=128)
    started = time.perf_counter()
    on_ray = engine.score(
        model_file, lake, tmp_path / "ray", id_column=ID, cluster="ray", task_rows=128,
        actor_cpus=actor_cpus,
    )  # fmt: skip
    assert time.perf_counter() - started < 90  # 24 tasks on 2 CPUs: no hang
    assert on_ray.status == "ok"
    assert on_ray.record["executor"] == "ray"
    stats = on_ray.record["executor_stats"]
    assert (stats["actors"], stats["cpus_per_actor"]) == pool
    assert [doc["slots"] for doc in stats["actor_stats"].values()] == [pool[1]] * pool[0]
    assert {w["slots"] for w in on_ray.record["workers"].values()} == {pool[1]}
    assert on_ray.rows_scored == local.rows_scored == 3000
    assert on_ray.tasks == 24
    ray_table, local_table = read_sink(tmp_path / "ray"), read_sink(tmp_path / "local")
    assert ray_table.num_rows == 3000
    assert scores_by_id(ray_table) == scores_by_id(local_table)  # same ids, same scores


def test_bad_data_found_by_an_actor_is_bad_input(
    model_file: Path, copy_lake, tmp_path: Path
) -> None:
    """A page that does not decode is found inside an actor; the engine still sees its
    BadInputError (exit 2 on the CLI), and the sink is not created."""
    lake = copy_lake()
    bad = lake / "region=south" / "part-1.parquet"
    corrupt_first_page(bad)
    sink = tmp_path / "scores"
    with pytest.raises(BadInputError, match=re.escape(str(bad))):
        engine.score(model_file, lake, sink, id_column=ID, cluster="ray")
    assert not sink.exists()


def test_cli_on_its_own_local_ray(cli, model_file: Path, lake: Path, tmp_path: Path) -> None:
    sink = tmp_path / "scores"
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", sink,
               "--id-column", ID, "--cluster", "ray")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_sink(sink).num_rows == 3000


def test_cli_on_an_existing_cluster(
    cli, local_ray: str, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    """``--cluster HOST:PORT`` joins the module's Ray as a second driver and leaves it
    running (here with one actor per CPU, not the one-node default); an address nothing
    listens on is exit 2 with one line."""
    sink = tmp_path / "scores"
    proc = cli("score", "--model", model_file, "--source", lake, "--sink", sink,
               "--id-column", ID, "--cluster", local_ray, "--actor-cpus", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_sink(sink).num_rows == 3000
    [record] = (sink / "_lakescore" / "run_records").glob("*.json")
    stats = json.loads(record.read_text())["executor_stats"]
    assert (stats["actors"], stats["cpus_per_actor"]) == (2, 1)
    assert ray.get(ray.put("still up"), timeout=30) == "still up"

    proc = run_cli("score", "--model", model_file, "--source", lake,
                   "--sink", tmp_path / "other", "--id-column", ID,
                   "--cluster", "127.0.0.1:1")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "cannot reach Ray at 127.0.0.1:1" in error_line(proc)
    assert not (tmp_path / "other").exists()

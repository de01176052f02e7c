"""Faults on a real multi-node Ray cluster on one machine (``ray.cluster_utils.Cluster``:
a head and two worker nodes of one CPU each).

Each test injects one fault into a real run of the engine: a task that raises once (after
writing its part), a worker process killed with SIGKILL after writing its part, a node
removed while one of its actors holds a task, a poison partition (a corrupt file), and the
driver killed mid-job. Faults are injected by wrapping the engine's worker factory in the
real Ray executor; nothing else is replaced. After each: exactly one row per input row,
no duplicate ids, and the scores of a local run.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402
from scoring_helpers import (  # noqa: E402
    ID,
    corrupt_first_page,
    popen_cli,
    read_sink,
    run_cli,
    run_record,
    scores_by_id,
    write_lake,
)

import engine  # noqa: E402
from cluster.ray_executor import RayExecutor  # noqa: E402
from engine.coordinator import run_job  # noqa: E402
from engine.errors import BadInputError, ExecutionError  # noqa: E402
from engine.spec import JobSpec  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

TASK_ROWS = 128  # the small lake: 24 tasks


@pytest.fixture(scope="module")
def cluster(private_model_cache: Path) -> Iterator[Cluster]:
    if ray.is_initialized():
        ray.shutdown()
    store = 80 * 2**20
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": store},
    )
    for _ in range(2):
        c.add_node(num_cpus=1, object_store_memory=store)
    c.wait_for_nodes()
    ray.init(address=c.address, logging_level=logging.WARNING)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def local_scores(model_file: Path, lake: Path, tmp_path_factory: pytest.TempPathFactory):
    sink = tmp_path_factory.mktemp("faults-local") / "scores"
    engine.score(model_file, lake, sink, id_column=ID)
    return scores_by_id(read_sink(sink))


@dataclass(frozen=True)
class Fault:
    """Wraps a worker factory: the first task a worker runs on an eligible node gets the
    fault, once per run (a marker file in ``root`` says it happened)."""

    root: str
    kind: str  # "raise" | "kill" | "hang"
    avoid_node: str = ""  # never fault on this node (the head, for "hang")

    def wrap(self, factory: Callable[..., Any]) -> Callable[..., Any]:
        def build(**kwargs: Any) -> Callable[[Any], Any]:
            worker = factory(**kwargs)
            return lambda task: self.run(worker, task)

        return build

    def run(self, worker: Callable[[Any], Any], task: Any) -> Any:
        node = ray.get_runtime_context().get_node_id()
        if node == self.avoid_node:
            return worker(task)
        try:
            with open(Path(self.root, "fault"), "x") as fh:
                fh.write(f"{node} {task.task_id} {os.getpid()}")
        except FileExistsError:
            return worker(task)
        if self.kind == "hang":  # until the test removes this node
            time.sleep(120)
        worker(task)  # the part is written: a rerun must overwrite it
        if self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected fault in task {task.task_id}")


class FaultyRayExecutor(RayExecutor):
    def __init__(self, fault: Fault, **options: Any) -> None:
        super().__init__(**options)
        self.fault = fault

    def execute(self, factory: Any, tasks: Iterable[Any]) -> Iterator[Any]:
        return super().execute(self.fault.wrap(factory), tasks)


def job(model_file: Path, lake: Path, sink: Path) -> JobSpec:
    return JobSpec(
        model=str(model_file), source=str(lake), sink=str(sink), id_column=ID,
        cluster="ray", task_rows=TASK_ROWS,
    )  # fmt: skip


def assert_exactly_the_local_scores(sink: Path, local_scores: dict[int, float]) -> None:
    table = read_sink(sink)
    ids = table.column(ID)
    assert table.num_rows == len(local_scores) == pc.count_distinct(ids).as_py()
    assert scores_by_id(table) == local_scores


def test_a_task_that_raises_is_retried(
    cluster: Cluster, model_file: Path, lake: Path, tmp_path: Path, local_scores
) -> None:
    fault = Fault(str(tmp_path), "raise")
    executor = FaultyRayExecutor(fault, task_retries=2)
    result = run_job(job(model_file, lake, tmp_path / "s"), executor=executor, progress=False)
    assert (tmp_path / "fault").exists()
    assert result.record["executor_stats"]["tasks_retried"] == 1
    assert result.record["executor_stats"]["tasks_failed"] == 0
    assert len(result.record["nodes"]) == 1  # three Ray nodes, one host
    assert sum(w["rows"] for w in result.record["workers"].values()) == 3000
    # ...told apart by Ray node id, with each actor's own CPU and memory figures
    assert sum(n["rows"] for n in result.record["ray_nodes"].values()) == 3000
    assert all(w["peak_rss_mib"] > 0 for w in result.record["workers"].values())
    assert_exactly_the_local_scores(tmp_path / "s", local_scores)


@dataclass(frozen=True)
class RaiseAlways(Fault):
    """Raises on the first task it sees and on every retry of that task."""

    def run(self, worker: Callable[[Any], Any], task: Any) -> Any:
        marker = Path(self.root, "victim")
        try:
            with open(marker, "x") as fh:
                fh.write(task.task_id)
        except FileExistsError:
            pass
        if marker.read_text() == task.task_id:
            Path(self.root, f"try-{time.monotonic_ns()}").touch()
            raise RuntimeError(f"injected fault in task {task.task_id}")
        return worker(task)


def test_retries_of_a_raising_task_are_bounded(
    cluster: Cluster, model_file: Path, lake: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "s"
    executor = FaultyRayExecutor(RaiseAlways(str(tmp_path), "raise"), task_retries=2)
    with pytest.raises(ExecutionError, match="injected fault"):
        run_job(job(model_file, lake, sink), executor=executor, progress=False)
    assert len(list(tmp_path.glob("try-*"))) == 3  # the first run and two retries
    assert executor.stats.tasks_retried == 2 and executor.stats.tasks_failed == 1
    assert [p.name for p in sink.iterdir()] == ["_lakescore"]  # no run committed


def test_a_killed_worker_is_replaced_and_its_task_rerun(
    cluster: Cluster, model_file: Path, lake: Path, tmp_path: Path, local_scores
) -> None:
    fault = Fault(str(tmp_path), "kill")
    executor = FaultyRayExecutor(fault, task_retries=0)
    result = run_job(job(model_file, lake, tmp_path / "s"), executor=executor, progress=False)
    pid = (tmp_path / "fault").read_text().split()[2]
    stats = result.record["executor_stats"]
    assert stats["tasks_retried"] >= 1 and stats["tasks_failed"] == 0
    assert stats["workers_started"] > stats["actors"]  # the dead actor was replaced
    assert not any(key.endswith(f":{pid}") for key in result.record["workers"])
    assert_exactly_the_local_scores(tmp_path / "s", local_scores)


def test_a_poison_partition_fails_the_job_naming_the_file(
    cluster: Cluster, model_file: Path, copy_lake, tmp_path: Path
) -> None:
    lake = copy_lake()
    bad = lake / "region=south" / "part-1.parquet"
    corrupt_first_page(bad)
    sink = tmp_path / "scores"
    executor = RayExecutor(task_retries=2)
    with pytest.raises(BadInputError, match=re.escape(str(bad))):
        run_job(job(model_file, lake, sink), executor=executor, progress=False)
    assert executor.stats.tasks_retried >= 2  # its retries ran first
    assert not sink.exists()  # untouched: not even created


def test_a_node_removed_mid_job(
    cluster: Cluster, model_file: Path, lake: Path, tmp_path: Path, local_scores
) -> None:
    head = ray.get_runtime_context().get_node_id()
    fault = Fault(str(tmp_path), "hang", avoid_node=head)
    executor = FaultyRayExecutor(fault, task_retries=0, release_timeout_s=0.5)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = run_job(
                job(model_file, lake, tmp_path / "s"), executor=executor, progress=False
            )
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    marker = tmp_path / "fault"
    deadline = time.monotonic() + 120
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim_id = marker.read_text().split()[0]
    (victim,) = [n for n in cluster.worker_nodes if n.node_id == victim_id]
    cluster.remove_node(victim)
    try:
        thread.join(180)
        assert not thread.is_alive()
        assert "error" not in outcome, outcome.get("error")
        stats = outcome["result"].record["executor_stats"]
        assert stats["tasks_retried"] >= 1 and stats["tasks_failed"] == 0
        assert_exactly_the_local_scores(tmp_path / "s", local_scores)
    finally:
        cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)  # for later tests
        cluster.wait_for_nodes()


BIG_TASK_ROWS = 1000


@pytest.fixture(scope="module")
def big_lake(engine_data: Path) -> Path:
    root = engine_data / "faults-big-lake"
    if not root.exists():
        write_lake(root, regions=("north", "south"), rows_per_file=15_000, row_group_rows=500)
    return root


def test_the_driver_killed_mid_job_resumes_from_the_manifest(
    cluster: Cluster, model_file: Path, big_lake: Path, tmp_path: Path, kernel_warm: None
) -> None:
    """A ``lakescore run`` process that joined the cluster is SIGKILLed once a task is
    recorded; the same command again skips the finished tasks and commits once."""
    sink = tmp_path / "scores"
    spec = tmp_path / "job.toml"
    spec.write_text(
        f'model = "{model_file}"\nsource = "{big_lake}"\nsink = "{sink}"\n'
        f'id_column = "{ID}"\ntask_rows = {BIG_TASK_ROWS}\nbatch_rows = 250\n'
        f'cluster = "{cluster.address}"\n'
    )
    log = tmp_path / "first.log"
    proc = popen_cli("run", spec, log=log)
    try:
        deadline = time.monotonic() + 120
        while not list((sink / "_lakescore" / "staging").glob("*/tasks/*.json")):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    (staged,) = (sink / "_lakescore" / "staging").iterdir()
    run_id = staged.name
    assert not (sink / run_id).exists()
    finished = len(list((staged / "tasks").glob("*.json")))

    again = run_cli("run", spec, timeout=240)
    assert again.returncode == 0, again.stderr
    record = run_record(sink, run_id)
    assert record["rows"] == 60_000
    assert record["tasks_resumed"] >= finished >= 1
    table = read_sink(sink)
    assert table.num_rows == 60_000 == pc.count_distinct(table.column(ID)).as_py()
    local = engine.score(model_file, big_lake, tmp_path / "local", id_column=ID)
    assert scores_by_id(table) == scores_by_id(read_sink(tmp_path / "local"))
    assert local.rows_scored == 60_000

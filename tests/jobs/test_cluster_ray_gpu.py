"""GPU actor pools on one machine: a local Ray that declares a GPU it does not have, and
GPU actors that run the CUDA kernel in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``
in their environment only). CPU and GPU actors pull from one queue; the run record says
which backend scored how many tasks, and the scores agree with the local executor's.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("numba.cuda")

from scoring_helpers import ID, CountingTasks, read_sink, scores_by_id, write_lake  # noqa: E402

import engine  # noqa: E402
from cluster import TaskFailed  # noqa: E402
from cluster.ray_executor import RayExecutor  # noqa: E402
from engine.coordinator import run_job  # noqa: E402
from engine.spec import JobSpec  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

SIMULATOR = {"NUMBA_ENABLE_CUDASIM": "1"}


@pytest.fixture(scope="module", autouse=True)
def ray_with_a_declared_gpu(private_model_cache: Path) -> Iterator[None]:
    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",
        num_cpus=2,
        num_gpus=1,  # declared, not real: GPU actors run the simulator
        include_dashboard=False,
        object_store_memory=100 * 2**20,
        logging_level=logging.WARNING,
    )
    yield
    ray.shutdown()


@dataclass(frozen=True)
class DeviceProbe:
    """Workers that leave ``<device>-<pid>-*`` files in ``root`` for each task they run."""

    root: str

    def __call__(self, device: str = "cpu"):
        def work(task: int) -> int:
            Path(self.root, f"{device}-{os.getpid()}-{task}-{uuid.uuid4().hex}").touch()
            return task

        return work


def devices(root: Path) -> list[str]:
    return [p.name.split("-")[0] for p in root.iterdir()]


def test_gpu_only_pool_builds_every_worker_for_the_gpu(tmp_path: Path) -> None:
    executor = RayExecutor(gpu="only", gpu_actor_cpus=0.5)
    results = sorted(executor.execute(DeviceProbe(str(tmp_path)), CountingTasks(6)))
    assert results == list(range(6))
    assert set(devices(tmp_path)) == {"gpu"}
    assert executor.stats.extra["gpu_actors"] == 1
    assert executor.stats.extra["actors"] == 0
    assert executor.stats.extra["tasks_by_device"] == {"cpu": 0, "gpu": 6}


def test_auto_pool_has_gpu_and_cpu_actors_on_one_queue(tmp_path: Path) -> None:
    executor = RayExecutor(gpu="auto")
    results = sorted(executor.execute(DeviceProbe(str(tmp_path)), CountingTasks(20)))
    assert results == list(range(20))  # every task once
    assert executor.stats.extra["gpu_actors"] == 1
    assert executor.stats.extra["actors"] == 1  # the GPU actor holds one of the 2 CPUs
    by_device = executor.stats.extra["tasks_by_device"]
    assert sum(by_device.values()) == 20
    assert sorted(devices(tmp_path)) == sorted(
        ["cpu"] * by_device["cpu"] + ["gpu"] * by_device["gpu"]
    )


def test_never_leaves_the_gpu_alone(tmp_path: Path) -> None:
    executor = RayExecutor(gpu="never")
    list(executor.execute(DeviceProbe(str(tmp_path)), CountingTasks(4)))
    assert set(devices(tmp_path)) == {"cpu"}
    assert executor.stats.extra["gpu_actors"] == 0


def test_gpu_only_without_a_free_gpu_fails_the_run(tmp_path: Path) -> None:
    executor = RayExecutor(gpu="only", gpus_per_actor=2)  # the cluster has one
    with pytest.raises(TaskFailed, match="no GPU is free"):
        list(executor.execute(DeviceProbe(str(tmp_path)), CountingTasks(2)))


def test_the_engine_scores_on_gpu_and_cpu_actors_alike(model_file: Path, tmp_path: Path) -> None:
    """The GPU actor compiles the CUDA kernel (simulated), the CPU actor the Numba one; the
    sink holds every row once, with the scores of the local executor.

    The free pool pulls the next task, and the GPU actor is ready last (it imports the
    simulator and builds a CUDA kernel): the job has 192 tasks of 16 rows, not 24, so that
    the CPU actor cannot drain them all first (with 24 it once did, on a slow machine)."""
    lake = write_lake(tmp_path / "lake", row_group_rows=16)  # 3,000 rows, 192 row groups
    local = engine.score(model_file, lake, tmp_path / "local", id_column=ID, task_rows=16)
    spec = JobSpec(
        model=str(model_file),
        source=str(lake),
        sink=str(tmp_path / "ray"),
        id_column=ID,
        cluster="ray",
        task_rows=16,
    )
    result = run_job(spec, executor=RayExecutor(gpu="auto", gpu_env=SIMULATOR), progress=False)
    by_backend = result.record["tasks_by_backend"]
    assert sum(by_backend.values()) == 192
    assert by_backend.get("cuda", 0) >= 1 and by_backend.get("numba", 0) >= 1, by_backend
    ray_scores, local_scores = (
        scores_by_id(read_sink(tmp_path / "ray")),
        scores_by_id(read_sink(tmp_path / "local")),
    )
    assert ray_scores.keys() == local_scores.keys() and len(ray_scores) == local.rows_scored
    ids = sorted(local_scores)
    np.testing.assert_allclose(
        [ray_scores[i] for i in ids], [local_scores[i] for i in ids], rtol=0, atol=1e-6
    )

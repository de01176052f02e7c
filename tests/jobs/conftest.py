"""Fixtures of the engine tests: a small model, a small lake, the CLI in a subprocess.

The data and model are made by :mod:`scoring_helpers` from fixed seeds, once per session.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from s3_helpers import bucket, s3_endpoint, s3_env, s3_lake  # noqa: F401 (fixtures, shared)
from scoring_helpers import ID, read_source, run_cli, train_model, write_lake
from variant_helpers import challenger_file, registry_root  # noqa: F401 (fixtures, shared)


@pytest.fixture(scope="session")
def engine_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engine-data")


@pytest.fixture(scope="session")
def model_file(engine_data: Path) -> Path:
    """A binary:logistic XGBoost model (20 trees, depth 4) over named features, JSON."""
    path = engine_data / "churn.json"
    train_model(path)
    return path


@pytest.fixture(scope="session")
def lake(engine_data: Path) -> Path:
    """3 regions x 2 files x 500 rows, row groups of 128 rows, ids 0..2999, some nulls."""
    return write_lake(engine_data / "lake")


@pytest.fixture(scope="session")
def lake_table(lake: Path) -> pa.Table:
    return read_source(lake)


@pytest.fixture(scope="session")
def kernel_warm(model_file: Path, lake: Path, engine_data: Path) -> None:
    """Score once in this process so Numba's on-disk cache is warm for the subprocesses."""
    from engine import score

    score(model_file, lake, engine_data / "warm-sink", id_column=ID)


@pytest.fixture
def cli(kernel_warm: None) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli(*args, cwd=None)``: run ``lakescore ARGS`` in a subprocess, stdin not a TTY."""
    return run_cli


@pytest.fixture
def copy_lake(lake: Path, tmp_path: Path) -> Callable[..., Path]:
    """``copy_lake(name)``: a fresh, writable copy of the small lake under ``tmp_path``."""

    def make(name: str = "lake") -> Path:
        dest = tmp_path / name
        shutil.copytree(lake, dest)
        return dest

    return make


@pytest.fixture(scope="module")
def local_ray(private_model_cache: Path) -> Iterator[str]:
    """A private 2-CPU Ray for the module that asks for it (its workers see the session's
    model cache); yields its address."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 2**20,
        logging_level=logging.WARNING,
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()

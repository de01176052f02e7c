"""S3 on moto's server (a real S3 API on 127.0.0.1), shared by the object-storage tests.

The server runs once per session in a process of its own; each test gets the AWS
environment of a user of an S3-compatible store (``s3_env``) and a fresh bucket.
tests/jobs/conftest.py imports the fixtures, so every test module of the folder sees them.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyarrow import fs

SECRET = "s3cr3t-never-logged"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server in a process of its own (deltalake holds the GIL while it waits
    on some requests, which would starve a server thread in this process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail("moto_server did not start")
    yield endpoint
    server.terminate()
    server.wait(30)
    log.close()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch, tmp_path: Path) -> str:
    """The AWS environment of a user of an S3-compatible store (also seen by the CLI)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lakescore-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("LAKESCORE_STATE_DIR", str(tmp_path / "state"))
    return s3_endpoint


def s3fs(endpoint: str) -> fs.S3FileSystem:
    return fs.S3FileSystem(endpoint_override=endpoint.split("://")[1], scheme="http",
                           region="us-east-1", allow_bucket_creation=True)  # fmt: skip


@pytest.fixture
def bucket(s3_env: str, request) -> str:
    """A fresh, empty bucket (``s3_lake`` puts the small lake and the model in it)."""
    name = "b" + str(abs(hash(request.node.nodeid)))[:12]
    s3 = s3fs(s3_env)
    s3.create_dir(name)
    return name


def upload(s3_env: str, local: Path, uri_key: str) -> None:
    fs.copy_files(str(local), uri_key, source_filesystem=fs.LocalFileSystem(),
                  destination_filesystem=s3fs(s3_env))  # fmt: skip


def storage_options(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}


@pytest.fixture
def s3_lake(bucket: str, s3_env: str, lake: Path, model_file: Path) -> tuple[str, str]:
    upload(s3_env, lake, f"{bucket}/lake")
    upload(s3_env, model_file, f"{bucket}/models/churn.json")
    return f"s3://{bucket}/lake", f"s3://{bucket}/models/churn.json"


def read_delta(uri: str, endpoint: str) -> pa.Table:
    return DeltaTable(uri, storage_options=storage_options(endpoint)).to_pyarrow_table()

"""The agreement suite's fixtures (the ``zoo`` of registry models is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="package", autouse=True)
def one_native_thread() -> Iterator[None]:
    """Native libraries predict with one OpenMP/BLAS thread: on a busy 2-core machine
    thread start-up costs far more than scoring a few hundred rows. Package-scoped: the
    limit is lifted before the tests outside this package run."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield

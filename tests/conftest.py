"""Shared fixtures.

The model registry (``tests/agreement/registry.py``) is trained, saved, loaded and
compiled lazily, once per session, through the ``zoo`` fixture.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from agreement.registry import Zoo


@pytest.fixture(scope="session", autouse=True)
def private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep the on-disk model cache of the whole session (and of the CLI processes it
    starts) out of the user's home, so no test reads an entry another run left behind."""
    root = tmp_path_factory.mktemp("lakescore-cache")
    os.environ["LAKESCORE_CACHE_DIR"] = str(root)
    return root


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Zoo:
    """Every registry model, trained from its seed and saved in each of its formats on
    first use."""
    return Zoo(tmp_path_factory.mktemp("models"))

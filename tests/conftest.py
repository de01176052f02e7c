"""Shared fixtures.

Kernel test models (``tests/models.py``): trained, saved and compiled once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import models
import pytest

import kernels


@pytest.fixture(scope="session", autouse=True)
def private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep the on-disk model cache of the whole session (and of the CLI processes it
    starts) out of the user's home, so no test reads an entry another run left behind."""
    root = tmp_path_factory.mktemp("lakescore-cache")
    os.environ["LAKESCORE_CACHE_DIR"] = str(root)
    return root


# --- kernel test models ------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding every registry model as ``<name>.json`` and ``<name>.ubj``."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def trained_models(model_dir: Path) -> dict[str, models.TrainedModel]:
    """Every registry model, trained from its seed and saved in both formats, by name."""
    return models.train_all(model_dir)


@pytest.fixture(scope="session")
def loaded_forests(
    trained_models: dict[str, models.TrainedModel],
) -> dict[tuple[str, str], kernels.Forest]:
    """``kernels.load_model`` of every registry model file, by ``(name, format)``."""
    return {
        (name, fmt): kernels.load_model(model.path(fmt))
        for name, model in trained_models.items()
        for fmt in models.FORMATS
    }


@pytest.fixture(scope="session")
def compiled_kernels(
    loaded_forests: dict[tuple[str, str], kernels.Forest],
) -> dict[tuple[str, str], kernels.Kernel]:
    """Every registry model compiled with ``backend="numba"``, by ``(name, format)``."""
    return {
        key: kernels.compile_model(forest, backend="numba")
        for key, forest in loaded_forests.items()
    }

"""The on-disk model cache: a hit skips parsing, damage is rebuilt, processes may race."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

import kernels
from kernels.cache import ModelCache
from kernels.loaders import forget_recent_forests


@pytest.fixture()
def model_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "seed": 0}, xgb.DMatrix(X, y), 15
    )
    path = tmp_path / "model.json"
    booster.save_model(path)
    return path


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("LAKESCORE_CACHE_DIR", str(root))
    monkeypatch.delenv("LAKESCORE_CACHE", raising=False)
    forget_recent_forests()  # a fresh cache: nothing loaded in memory either
    return root


def _same(a: kernels.Forest, b: kernels.Forest) -> None:
    assert a.fingerprint() == b.fingerprint()
    assert a.sha256 == b.sha256
    assert (a.feature_names, a.objective, a.link, a.num_features) == (
        b.feature_names,
        b.objective,
        b.link,
        b.num_features,
    )


def test_second_load_is_a_cache_hit_that_skips_parsing(model_file, cache_dir, monkeypatch):
    first = kernels.load_model(model_file)
    assert ModelCache(cache_dir).path_for(first.sha256).exists()

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cached load parsed the file")

    monkeypatch.setattr("kernels.loaders.xgboost.load_xgboost_json", no_parsing)
    second = kernels.load_model(model_file)
    _same(first, second)


def test_a_process_keeps_the_forests_it_loaded(model_file, cache_dir):
    """A second load of the same bytes in one process is served from memory (the disk
    entry is not read again); new bytes are a new forest; without the cache, neither."""
    first = kernels.load_model(model_file)
    ModelCache(cache_dir).path_for(first.sha256).unlink()
    assert kernels.load_model(model_file) is first
    assert not ModelCache(cache_dir).path_for(first.sha256).exists()
    assert not first.threshold.flags.writeable  # shared, so immutable

    model_file.write_text(model_file.read_text().replace('"learner"', '"learner" ', 1))
    changed = kernels.load_model(model_file)
    assert changed is not first and changed.sha256 != first.sha256
    assert kernels.load_model(model_file, cache=False) is not changed


def test_changed_file_is_not_served_from_cache(model_file, cache_dir):
    first = kernels.load_model(model_file)
    text = model_file.read_text().replace('"learner"', '"learner" ', 1)  # same model, new bytes
    model_file.write_text(text)
    second = kernels.load_model(model_file)
    assert second.sha256 != first.sha256
    assert second.fingerprint() == first.fingerprint()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_entry_is_rebuilt_not_trusted(model_file, cache_dir, damage, caplog):
    good = kernels.load_model(model_file)
    entry = ModelCache(cache_dir).path_for(good.sha256)
    data = bytearray(entry.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        for i in range(200, len(data), 997):  # inside the stored arrays
            data[i] ^= 0xFF
    else:
        data = bytearray(b"not a zip file" * 10)
    entry.write_bytes(bytes(data))
    forget_recent_forests()  # as a new process would
    again = kernels.load_model(model_file)
    _same(good, again)
    assert "corrupt model cache entry" in caplog.text
    assert ModelCache(cache_dir).get(good.sha256) is not None  # rewritten whole


def test_cache_can_be_disabled(model_file, cache_dir, monkeypatch):
    monkeypatch.setenv("LAKESCORE_CACHE", "0")
    kernels.load_model(model_file)
    assert not cache_dir.exists()


def test_unwritable_cache_dir_does_not_stop_loading(model_file, tmp_path, monkeypatch):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("LAKESCORE_CACHE_DIR", str(blocker))
    forest = kernels.load_model(model_file)
    assert forest.num_trees == 15


def _load_in_child(path: str, cache: str, out: mp.Queue) -> None:
    import os

    os.environ["LAKESCORE_CACHE_DIR"] = cache
    forest = kernels.load_model(path)
    out.put(forest.fingerprint())


def test_processes_racing_on_one_entry_all_get_the_model(model_file, cache_dir):
    expected = kernels.load_model(model_file, cache=False).fingerprint()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_load_in_child, args=(str(model_file), str(cache_dir), queue))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results == [expected] * 4
    entries = list((cache_dir / "models").iterdir())
    assert [e.name for e in entries] == [
        ModelCache(cache_dir).path_for(kernels.load_model(model_file).sha256).name
    ]

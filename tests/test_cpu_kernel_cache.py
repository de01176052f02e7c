"""The compiled CPU kernels' cache: a warm entry scores without Numba, damage is rebuilt."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numba import carray

from kernels import _cpu_native
from kernels.cache import LibraryCache


@pytest.fixture()
def cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("LAKESCORE_CACHE_DIR", str(root))
    monkeypatch.delenv("LAKESCORE_CACHE", raising=False)
    _cpu_native.kernel_function.cache_clear()
    yield root
    _cpu_native.kernel_function.cache_clear()


def _entries(root: Path) -> list[Path]:
    return sorted((root / "kernels").glob("*.o"))


def _score_reference(function) -> np.ndarray:
    """One tree, ``x0 < 0.5`` -> 1.0 else 2.0 (NaN left), through the reference kernel."""
    X = np.array([[0.0], [1.0], [np.nan]], dtype=np.float32)
    out = np.empty((3, 1))
    feature = np.array([0, -1, -1], np.int32)
    threshold = np.array([0.5, 0, 0], np.float32)
    left = np.array([1, -1, -1], np.int32)
    right = np.array([2, -1, -1], np.int32)
    default_left = np.array([1, 0, 0], np.uint8)
    value = np.array([0.0, 1.0, 2.0])
    offsets = np.array([0, 3], np.int64)
    group = np.zeros(1, np.int64)
    zeros8 = np.zeros(3, np.uint8)
    zeros32 = np.zeros(3, np.int32)
    bits = np.zeros(1, np.uint32)
    base = np.zeros(1)
    arrays = (X, feature, threshold, left, right, default_left, value, offsets, group,
              zeros8, zeros8, zeros32, zeros32, bits, base, out)  # fmt: skip
    a = [arr.ctypes.data for arr in arrays]
    function(a[0], 3, 1, 1, 3, 0, 3, *a[1:7], 3, a[7], 1, a[8], *a[9:14], 0, a[14], 1, a[15])
    return out[:, 0]


def test_entry_is_compiled_once_then_loaded(cache_root):
    function = _cpu_native.kernel_function("reference")
    np.testing.assert_array_equal(_score_reference(function), [1.0, 2.0, 1.0])
    [entry] = _entries(cache_root)
    _cpu_native.kernel_function.cache_clear()
    np.testing.assert_array_equal(
        _score_reference(_cpu_native.kernel_function("reference")), [1.0, 2.0, 1.0]
    )
    assert _entries(cache_root) == [entry]


@pytest.mark.parametrize("damage", ["truncated", "not-an-object"])
def test_damaged_entry_is_rebuilt_not_trusted(cache_root, damage, caplog):
    _cpu_native.kernel_function("reference")
    [entry] = _entries(cache_root)
    if damage == "truncated":  # the digest in the entry no longer matches
        entry.write_bytes(entry.read_bytes()[:100])
    else:  # a consistent entry whose library is no object llvmlite can link
        meta = json.loads(next((cache_root / "kernels").glob("*.json")).read_text())
        bogus = cache_root / "bogus.o"
        bogus.write_bytes(b"\x7fELF not really")
        entry.unlink()
        key = Path(meta["library"]).name.split("-")[0]
        LibraryCache(cache_root).put(key, bogus)
    _cpu_native.kernel_function.cache_clear()
    np.testing.assert_array_equal(
        _score_reference(_cpu_native.kernel_function("reference")), [1.0, 2.0, 1.0]
    )
    assert "discarding" in caplog.text
    [rebuilt] = _entries(cache_root)
    assert rebuilt.stat().st_size > 1000


@pytest.mark.slow
def test_warm_cache_scores_without_importing_numba(tmp_path):
    """A process that finds its kernel in the cache maps it with llvmlite alone: Numba's
    start-up (about 0.6 CPU s) is what kept a cached kernel above 0.5 s."""
    child = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        from kernels.ir import Forest
        import kernels
        forest = Forest(
            feature=np.array([0, -1, -1], np.int32), threshold=np.array([0.5, 0, 0], np.float32),
            left=np.array([1, -1, -1], np.int32), right=np.array([2, -1, -1], np.int32),
            default_left=np.array([1, 0, 0], np.uint8), value=np.array([0.0, 1.0, 2.0]),
            tree_offsets=np.array([0, 3], np.int64), tree_group=np.zeros(1, np.int32),
            base_margin=np.zeros(1), link="identity", num_features=1, feature_names=("x",),
            objective="reg", source_format="test",
        )
        kernel = kernels.compile_model(forest, backend="numba")
        got = kernel.predict(np.array([[0.0], [1.0], [np.nan]], np.float32)).tolist()
        print(json.dumps({"got": got, "numba": "numba" in sys.modules, "layout": kernel.layout}))
        """
    )
    env = {"LAKESCORE_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", child], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(2)
    ]
    assert [r["got"] for r in runs] == [[1.0, 2.0, 1.0]] * 2
    assert runs[0]["layout"] == "perfect"
    assert runs[0]["numba"] is True  # the first process compiled the kernel
    assert runs[1]["numba"] is False


def _ldexp_wrapper(x, n):  # math.ldexp lowers to a call of Numba's numba_ldexp helper
    v = carray(x, (n,))
    v[0] = math.ldexp(v[0], 3)


def test_an_object_that_calls_a_numba_helper_is_refused(cache_root):
    """Such a helper resolves to nothing in a process that loads the object without
    Numba, and calling it there crashed the process (a segfault, seen): refused by name
    when the object is linked, whether it was just compiled or read from the cache."""
    from kernels import native, native_build

    data = native_build.compile_object(_ldexp_wrapper, ("f64*", "i64"))
    with pytest.raises(ValueError, match="numba_ldexp"):
        native.cached_function("ldexp-test", ("f64*", "i64"), "k", lambda: data)
    assert _entries(cache_root) == []  # nothing cached

"""Model files -> :class:`~kernels.ir.Forest`, one module per format.

Each format's loader is a function ``bytes -> Forest`` in its own module, imported only
when a file of that format is loaded (so scoring an XGBoost model never imports sklearn).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from kernels.cache import ModelCache, RecentValues, cache_enabled
from kernels.errors import KernelError, ModelFormatError, UntrustedModelError
from kernels.ir import Forest

__all__ = ["FORMATS", "detect_format", "load_model"]

#: format -> (module, function) of its loader.
FORMATS: dict[str, tuple[str, str]] = {
    "xgboost-json": ("kernels.loaders.xgboost", "load_xgboost_json"),
    "xgboost-ubj": ("kernels.loaders.xgboost", "load_xgboost_ubj"),
    "lightgbm-text": ("kernels.loaders.lightgbm", "load_lightgbm_text"),
    "skops": ("kernels.loaders.sklearn", "load_skops"),
    "pickle": ("kernels.loaders.sklearn", "load_pickle"),
    "treelite": ("kernels.loaders.treelite", "load_treelite_checkpoint"),
}

#: Forests this process loaded, by file sha256 (a Forest is immutable: its arrays are
#: read-only). A process that loads the same model again, a backfill scoring one date
#: after another or a standing worker, skips the disk cache's read and digest check
#: (0.013-0.025 s of the reference model, before any task can start).
_recent: RecentValues[Forest] = RecentValues(4)


def forget_recent_forests() -> None:
    """Empty this process's memory of loaded forests (the disk cache stays)."""
    _recent.clear()


#: Formats whose loading runs code from the file: refused unless the caller trusts it.
UNSAFE_FORMATS = frozenset({"pickle"})


def detect_format(data: bytes, name: str = "") -> str:
    """Name the model format from the file's first bytes (the extension is only a hint)."""
    # treelite checkpoint: int32 version 3.x/4.x (little-endian), then threshold and leaf
    # types (uint32 1, float32 2, float64 3)
    if (
        data[:4] in (b"\x03\0\0\0", b"\x04\0\0\0")
        and data[5:8] == data[9:12] == b"\0\0\0"
        and data[4:5] < b"d"
        and data[8:9] < b"d"
        and data[12:13] in (b"\x02", b"\x03")
        and data[13:14] in (b"\x01", b"\x02", b"\x03")
    ):
        return "treelite"
    head = data[:64].lstrip()
    if head.startswith(b"{"):
        second = head[1:].lstrip()[:1]
        if second in (b'"', b"}"):
            return "xgboost-json"
        return "xgboost-ubj"
    if head.startswith(b"\x80") or name.endswith((".pkl", ".pickle", ".joblib")):
        return "pickle"
    if head.startswith(b"PK\x03\x04") and name.endswith(".skops"):
        return "skops"
    if head.startswith((b"tree\n", b"tree\r\n")):
        return "lightgbm-text"
    return "unknown"


def _loader(fmt: str) -> Callable[[bytes], Forest]:
    module, function = FORMATS[fmt]
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        raise ModelFormatError(f"{fmt} models are not supported by this build") from None


def load_model(
    path: str | Path | object, *, trust_pickle: bool = False, cache: bool | None = None
) -> Forest:
    """Load a model file (or a fitted model object) into the IR.

    Parameters
    ----------
    path
        XGBoost JSON or UBJSON (``Booster.save_model``), LightGBM text, scikit-learn as
        skops, or (only with ``trust_pickle``) a pickle/joblib file. A fitted model object
        in memory is accepted too: an ``xgboost.Booster`` or sklearn wrapper, a
        ``lightgbm.Booster`` or ``LGBMModel``, a scikit-learn estimator or pipeline.
    trust_pickle
        Allow unpickling, which runs code from the file: only for files you trust.
    cache
        Keep the parsed arrays on disk by the file's sha256 (see :mod:`kernels.cache`),
        and the last few forests in this process's memory; default on unless
        ``LAKESCORE_CACHE=0``.

    Raises
    ------
    ModelFormatError
        The file is missing, unreadable or of an unknown format.
    UnsupportedModelError
        The format is known but the model uses something lakescore cannot score.
    UntrustedModelError
        The file is a pickle and ``trust_pickle`` was not given.
    """
    if not isinstance(path, (str, os.PathLike)):
        from kernels.loaders.sklearn import forest_from_object

        return forest_from_object(path)
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFormatError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelFormatError(f"model path is a directory: {path}") from None
    except OSError as exc:
        raise ModelFormatError(f"cannot read model file {path}: {exc.strerror}") from None
    fmt = detect_format(data, path.name)
    if fmt == "unknown":
        raise ModelFormatError(
            f"{path}: unknown model format (expected XGBoost JSON/UBJSON, LightGBM text, "
            "scikit-learn skops or pickle, or a treelite checkpoint)"
        )
    # Checked before the cache: a cached copy of a pickle is still a pickle to the user.
    if fmt in UNSAFE_FORMATS and not trust_pickle:
        raise UntrustedModelError(
            f"{path}: refusing to unpickle an untrusted file (pickles can run arbitrary code); "
            "pass --trust-pickle / trust_pickle=True if you trust it, or save it with skops"
        )
    sha256 = hashlib.sha256(data).hexdigest()
    use_cache = cache_enabled() if cache is None else cache
    if use_cache and (recent := _recent.get(sha256)) is not None:
        return recent
    store = ModelCache() if use_cache else None
    if store is not None and (cached := store.get(sha256)) is not None:
        return _recent.put(sha256, cached)
    try:
        forest = _loader(fmt)(data)
    except KernelError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    except (RecursionError, OverflowError) as exc:
        # Nesting too deep to parse, or a number too large for its field: a damaged file
        # whatever the format, so the guard sits here rather than in every loader.
        what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ModelFormatError(f"{path}: malformed {fmt} model ({what})") from None
    forest = replace(forest, sha256=sha256)
    if store is not None:
        store.put(forest)
        _recent.put(sha256, forest)
    return forest

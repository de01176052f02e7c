"""Model files -> :class:`~kernels.ir.Forest`, one module per format."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from kernels.cache import ModelCache, cache_enabled
from kernels.errors import KernelError, ModelFormatError
from kernels.ir import Forest
from kernels.loaders.xgboost import load_xgboost

__all__ = ["detect_format", "load_model"]


def detect_format(data: bytes, name: str = "") -> str:
    """Name the model format from the file's first bytes (the extension is only a hint)."""
    head = data[:64].lstrip()
    if head.startswith(b"{"):
        second = head[1:].lstrip()[:1]
        if second in (b'"', b"}"):
            return "xgboost-json"
        return "xgboost-ubj"
    if head.startswith(b"\x80") or name.endswith((".pkl", ".pickle", ".joblib")):
        return "pickle"
    if head.startswith(b"tree\n") or head.startswith(b"tree\r\n"):
        return "lightgbm-text"
    return "unknown"


def load_model(path: str | Path, *, cache: bool | None = None) -> Forest:
    """Load a model file into the IR.

    Supported: XGBoost JSON and UBJSON (``Booster.save_model``). With ``cache`` (the
    default unless ``LAKESCORE_CACHE=0``) the parsed arrays are kept on disk by the file's
    sha256 (see :mod:`kernels.cache`), so loading the same file again skips parsing.

    Raises
    ------
    ModelFormatError
        The file is missing, unreadable or of an unknown format.
    UnsupportedModelError
        The format is known but the model uses something lakescore cannot score.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFormatError(f"model file not found: {path}") from None
    except OSError as exc:
        raise ModelFormatError(f"cannot read model file {path}: {exc.strerror}") from None
    sha256 = hashlib.sha256(data).hexdigest()
    store = ModelCache() if (cache_enabled() if cache is None else cache) else None
    if store is not None and (cached := store.get(sha256)) is not None:
        return cached
    fmt = detect_format(data, path.name)
    if fmt in ("xgboost-json", "xgboost-ubj"):
        try:
            forest = load_xgboost(data, ubjson=fmt == "xgboost-ubj")
        except KernelError as exc:
            raise type(exc)(f"{path}: {exc}") from None
    elif fmt == "pickle":
        raise ModelFormatError(f"{path}: pickled models are not supported yet")
    elif fmt == "lightgbm-text":
        raise ModelFormatError(f"{path}: LightGBM models are not supported yet")
    else:
        raise ModelFormatError(f"{path}: unknown model format (expected XGBoost JSON or UBJSON)")
    forest = replace(forest, sha256=sha256)
    if store is not None:
        store.put(forest)
    return forest

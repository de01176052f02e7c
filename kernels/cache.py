"""An on-disk cache of loaded models: model file bytes -> :class:`~kernels.ir.Forest` arrays.

Parsing a large model file (a 500-tree XGBoost JSON is 13 MB) takes seconds; loading its
arrays from an ``.npz`` takes milliseconds. Entries are keyed by the file's sha256 and the
IR format version, so a changed file or a new lakescore never reads a stale entry. The
compiled machine code itself is cached by Numba (``cache=True``), keyed by CPU and source.

Concurrent processes are safe: an entry is written aside and renamed into place, and two
writers of one key write the same bytes. An entry that fails to load or whose content
digest does not match is deleted and rebuilt, never trusted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from pathlib import Path

import numpy as np

from kernels.ir import ARRAY_FIELDS, Forest

log = logging.getLogger("lakescore.kernels.cache")

#: Bump when the IR's meaning changes (a new field, a different layout of an array).
IR_VERSION = 5


def default_cache_dir() -> Path:
    env = os.environ.get("LAKESCORE_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lakescore"


def cache_enabled() -> bool:
    return os.environ.get("LAKESCORE_CACHE", "1") not in ("0", "false", "off")


class ModelCache:
    """Forests by model sha256, under ``<root>/models/``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_cache_dir()) / "models"

    def path_for(self, sha256: str) -> Path:
        return self.root / f"{sha256}-ir{IR_VERSION}.npz"

    def get(self, sha256: str) -> Forest | None:
        path = self.path_for(sha256)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(bytes(npz["meta"]).decode())
                arrays = {name: np.array(npz[name]) for name in ARRAY_FIELDS}
            forest = Forest(
                **arrays,
                link=meta["link"],
                num_features=int(meta["num_features"]),
                feature_names=tuple(meta["feature_names"]),
                objective=meta["objective"],
                source_format=meta["source_format"],
                sha256=sha256,
                metadata=dict(meta["metadata"]),
                link_scale=float(meta.get("link_scale", 1.0)),
            )
            if forest.fingerprint() != meta["fingerprint"]:
                raise ValueError("content digest mismatch")
        except Exception as exc:
            log.warning("discarding corrupt model cache entry %s (%s)", path, exc)
            path.unlink(missing_ok=True)
            return None
        return forest

    def put(self, forest: Forest) -> None:
        if not forest.sha256:
            return
        meta = {
            "link": forest.link,
            "num_features": forest.num_features,
            "feature_names": list(forest.feature_names),
            "objective": forest.objective,
            "source_format": forest.source_format,
            "metadata": forest.metadata,
            "link_scale": forest.link_scale,
            "fingerprint": forest.fingerprint(),
        }
        path = self.path_for(forest.sha256)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                    **{name: getattr(forest, name) for name in ARRAY_FIELDS},
                )
            os.replace(tmp, path)
        except OSError as exc:  # a read-only home must not stop scoring
            log.warning("cannot write model cache entry %s (%s)", path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()

"""Which kernel backends can run here, and how long each takes to compile.

The candidates are what ``kernels.available_backends()`` names where that exists, else
``numba`` plus ``cuda`` when ``numba.cuda.is_available()`` (never the CUDA simulator,
whose speed means nothing). A candidate is then compiled and run on one row: a backend
that fails is reported as unavailable with the reason, never a crash.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import kernels

log = logging.getLogger("lakescore.bench")

#: Every backend a report mentions, available or not.
KNOWN_BACKENDS = ("numba", "tl2cgen", "cuda")
#: A compile that takes longer is reported as failed (tl2cgen compiles C: minutes).
COMPILE_TIMEOUT_S = 900


@dataclass
class BackendStatus:
    name: str
    available: bool
    reason: str | None = None
    kernel: kernels.Kernel | None = None

    def to_dict(self) -> dict[str, Any]:
        k = self.kernel
        return {
            "name": self.name,
            "available": self.available,
            "reason": self.reason,
            "layout": k.layout if k is not None else None,
            "kernel_bytes": k.memory_bytes if k is not None else None,
        }


def _cuda_usable() -> tuple[bool, str | None]:
    import numba

    if numba.config.ENABLE_CUDASIM:
        return False, "Numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): not a measurement"
    try:
        from numba import cuda
    except ImportError as exc:
        return False, f"numba.cuda cannot be imported ({exc})"
    if not cuda.is_available():
        return False, "no usable GPU (numba.cuda.is_available() is False)"
    return True, None


def candidate_backends() -> dict[str, str | None]:
    """Backend name -> None when it should be tried here, else why it is not."""
    listed = getattr(kernels, "available_backends", None)
    out: dict[str, str | None] = {}
    if callable(listed):
        names = [b for b in listed() if b != "auto"]
        for b in names:
            out[b] = None
        for b in KNOWN_BACKENDS:
            out.setdefault(b, "not available here (kernels.available_backends())")
        if out.get("cuda") is None:  # a simulator would be listed: its speed means nothing
            ok, why = _cuda_usable()
            out["cuda"] = None if ok else why
        return out
    out["numba"] = None
    ok, why = _cuda_usable()
    out["cuda"] = None if ok else why
    out["tl2cgen"] = "not offered by this build of kernels (no available_backends())"
    return out


def discover(forest: kernels.Forest, wanted: list[str] | None = None) -> list[BackendStatus]:
    """Every known backend (or only ``wanted``), compiled and run on one row where possible."""
    candidates = candidate_backends()
    names = wanted or list(dict.fromkeys([*KNOWN_BACKENDS, *candidates]))
    out = []
    probe = np.zeros((1, forest.num_features), dtype=np.float32)
    for name in names:
        reason = candidates.get(name, "unknown backend")
        if reason is not None:
            out.append(BackendStatus(name, False, reason))
            continue
        try:
            kernel = kernels.compile_model(forest, backend=name)
            kernel.predict(probe)
        except Exception as exc:  # any failure of one backend is a finding, not a crash
            out.append(BackendStatus(name, False, f"{type(exc).__name__}: {_one_line(exc)}"))
            continue
        out.append(BackendStatus(name, True, None, kernel))
    return out


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


# A fresh interpreter: imports first (not part of compiling), then load + compile + first
# predict, which is where Numba and CUDA compile lazily.
_CHILD = """
import json, resource, sys, time
import numpy as np
import kernels
path, backend, trust = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
t0 = time.perf_counter()
forest = kernels.load_model(path, trust_pickle=trust)
t1 = time.perf_counter()
kernel = kernels.compile_model(forest, backend=backend)
kernel.predict(np.zeros((1, forest.num_features), dtype=np.float32))
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t0, "load_seconds": t1 - t0,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _compile_child(
    model: Path, backend: str, trust_pickle: bool, env: dict[str, str]
) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(model), backend, "1" if trust_pickle else "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=COMPILE_TIMEOUT_S,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"compile in a fresh process failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compile_times(
    model: Path, backend: str, *, trust_pickle: bool = False, cold: bool = True
) -> dict[str, Any]:
    """Seconds to load, compile and score one row in a fresh process: ``cold`` with empty
    model and Numba caches, then ``cached`` with the caches that run left behind.

    Without ``cold`` only the cached figure is taken, from this user's own caches.
    """
    result: dict[str, Any] = {
        "backend": backend,
        "cold_seconds": None,
        "cached_seconds": None,
        "load_seconds_cached": None,
        "peak_rss_mib": None,
        "reason": None,
    }
    env = dict(os.environ)
    try:
        with tempfile.TemporaryDirectory(prefix="lakescore-bench-compile-") as tmp:
            if cold:
                env["LAKESCORE_CACHE_DIR"] = str(Path(tmp) / "models")
                env["NUMBA_CACHE_DIR"] = str(Path(tmp) / "numba")
                first = _compile_child(model, backend, trust_pickle, env)
                result["cold_seconds"] = first["seconds"]
                result["peak_rss_mib"] = first["peak_rss_mib"]
            else:
                result["reason"] = "cold compile skipped (--quick)"
            second = _compile_child(model, backend, trust_pickle, env)
            result["cached_seconds"] = second["seconds"]
            result["load_seconds_cached"] = second["load_seconds"]
            result["peak_rss_mib"] = max(result["peak_rss_mib"] or 0.0, second["peak_rss_mib"])
    except (RuntimeError, subprocess.TimeoutExpired, ValueError, OSError) as exc:
        result["reason"] = _one_line(exc)
        log.warning("compile time for %s not measured: %s", backend, result["reason"])
    return result

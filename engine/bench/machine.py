"""What the figures were measured on: the machine, and the versions of what ran."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
from pathlib import Path
from typing import Any

#: Distributions whose versions bench.json records (None where not installed).
PACKAGES = {
    "lakescore": "lakescore",
    "numpy": "numpy",
    "numba": "numba",
    "numba_cuda": "numba-cuda",
    "pyarrow": "pyarrow",
    "ray": "ray",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "sklearn": "scikit-learn",
    "treelite": "treelite",
    "tl2cgen": "tl2cgen",
}


def usable_cores() -> int:
    """CPUs this process may run on (a container's or taskset's limit, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def peak_rss_mib() -> float:
    """This process's resident high-water mark so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def describe_machine(gpu: str | None) -> dict[str, Any]:
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cores": usable_cores(),
        "logical_cpus": os.cpu_count() or 1,
        "memory_bytes": memory_bytes(),
        "os": platform.platform(),
        "gpu": gpu,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in PACKAGES.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = None
    return out

"""Model file -> ready kernel (first predict done), timed by phase in a fresh process.

``python benchmarks/compile_time.py MODEL [--backend numba] [--cache-dir DIR]`` prints one
JSON object: the seconds of each phase, measured in this process from its start:

- ``import``: ``import kernels`` (numpy; Numba is imported only to compile a kernel);
- ``load``: ``kernels.load_model`` (parse the file, or read the model cache);
- ``compile``: ``kernels.compile_model`` (layout; a TL2cgen build or cached library);
- ``first_predict``: the first ``predict`` of one row (the numba backend compiles its kernel
  with Numba here, or maps the compiled object from the kernel cache with llvmlite);
- ``total``: their sum; ``wall``: the child process's whole life, interpreter included;
- ``cpu_<phase>``: the process's CPU seconds in each phase (all threads), which a busy
  machine inflates far less than wall seconds.

``--cache-dir`` points the caches (``LAKESCORE_CACHE_DIR``: models and compiled kernels;
``NUMBA_CACHE_DIR``) at one folder: empty for a cold start, as left by a previous run for
a cached one. Used by ``test_compile_time.py``; run it by hand to profile (``-X
importtime``, ``cProfile``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def measure(model: str, backend: str) -> dict[str, float]:
    started, cpu_started = time.perf_counter(), time.process_time()
    marks: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = time.perf_counter() - started - sum(marks.values())
        cpu[name] = time.process_time() - cpu_started - sum(cpu.values())

    import numpy as np

    import kernels

    mark("import")
    forest = kernels.load_model(model, trust_pickle=True)
    mark("load")
    kernel = kernels.compile_model(forest, backend=backend)
    mark("compile")
    kernel.predict(np.zeros((1, forest.num_features), dtype=np.float32))
    mark("first_predict")
    marks["total"] = sum(marks.values())
    marks.update({f"cpu_{name}": seconds for name, seconds in cpu.items()})
    marks["cpu_total"] = sum(cpu.values())
    marks["numba_imported"] = float("numba" in sys.modules)
    return marks


def run_fresh(model: str | Path, backend: str, cache_dir: Path) -> dict[str, float]:
    """Measure in a new interpreter whose caches live in ``cache_dir``; adds ``wall``."""
    env = dict(os.environ)
    env["LAKESCORE_CACHE_DIR"] = str(cache_dir)
    env["NUMBA_CACHE_DIR"] = str(cache_dir / "numba")
    env.pop("LAKESCORE_CACHE", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, str(model), "--backend", backend, "--child"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    wall = time.perf_counter() - start
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.model, args.backend)))
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or Path(tmp)
        cold = run_fresh(args.model, args.backend, cache)
        cached = run_fresh(args.model, args.backend, cache)
    print(json.dumps({"cold": cold, "cached": cached}, indent=2))


if __name__ == "__main__":
    main()

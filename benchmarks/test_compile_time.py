"""Model file -> ready kernel (first prediction done) in a fresh process, by phase.

Each measurement runs ``compile_time.py`` in a new interpreter (see its docstring for the
phases) with its own cache folder:

- ``empty``: no model cache and no kernel cache: a first run on a new machine (Numba
  compiles the kernel: seconds of typing and LLVM);
- ``kernel warm``: the kernel cache holds the compiled kernel (any model compiled it: the
  machine code does not depend on the model) but the model is new: parse, layout, load;
- ``all warm``: the model cache holds the parsed model too: a repeated run.

DESIGN targets for the reference model: <= 5 s cold, <= 0.5 s from the cache.
"""

from __future__ import annotations

import shutil

from compile_time import run_fresh


def test_reference_compile_time(benchmark, reference_path, compile_results, tmp_path):
    cache = tmp_path / "cache"
    runs = [("empty", run_fresh(reference_path, "numba", cache))]
    shutil.rmtree(cache / "models")  # keep the compiled kernel, drop the parsed model
    runs.append(("kernel warm", run_fresh(reference_path, "numba", cache)))
    # the repeated run is the one pytest-benchmark times (and --benchmark-only keeps)
    benchmark.group = "model file -> ready kernel, fresh process"
    warm = benchmark.pedantic(run_fresh, args=(reference_path, "numba", cache), rounds=1)
    runs.append(("all warm", warm))
    for caches, phases in runs:
        compile_results.append(
            {"model": "xgboost-reference", "backend": "numba", "caches": caches, **phases}
        )
        assert phases["total"] > 0

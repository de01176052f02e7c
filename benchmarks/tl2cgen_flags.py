"""TL2cgen build time and speed by gcc optimisation level, on the first N reference trees.

``python benchmarks/tl2cgen_flags.py [--trees 50] [--levels 3,2,1]`` builds the first
``--trees`` trees of the DESIGN reference model once per level (TL2cgen's ``-O3`` with
``-O<n>`` appended, so it wins; two translation units as ``kernels._tl2cgen`` uses), then
scores the same 50k rows with every library in alternating rounds (1 thread, best of 5),
so a busy machine slows them alike. Prints one JSON line per level: gcc's CPU seconds
(children's rusage), build wall seconds, rows/s, and whether the output is bitwise equal
to the first level's.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tl2cgen
import xgboost as xgb

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_features, reference_model_path

import kernels
from kernels._treelite_model import build_treelite_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--levels", default="3,2,1")
    args = parser.parse_args()
    levels = args.levels.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.ubj"
        xgb.Booster(model_file=str(reference_model_path()))[0 : args.trees].save_model(path)
        model = build_treelite_model(kernels.load_model(path, cache=False))
        builds = {}
        for level in levels:
            library = Path(tmp) / f"O{level}.so"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            tl2cgen.export_lib(
                model, toolchain="gcc", libpath=library, params={"parallel_comp": 2},
                nthread=2, options=[f"-O{level}"],
            )  # fmt: skip
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            gcc = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            builds[level] = {
                "gcc_cpu_s": round(gcc, 1),
                "build_wall_s": round(time.perf_counter() - start, 1),
            }
        X = tl2cgen.DMatrix(make_features(50_000, seed=1).astype(np.float64))
        predictors = {
            lvl: tl2cgen.Predictor(str(Path(tmp) / f"O{lvl}.so"), nthread=1) for lvl in levels
        }
        best = dict.fromkeys(levels, float("inf"))
        outputs = {}
        for _ in range(5):
            for level, predictor in predictors.items():
                start = time.perf_counter()
                outputs[level] = predictor.predict(X, pred_margin=True)
                best[level] = min(best[level], time.perf_counter() - start)
        for level in levels:
            print(json.dumps({
                "trees": args.trees, "gcc": f"-O{level}", **builds[level],
                "rows_per_s": round(50_000 / best[level]),
                "bitwise_equal_to_first": bool(np.array_equal(outputs[level], outputs[levels[0]])),
            }))  # fmt: skip


if __name__ == "__main__":
    main()

"""The CUDA backend in Numba's CUDA simulator, for the agreement suite (a child process).

Numba reads ``NUMBA_ENABLE_CUDASIM`` once, when it is first imported, so the simulator
runs in a process started with it set (``python -m agreement.cudasim WORK``). ``WORK``
holds ``jobs.json`` (a list of ``{"key", "path", "trust_pickle", "rows"}``) and each job's
rows as ``<key>.npy``; the child compiles each model with ``backend="cuda"`` and writes
``<key>.prediction.npy`` and ``<key>.margin.npy``, or the KernelError it refused the model
with to ``refused.json``. The parent compares them with the native predict.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

import kernels


def main(work: Path) -> None:
    from kernels._numba_cuda import is_simulated

    assert is_simulated(), "run with NUMBA_ENABLE_CUDASIM=1"
    # numpy scalars stand in for the kernels' uint32 index arithmetic, which wraps by design.
    warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
    refused: dict[str, str] = {}
    compiled: dict[str, kernels.Kernel | str] = {}
    for job in json.loads((work / "jobs.json").read_text()):
        path = job["path"]
        if path not in compiled:
            forest = kernels.load_model(path, trust_pickle=job["trust_pickle"], cache=False)
            try:
                compiled[path] = kernels.compile_model(forest, backend="cuda")
            except kernels.KernelError as exc:
                compiled[path] = str(exc)
        kernel = compiled[path]
        if isinstance(kernel, str):
            refused[job["key"]] = kernel
            continue
        assert kernel.backend == "cuda"
        X = np.load(work / f"{job['key']}.npy")
        for output in ("prediction", "margin"):
            np.save(work / f"{job['key']}.{output}.npy", kernel.predict(X, output=output))
    (work / "refused.json").write_text(json.dumps(refused))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""``inspect`` and ``compile``: commands about one model file."""

from __future__ import annotations

import argparse
import json

from engine.cli._common import add_trust_flag, load_forest
from engine.errors import BadInputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="format, objective, trees, depth, features of a model")
    p.add_argument("model")
    add_trust_flag(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_inspect)

    p = sub.add_parser("compile", help="compile a model (warms the kernel cache)")
    p.add_argument("model")
    add_trust_flag(p)
    p.add_argument("--backend", default="auto", help="auto | numba | cuda | tl2cgen")
    p.set_defaults(handler=_cmd_compile)


def _cmd_inspect(args: argparse.Namespace) -> int:
    import kernels

    forest = load_forest(args.model, args.trust_pickle)
    info = forest.describe()
    kernel = kernels.compile_model(forest, backend="numba")  # lays out; compiles on first use
    info["kernel"] = f"{kernel.backend} ({kernel.layout} layout)"
    info["kernel_bytes"] = kernel.memory_bytes
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value[:8]) + (" ..." if len(value) > 8 else "")
        print(f"{key:<20}{value}")
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    import kernels

    forest = load_forest(args.model, args.trust_pickle)
    start = time.perf_counter()
    try:
        kernel = kernels.compile_model(forest, backend=args.backend)
        # The first predict compiles (or loads from the cache) the backend's code; one
        # compiled CPU kernel serves row-major and feature-major input alike.
        kernel.predict(np.zeros((2, forest.num_features), dtype=np.float32))
    except kernels.KernelError as exc:
        raise BadInputError(str(exc)) from None
    print(f"compiled {args.model} for {kernel.backend} in {time.perf_counter() - start:.2f} s")
    return 0

"""What ``--hash-id`` costs: the salted id hash over ``ROWS`` integer ids, and a whole run.

- ``id-hash:lakescore``: :class:`engine.id_hash.IdHasher` (integers to decimal strings in
  Arrow, then the Numba SHA-256 kernel over the buffers), one thread;
- ``id-hash:native``: the same hashes with ``hashlib`` in a Python loop, one thread (what a
  per-row implementation costs);
- ``lakescore-e2e-hash-id``: ``lakescore-e2e`` of ``test_end_to_end.py`` with a salt, the
  reference model on 2 threads. Run both in one session to read the difference::

    .venv/bin/python -m pytest benchmarks -p no:randomly -k "id_hash or lakescore_end_to_end"
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
from conftest import ROWS

import engine
from engine.id_hash import IdHasher

SALT = "benchmark-salt"


def test_id_hash_kernel(run_contender) -> None:
    ids = pa.array(np.arange(ROWS, dtype=np.int64))
    hasher = IdHasher(SALT.encode())
    hasher.hash(ids[:10])  # compile (or load from Numba's cache) outside the clock
    hashed = run_contender("id-hash", "lakescore", 1, lambda: hasher.hash(ids))
    assert hashed[ROWS - 1].as_py() == hashlib.sha256(f"{SALT}{ROWS - 1}".encode()).hexdigest()


def test_id_hash_hashlib_loop(run_contender) -> None:
    ids = pa.array(np.arange(ROWS, dtype=np.int64))
    salt = SALT.encode()

    def per_row() -> pa.Array:
        return pa.array(
            [hashlib.sha256(salt + str(i).encode()).hexdigest() for i in ids.to_pylist()]
        )

    assert run_contender("id-hash", "native", 1, per_row).type == pa.string()


def test_lakescore_end_to_end_hash_id(run_contender, checked_kernels, reference_path,
                                      reference_lake: Path, tmp_path: Path) -> None:  # fmt: skip
    sinks = iter(range(1_000_000))

    def score() -> engine.ScoreResult:
        return engine.score(
            model=reference_path, source=reference_lake, sink=tmp_path / f"sink-{next(sinks)}",
            id_column="customer_id", workers=2, hash_id_salt=SALT,
        )  # fmt: skip

    result = run_contender("end-to-end", "lakescore score, hashed id", 2, score)
    assert result.record["columns_written"][0] == {"name": "customer_id", "type": "string"}

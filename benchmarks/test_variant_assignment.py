"""Variant assignment throughput: the compiled BLAKE2b loop against ``hashlib`` per id.

Both compute the same numbers (``tests/jobs/test_variants.py`` checks it); this measures
what assigning variants adds to a run, per million ids, for integer and string ids.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest
from conftest import ROUNDS, ROWS

from engine.variants import assignment_units

SALT = "nov-campaign"


def _hashlib_units(ids: pa.Array) -> np.ndarray:
    prefix = SALT.encode() + b"\x1f"
    blake = hashlib.blake2b
    texts = (v.encode() if isinstance(v, str) else str(v).encode() for v in ids.to_pylist())
    digests = b"".join(blake(prefix + t, digest_size=8).digest() for t in texts)
    bits = np.frombuffer(digests, dtype=">u8").astype(np.uint64) >> np.uint64(11)
    return bits.astype(np.float64) * 2.0**-53


@pytest.fixture(scope="module", params=["int64", "string"])
def ids(request: pytest.FixtureRequest) -> pa.Array:
    if request.param == "int64":
        return pa.array(np.arange(ROWS, dtype=np.int64) * 7919)
    return pa.array([f"cust-{i:010d}" for i in range(ROWS)])


@pytest.mark.parametrize("contender", ["compiled", "hashlib"])
def test_assignment_throughput(benchmark, ids: pa.Array, contender: str) -> None:
    assignment_units(ids[:10], SALT)  # compile (or load from Numba's cache) outside the clock
    run = (
        (lambda: assignment_units(ids, SALT))
        if contender == "compiled"
        else (lambda: _hashlib_units(ids))
    )
    benchmark.group = f"variant assignment, {ids.type} ids"
    units = benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(contender=contender, rows=len(ids))
    assert units.shape == (len(ids),)
    np.testing.assert_array_equal(units[:1000], _hashlib_units(ids[:1000]))

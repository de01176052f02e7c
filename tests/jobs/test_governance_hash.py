"""The salted id hash (engine.id_hash) against ``hashlib``, its specification.

The kernel hashes salt || id in SHA-256 blocks, so the cases straddle every block edge: the
salt's length around 55/56/64/128 bytes (the padding rules change there) and ids long
enough to take several blocks, multibyte UTF-8, empty strings, nulls, sliced arrays, and
every integer width at its extremes.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.id_hash import HASH_HEX_CHARS, IdHasher, hashable, reference_hash


def oracle(salt: str, value: object) -> str | None:
    """Written here from the README's definition, independently of the engine."""
    return None if value is None else hashlib.sha256((salt + str(value)).encode()).hexdigest()


STRING_IDS = ["", "a", "é" * 40, "q" * 200, None, "CUST-000017", "x" * 55, "y" * 56, "z" * 64]


@pytest.mark.parametrize("salt_len", [0, 1, 54, 55, 56, 63, 64, 65, 119, 120, 128, 130])
def test_string_ids_across_block_edges(salt_len: int) -> None:
    salt = "".join(chr(ord("a") + i % 26) for i in range(salt_len))
    hashed = IdHasher(salt.encode()).hash(pa.array(STRING_IDS))
    assert hashed.type == pa.string()
    assert hashed.to_pylist() == [oracle(salt, v) for v in STRING_IDS]


@pytest.mark.parametrize(
    "dtype", [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32(), pa.uint64()]
)
def test_integer_ids_hash_their_decimal_digits(dtype: pa.DataType) -> None:
    info = np.iinfo(dtype.to_pandas_dtype())
    values = [int(info.min), -1 if info.min < 0 else 1, 0, None, int(info.max)]
    hashed = IdHasher("pépé".encode()).hash(pa.array(values, dtype))
    assert hashed.to_pylist() == [oracle("pépé", v) for v in values]


def test_sliced_large_and_dictionary_arrays() -> None:
    hasher = IdHasher(b"salt")
    sliced = pa.array(STRING_IDS).slice(3, 5)  # an offset into the buffers and the bitmap
    assert hasher.hash(sliced).to_pylist() == [oracle("salt", v) for v in sliced.to_pylist()]
    large = pa.array(STRING_IDS, pa.large_string())
    assert hasher.hash(large).to_pylist() == [oracle("salt", v) for v in STRING_IDS]
    encoded = pa.array(STRING_IDS).dictionary_encode()
    assert hasher.hash(encoded).to_pylist() == [oracle("salt", v) for v in STRING_IDS]
    assert hasher.hash(pa.array([], pa.string())).to_pylist() == []
    assert hasher.hash(pa.array([""] * 3)).to_pylist() == [oracle("salt", "")] * 3


def test_nulls_stay_null_and_hashes_have_a_fixed_width() -> None:
    hashed = IdHasher(b"s").hash(pa.array([None, 5, None], pa.int64()))
    assert hashed.null_count == 2 and hashed.is_valid().to_pylist() == [False, True, False]
    assert len(hashed[1].as_py()) == HASH_HEX_CHARS
    hashed.validate(full=True)


def test_hashable_types() -> None:
    assert hashable(pa.string()) and hashable(pa.large_string()) and hashable(pa.uint16())
    assert hashable(pa.dictionary(pa.int32(), pa.string()))
    assert not hashable(pa.float64()) and not hashable(pa.binary()) and not hashable(pa.date32())


@settings(max_examples=60, deadline=None)
@given(
    salt=st.text(max_size=150),
    ids=st.lists(st.one_of(st.none(), st.text(max_size=140)), max_size=20),
)
def test_any_text_matches_hashlib(salt: str, ids: list[str | None]) -> None:
    hashed = IdHasher(salt.encode()).hash(pa.array(ids, pa.string()))
    assert hashed.to_pylist() == [oracle(salt, v) for v in ids]
    assert hashed.to_pylist() == [reference_hash(salt, v) for v in ids]

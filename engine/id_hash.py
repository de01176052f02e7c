"""The salted hash of an id column, vectorised: one Numba pass over Arrow's buffers.

The hash of an id is ``lowercase hex(SHA-256(salt || canonical id bytes))`` (64
characters), where ``salt`` is the salt's UTF-8 and the id's canonical bytes are the UTF-8
of a string id and the decimal digits (``-`` for negatives) of an integer id: exactly
what ``CAST(id AS STRING)`` gives in SQL. So other teams can reproduce it where they
join: Python ``hashlib.sha256((salt + str(id)).encode()).hexdigest()``, Spark
``sha2(concat(salt, cast(id AS string)), 256)``, DuckDB ``sha256(salt || id::VARCHAR)``.
A null id stays null.

SHA-256 rather than BLAKE2b because every SQL engine has it. Row by row with ``hashlib``
it costs Python per row: 1.7-1.9 CPU-seconds per million integer ids against 0.5-0.75 for
this kernel, one thread, on the shared 2-core development machine (2.7x in wall time in
``benchmarks/test_id_hash.py``). The kernel hashes the whole column from its offsets and
data buffers in one call, the salt's whole 64-byte blocks compressed once; software
SHA-256 is about one 64-byte block per short id, so this is close to its floor.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import uint32 as u32

#: hex digits of the hash; the output column's strings are exactly this long
HASH_HEX_CHARS = 64
_K = np.array(
    [
        0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
        0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
        0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
        0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
        0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
        0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
        0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
        0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
        0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
        0xC67178F2,
    ],
    dtype=np.uint32,
)  # fmt: skip
_H0 = np.array(
    [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
     0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19],
    dtype=np.uint32,
)  # fmt: skip
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()
#: rows hashed into one string array (64 bytes each must fit 32-bit offsets)
_MAX_ROWS = (2**31 - 1) // HASH_HEX_CHARS


@numba.njit(inline="always")
def _rotr(x: np.uint32, n: int) -> np.uint32:
    return u32((x >> u32(n)) | (x << u32(32 - n)))


# Numba widens uint32 arithmetic to 64 bits; each u32(...) truncates back, which LLVM
# turns into plain 32-bit adds and rotates (1.5x faster than masking uint64 words).
@numba.njit(nogil=True, cache=True, boundscheck=False)
def _compress(state: np.ndarray, block: np.ndarray, w: np.ndarray, k: np.ndarray) -> None:
    """One SHA-256 block (the 64 bytes of ``block``) into ``state`` (FIPS 180-4)."""
    for t in range(16):
        w[t] = u32(
            (u32(block[4 * t]) << u32(24))
            | (u32(block[4 * t + 1]) << u32(16))
            | (u32(block[4 * t + 2]) << u32(8))
            | u32(block[4 * t + 3])
        )
    for t in range(16, 64):
        x = w[t - 15]
        y = w[t - 2]
        s0 = u32(_rotr(x, 7) ^ _rotr(x, 18) ^ (x >> u32(3)))
        s1 = u32(_rotr(y, 17) ^ _rotr(y, 19) ^ (y >> u32(10)))
        w[t] = u32(w[t - 16] + s0 + w[t - 7] + s1)
    a, b, c, d = state[0], state[1], state[2], state[3]
    e, f, g, h = state[4], state[5], state[6], state[7]
    for t in range(64):
        s1 = u32(_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25))
        ch = u32((e & f) ^ (~e & g))
        t1 = u32(h + s1 + ch + k[t] + w[t])
        s0 = u32(_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22))
        maj = u32((a & b) ^ (a & c) ^ (b & c))
        t2 = u32(s0 + maj)
        h, g, f, e = g, f, e, u32(d + t1)
        d, c, b, a = c, b, a, u32(t1 + t2)
    state[0] = u32(state[0] + a)
    state[1] = u32(state[1] + b)
    state[2] = u32(state[2] + c)
    state[3] = u32(state[3] + d)
    state[4] = u32(state[4] + e)
    state[5] = u32(state[5] + f)
    state[6] = u32(state[6] + g)
    state[7] = u32(state[7] + h)


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _hash_rows(
    data: np.ndarray,
    offsets: np.ndarray,
    mid_state: np.ndarray,
    salt_tail: np.ndarray,
    salt_len: int,
    k: np.ndarray,
    hex_digits: np.ndarray,
    out: np.ndarray,
) -> None:
    """Row ``i``'s hex digest into ``out[64*i : 64*i+64]``: SHA-256 of salt || id bytes.

    ``mid_state`` is the state after the salt's whole blocks and ``salt_tail`` what is
    left of the salt, so each row compresses only its own blocks (one for short ids).
    Serial on purpose: workers already run tasks in parallel threads (``nogil``).
    """
    block = np.zeros(64, dtype=np.uint8)
    w = np.zeros(64, dtype=np.uint32)
    state = np.zeros(8, dtype=np.uint32)
    tail = salt_tail.shape[0]
    for i in range(offsets.shape[0] - 1):
        start = offsets[i]
        n = offsets[i + 1] - start
        for j in range(8):
            state[j] = mid_state[j]
        for j in range(tail):  # the rest of the salt (< 64 bytes) opens the first block
            block[j] = salt_tail[j]
        used = tail
        for j in range(n):
            block[used] = data[start + j]
            used += 1
            if used == 64:
                _compress(state, block, w, k)
                used = 0
        block[used] = 0x80
        used += 1
        if used > 56:
            for j in range(used, 64):
                block[j] = 0
            _compress(state, block, w, k)
            used = 0
        for j in range(used, 56):
            block[j] = 0
        bits = np.uint64(salt_len + n) * np.uint64(8)
        for j in range(8):
            block[63 - j] = (bits >> np.uint64(8 * j)) & np.uint64(0xFF)
        _compress(state, block, w, k)
        base = i * 64
        for word in range(8):
            v = state[word]
            for j in range(8):
                out[base + 8 * word + j] = hex_digits[(v >> u32(28 - 4 * j)) & u32(0xF)]


class IdHasher:
    """Hashes id columns with one salt; the salt's whole blocks are compressed once."""

    def __init__(self, salt: bytes) -> None:
        self._salt_len = len(salt)
        whole = len(salt) - len(salt) % 64
        state = _H0.copy()
        w = np.zeros(64, dtype=np.uint32)
        for start in range(0, whole, 64):
            _compress(state, np.frombuffer(salt[start : start + 64], np.uint8), w, _K)
        self._mid_state = state
        self._tail = np.frombuffer(salt[whole:], dtype=np.uint8).copy()

    def hash(self, ids: pa.Array) -> pa.Array | pa.ChunkedArray:
        """The hex hashes of ``ids`` (string or integer), as strings; nulls stay null.

        A batch whose hashes would overflow a string array's 32-bit offsets (over 33M
        rows) comes back as a chunked array of string arrays.
        """
        if len(ids) > _MAX_ROWS:
            return pa.chunked_array(
                [self.hash(ids.slice(i, _MAX_ROWS)) for i in range(0, len(ids), _MAX_ROWS)],
                pa.string(),
            )
        strings = canonical_strings(ids)
        n = len(strings)
        offsets = np.frombuffer(strings.buffers()[1], dtype=_offset_dtype(strings.type))
        offsets = offsets[strings.offset : strings.offset + n + 1].astype(np.int64)
        data_buffer = strings.buffers()[2]
        data = (
            np.frombuffer(data_buffer, dtype=np.uint8)
            if data_buffer is not None and data_buffer.size
            else np.zeros(1, dtype=np.uint8)
        )
        out = np.empty(n * HASH_HEX_CHARS, dtype=np.uint8)
        _hash_rows(data, offsets, self._mid_state, self._tail, self._salt_len, _K, _HEX, out)
        hex_offsets = np.arange(0, (n + 1) * HASH_HEX_CHARS, HASH_HEX_CHARS, dtype=np.int32)
        validity = strings.is_valid().buffers()[1] if strings.null_count else None
        return pa.Array.from_buffers(
            pa.string(),
            n,
            [validity, pa.py_buffer(hex_offsets), pa.py_buffer(out)],
            null_count=strings.null_count,
        )


def _offset_dtype(dtype: pa.DataType) -> type:
    return np.int64 if pa.types.is_large_string(dtype) else np.int32


def hashable(dtype: pa.DataType) -> bool:
    """Id types with a canonical byte form: strings and integers (dictionary-encoded too)."""
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    return pa.types.is_integer(dtype) or _is_string(dtype)


def _is_string(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)


def canonical_strings(ids: pa.Array) -> pa.Array:
    """The ids as strings whose UTF-8 is their canonical bytes (decimal for integers)."""
    if _is_string(ids.type):
        return ids
    if pa.types.is_integer(ids.type):
        return pc.cast(ids, pa.string())  # Arrow's decimal formatting, vectorised
    if pa.types.is_dictionary(ids.type):
        return canonical_strings(ids.dictionary_decode())
    raise TypeError(f"ids of type {ids.type} have no canonical bytes")


def reference_hash(salt: str, value: str | int | None) -> str | None:
    """The same hash with ``hashlib``, one value: the specification in executable form."""
    if value is None:
        return None
    return hashlib.sha256(salt.encode() + str(value).encode()).hexdigest()

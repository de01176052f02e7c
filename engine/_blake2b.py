"""BLAKE2b with an 8-byte digest (RFC 7693), compiled with Numba, over many short messages.

``hashlib.blake2b`` costs about 1.7 us a row from Python (a call, a bytes object, an int
per id); this computes the same digests for a whole batch of ids in one compiled loop.
The message of row ``i`` is ``prefix`` followed by the id's bytes: for integer ids their
decimal text (formatted here, no Python strings), for strings and binaries the bytes of
the Arrow buffers. Tests check every digest against ``hashlib``.
"""

from __future__ import annotations

import numba
import numpy as np

_IV = np.array(
    [
        0x6A09E667F3BCC908,
        0xBB67AE8584CAA73B,
        0x3C6EF372FE94F82B,
        0xA54FF53A5F1D36F1,
        0x510E527FADE682D1,
        0x9B05688C2B3E6C1F,
        0x1F83D9ABFB41BD6B,
        0x5BE0CD19137E2179,
    ],
    dtype=np.uint64,
)
_SIGMA = np.array(
    [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
        [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
        [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
        [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
        [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
        [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
        [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
        [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
        [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    ],
    dtype=np.int64,
)
#: the state words each of a round's eight G steps mixes (RFC 7693, section 3.2)
_G = np.array(
    [
        [0, 4, 8, 12],
        [1, 5, 9, 13],
        [2, 6, 10, 14],
        [3, 7, 11, 15],
        [0, 5, 10, 15],
        [1, 6, 11, 12],
        [2, 7, 8, 13],
        [3, 4, 9, 14],
    ],
    dtype=np.int64,
)
#: the parameter block of an unkeyed 8-byte digest: digest length 8, fanout 1, depth 1
_PARAM = np.uint64(0x01010008)
_OUT_BYTES = 8


@numba.njit(cache=True, inline="always")
def _rotr(x, n):
    return (x >> np.uint64(n)) | (x << np.uint64(64 - n))


@numba.njit(cache=True, inline="always")
def _g(a, b, c, d, x, y):
    a = a + b + x
    d = _rotr(d ^ a, 32)
    c = c + d
    b = _rotr(b ^ c, 24)
    a = a + b + y
    d = _rotr(d ^ a, 16)
    c = c + d
    b = _rotr(b ^ c, 63)
    return a, b, c, d


@numba.njit(cache=True)
def _compress(h, m, counter, last):
    """One block: ``m`` is its 16 little-endian words. The state lives in locals so that
    LLVM keeps it in registers (an array-held state ran about 5x slower)."""
    iv, sg = _IV, _SIGMA
    v0, v1, v2, v3, v4, v5, v6, v7 = h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
    v8, v9, v10, v11 = iv[0], iv[1], iv[2], iv[3]
    v12, v13, v14, v15 = iv[4] ^ np.uint64(counter), iv[5], iv[6], iv[7]
    if last:
        v14 = ~v14
    for r in range(12):
        s = sg[r % 10]
        v0, v4, v8, v12 = _g(v0, v4, v8, v12, m[s[0]], m[s[1]])
        v1, v5, v9, v13 = _g(v1, v5, v9, v13, m[s[2]], m[s[3]])
        v2, v6, v10, v14 = _g(v2, v6, v10, v14, m[s[4]], m[s[5]])
        v3, v7, v11, v15 = _g(v3, v7, v11, v15, m[s[6]], m[s[7]])
        v0, v5, v10, v15 = _g(v0, v5, v10, v15, m[s[8]], m[s[9]])
        v1, v6, v11, v12 = _g(v1, v6, v11, v12, m[s[10]], m[s[11]])
        v2, v7, v8, v13 = _g(v2, v7, v8, v13, m[s[12]], m[s[13]])
        v3, v4, v9, v14 = _g(v3, v4, v9, v14, m[s[14]], m[s[15]])
    h[0] ^= v0 ^ v8
    h[1] ^= v1 ^ v9
    h[2] ^= v2 ^ v10
    h[3] ^= v3 ^ v11
    h[4] ^= v4 ^ v12
    h[5] ^= v5 ^ v13
    h[6] ^= v6 ^ v14
    h[7] ^= v7 ^ v15


@numba.njit(cache=True)
def _digest(msg, length, h):
    """The first 8 digest bytes of ``msg[:length]`` as a big-endian uint64. ``msg`` is
    longer than ``length`` rounded up to 128; its bytes past ``length`` are zeroed here.
    Words are read with a uint64 view: a little-endian machine, as x86-64 and arm64 are."""
    blocks = max(1, (length + 127) // 128)
    msg[length : blocks * 128] = 0
    words = msg[: blocks * 128].view(np.uint64)
    for i in range(8):
        h[i] = _IV[i]
    h[0] ^= _PARAM
    for k in range(blocks):
        last = k == blocks - 1
        _compress(h, words[16 * k : 16 * k + 16], length if last else 128 * (k + 1), last)
    out = np.uint64(0)
    for b in range(_OUT_BYTES):  # digest bytes are h[0] little-endian; read them big-endian
        out = (out << np.uint64(8)) | ((h[0] >> np.uint64(8 * b)) & np.uint64(0xFF))
    return out


@numba.njit(cache=True)
def digest_integers(prefix, ids):
    """``blake2b(prefix + str(id).encode(), digest_size=8)`` of every int64 id."""
    n = ids.shape[0]
    out = np.empty(n, dtype=np.uint64)
    p = prefix.shape[0]
    msg = np.zeros(p + 21 + 128, dtype=np.uint8)
    msg[:p] = prefix
    digits = np.empty(20, dtype=np.uint8)
    h = np.empty(8, np.uint64)
    for i in range(n):
        x = ids[i]
        pos = p
        if x < 0:
            msg[pos] = 45  # '-'
            pos += 1
        # magnitude as uint64 (so -2**63 works), digits least significant first
        u = np.uint64(-(x + 1)) + np.uint64(1) if x < 0 else np.uint64(x)
        k = 0
        while True:
            digits[k] = 48 + np.uint8(u % np.uint64(10))
            u //= np.uint64(10)
            k += 1
            if u == 0:
                break
        for j in range(k):
            msg[pos + j] = digits[k - 1 - j]
        out[i] = _digest(msg, pos + k, h)
    return out


@numba.njit(cache=True)
def digest_bytes(prefix, offsets, data):
    """``blake2b(prefix + data[offsets[i]:offsets[i+1]], digest_size=8)`` of every row."""
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    p = prefix.shape[0]
    longest = 0
    for i in range(n):
        longest = max(longest, offsets[i + 1] - offsets[i])
    msg = np.zeros(p + longest + 128, dtype=np.uint8)
    msg[:p] = prefix
    h = np.empty(8, np.uint64)
    for i in range(n):
        start, stop = offsets[i], offsets[i + 1]
        for j in range(stop - start):
            msg[p + j] = data[start + j]
        out[i] = _digest(msg, p + stop - start, h)
    return out

"""A small UBJSON decoder for XGBoost's ``.ubj`` model files.

XGBoost writes big-endian numbers and optimised typed arrays (``[$type#count``); those are
decoded with one ``numpy.frombuffer`` call each, so a large model loads in milliseconds.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

_SCALARS: dict[bytes, tuple[str, int]] = {
    b"i": (">b", 1),
    b"U": (">B", 1),
    b"I": (">h", 2),
    b"l": (">i", 4),
    b"L": (">q", 8),
    b"d": (">f", 4),
    b"D": (">d", 8),
}


class UBJSONError(ValueError):
    """The bytes are not valid UBJSON."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise UBJSONError("unexpected end of data")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def marker(self) -> bytes:
        while True:
            m = bytes(self.take(1))
            if m != b"N":  # no-op padding
                return m

    def scalar(self, marker: bytes) -> Any:
        if marker in _SCALARS:
            fmt, size = _SCALARS[marker]
            return struct.unpack(fmt, self.take(size))[0]
        if marker == b"S":
            return self.string()
        if marker == b"C":
            return bytes(self.take(1)).decode("ascii")
        if marker == b"T":
            return True
        if marker == b"F":
            return False
        if marker == b"Z":
            return None
        if marker == b"{":
            return self.obj()
        if marker == b"[":
            return self.array()
        raise UBJSONError(f"unknown UBJSON marker {marker!r} at byte {self.pos - 1}")

    def length(self) -> int:
        n = self.scalar(self.marker())
        if not isinstance(n, int) or n < 0:
            raise UBJSONError("invalid length")
        return n

    def string(self) -> str:
        return bytes(self.take(self.length())).decode("utf-8")

    def container_header(self) -> tuple[bytes | None, int | None]:
        elem_type: bytes | None = None
        count: int | None = None
        if bytes(self.data[self.pos : self.pos + 1]) == b"$":
            self.pos += 1
            elem_type = bytes(self.take(1))
        if bytes(self.data[self.pos : self.pos + 1]) == b"#":
            self.pos += 1
            count = self.length()
        if elem_type is not None and count is None:
            raise UBJSONError("typed container without a count")
        if count is not None and count > len(self.data) - self.pos:
            # every element takes a byte at least, but T/F/Z in a typed container take
            # none: a count past the data left is a damaged file, not a long loop
            raise UBJSONError(f"container count {count} exceeds the data left")
        return elem_type, count

    def array(self) -> Any:
        elem_type, count = self.container_header()
        if elem_type in _SCALARS and count is not None:
            fmt, size = _SCALARS[elem_type]
            raw = self.take(size * count)
            return np.frombuffer(raw, dtype=np.dtype(fmt)).astype(np.dtype(fmt).newbyteorder("="))
        items: list[Any] = []
        if count is not None:
            for _ in range(count):
                items.append(self.scalar(elem_type or self.marker()))
            return items
        while True:
            m = self.marker()
            if m == b"]":
                return items
            items.append(self.scalar(m))

    def obj(self) -> dict[str, Any]:
        elem_type, count = self.container_header()
        out: dict[str, Any] = {}
        if count is not None:
            for _ in range(count):
                key = self.string()
                out[key] = self.scalar(elem_type or self.marker())
            return out
        while True:
            while bytes(self.data[self.pos : self.pos + 1]) == b"N":  # no-op padding
                self.pos += 1
            if bytes(self.data[self.pos : self.pos + 1]) == b"}":
                self.pos += 1
                return out
            key = self.string()
            out[key] = self.scalar(self.marker())


def loads(data: bytes) -> Any:
    """Decode one UBJSON value; typed numeric arrays come back as numpy arrays."""
    reader = _Reader(data)
    value = reader.scalar(reader.marker())
    return value

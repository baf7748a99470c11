"""A read position over one message payload with typed readers for wire fields.

Every reader checks the remaining length first, so a short or malformed payload
raises ProtocolError and never IndexError or struct.error.
"""

from __future__ import annotations

import struct
from typing import TypeAlias

from pamwire.errors import ProtocolError

# The method Cursor.bytes hides the builtin inside the class body.
_Bytes: TypeAlias = bytes

_INT8 = struct.Struct(">b")
_INT16 = struct.Struct(">h")
_UINT16 = struct.Struct(">H")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")


class Cursor:
    """Reads big-endian integers, byte strings and C strings from a payload."""

    __slots__ = ("_data", "_flat", "_len", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = data
        # bytes.find is needed for C strings; a memoryview is flattened lazily,
        # so a large DataRow read through a view is never copied whole.
        self._flat: bytes | bytearray | None = (
            None if isinstance(data, memoryview) else data
        )
        self._len = len(data)
        self._pos = 0

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._len - self._pos

    def _need(self, n: int) -> int:
        pos = self._pos
        if n < 0:
            raise ProtocolError(f"negative length {n} at offset {pos}")
        if pos + n > self._len:
            raise ProtocolError(
                f"short read: {n} bytes wanted at offset {pos}, {self._len - pos} left"
            )
        self._pos = pos + n
        return pos

    def int8(self) -> int:
        value: int = _INT8.unpack_from(self._data, self._need(1))[0]
        return value

    def byte(self) -> int:
        return self._data[self._need(1)]

    def int16(self) -> int:
        value: int = _INT16.unpack_from(self._data, self._need(2))[0]
        return value

    def uint16(self) -> int:
        value: int = _UINT16.unpack_from(self._data, self._need(2))[0]
        return value

    def int32(self) -> int:
        value: int = _INT32.unpack_from(self._data, self._need(4))[0]
        return value

    def uint32(self) -> int:
        value: int = _UINT32.unpack_from(self._data, self._need(4))[0]
        return value

    def bytes(self, n: int) -> _Bytes:
        start = self._need(n)
        return _Bytes(self._data[start : start + n])

    def cstring(self) -> str:
        """Read up to the next NUL byte and skip it; utf-8 with surrogateescape."""
        flat = self._flat
        if flat is None:
            flat = self._flat = _Bytes(self._data)
        end = flat.find(0, self._pos)
        if end < 0:
            raise ProtocolError(f"string at offset {self._pos} has no terminating nul")
        text = flat[self._pos : end].decode("utf-8", "surrogateescape")
        self._pos = end + 1
        return text

    def rest(self) -> _Bytes:
        start = self._pos
        self._pos = self._len
        return _Bytes(self._data[start:])

    def at_end(self) -> bool:
        return self._pos >= self._len

    def expect_end(self) -> None:
        if self._pos < self._len:
            raise ProtocolError(f"{self._len - self._pos} trailing bytes")

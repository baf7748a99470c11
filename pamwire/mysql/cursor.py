"""A read position over one MySQL packet payload with typed readers for wire fields.

Integers are little-endian. Every reader checks the remaining length first, so a
short or malformed payload raises ProtocolError, never IndexError or struct.error.
Length-encoded integers must use their shortest form (as servers and drivers
write them), so that re-encoding a decoded packet gives back its exact bytes.
"""

from __future__ import annotations

import struct
from typing import TypeAlias

from pamwire.errors import ProtocolError

# The method Cursor.bytes hides the builtin inside the class body.
_Bytes: TypeAlias = bytes

_UINT16 = struct.Struct("<H")
_UINT32 = struct.Struct("<I")
_UINT64 = struct.Struct("<Q")

# First bytes of a length-encoded integer ("Protocol::LengthEncodedInteger").
LENENC_NULL = 0xFB  # NULL in a text row, not an integer
LENENC_2 = 0xFC
LENENC_3 = 0xFD
LENENC_8 = 0xFE
LENENC_ERR = 0xFF  # never a length-encoded integer


class Cursor:
    """Reads little-endian integers, length-encoded and NUL-terminated fields."""

    __slots__ = ("_data", "_flat", "_len", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview, start: int = 0) -> None:
        self._data = data
        # bytes.find is needed for NUL strings; a memoryview is flattened lazily.
        self._flat: bytes | bytearray | None = (
            None if isinstance(data, memoryview) else data
        )
        self._len = len(data)
        self._pos = start

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return self._len - self._pos

    def _need(self, n: int) -> int:
        pos = self._pos
        if pos + n > self._len:
            raise ProtocolError(
                f"short read: {n} bytes wanted at offset {pos}, {self._len - pos} left"
            )
        self._pos = pos + n
        return pos

    def peek(self) -> int:
        """The next byte without consuming it."""
        if self._pos >= self._len:
            raise ProtocolError(f"short read: 1 byte wanted at offset {self._pos}")
        return self._data[self._pos]

    def int1(self) -> int:
        return self._data[self._need(1)]

    def int2(self) -> int:
        value: int = _UINT16.unpack_from(self._data, self._need(2))[0]
        return value

    def int3(self) -> int:
        pos = self._need(3)
        data = self._data
        return data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16

    def int4(self) -> int:
        value: int = _UINT32.unpack_from(self._data, self._need(4))[0]
        return value

    def int8(self) -> int:
        value: int = _UINT64.unpack_from(self._data, self._need(8))[0]
        return value

    def lenenc_int(self) -> int:
        """A length-encoded integer; 0xFB, 0xFF and non-shortest forms fail."""
        first = self.int1()
        if first < LENENC_NULL:
            return first
        if first == LENENC_2:
            value, smallest = self.int2(), LENENC_NULL
        elif first == LENENC_3:
            value, smallest = self.int3(), 1 << 16
        elif first == LENENC_8:
            value, smallest = self.int8(), 1 << 24
        else:
            raise ProtocolError(
                f"byte 0x{first:02x} at offset {self._pos - 1} "
                "does not start a length-encoded integer"
            )
        if value < smallest:
            raise ProtocolError(f"length-encoded integer {value} not in shortest form")
        return value

    def bytes(self, n: int) -> _Bytes:
        start = self._need(n)
        return _Bytes(self._data[start : start + n])

    def lenenc_bytes(self) -> _Bytes:
        return self.bytes(self.lenenc_int())

    def lenenc_bytes_or_null(self) -> _Bytes | None:
        """A length-encoded string, or None for the 0xFB NULL marker of text rows."""
        if self.peek() == LENENC_NULL:
            self._pos += 1
            return None
        return self.lenenc_bytes()

    def lenenc_str(self) -> str:
        return self.lenenc_bytes().decode("utf-8", "surrogateescape")

    def nul_bytes(self) -> _Bytes:
        """Read up to the next NUL byte and skip it."""
        flat = self._flat
        if flat is None:
            flat = self._flat = _Bytes(self._data)
        end = flat.find(0, self._pos)
        if end < 0:
            raise ProtocolError(f"string at offset {self._pos} has no terminating nul")
        value = _Bytes(flat[self._pos : end])
        self._pos = end + 1
        return value

    def nul_str(self) -> str:
        """A NUL-terminated string as utf-8 with surrogateescape."""
        return self.nul_bytes().decode("utf-8", "surrogateescape")

    def since(self, start: int) -> _Bytes:
        """The bytes from offset start up to the current position."""
        return _Bytes(self._data[start : self._pos])

    def rest(self) -> _Bytes:
        start = self._pos
        self._pos = self._len
        return _Bytes(self._data[start:])

    def rest_str(self) -> str:
        return self.rest().decode("utf-8", "surrogateescape")

    def at_end(self) -> bool:
        return self._pos >= self._len

    def expect_end(self) -> None:
        if self._pos < self._len:
            raise ProtocolError(f"{self._len - self._pos} trailing bytes")


# Writers -----------------------------------------------------------------------------


def lenenc_int(value: int) -> bytes:
    """The shortest length-encoded form of value; ProtocolError if out of range."""
    if value < 0:
        raise ProtocolError(f"negative length-encoded integer {value}")
    if value < LENENC_NULL:
        return bytes((value,))
    if value < 1 << 16:
        return bytes((LENENC_2,)) + _UINT16.pack(value)
    if value < 1 << 24:
        return bytes((LENENC_3,)) + _UINT32.pack(value)[:3]
    if value < 1 << 64:
        return bytes((LENENC_8,)) + _UINT64.pack(value)
    raise ProtocolError(f"length-encoded integer {value} above 2**64 - 1")


def lenenc_bytes(value: bytes) -> bytes:
    return lenenc_int(len(value)) + value


def lenenc_str(value: str) -> bytes:
    return lenenc_bytes(value.encode("utf-8", "surrogateescape"))


def nul_bytes(value: bytes) -> bytes:
    if b"\0" in value:
        raise ProtocolError(f"nul byte in string {value[:40]!r}")
    return value + b"\0"


def nul_str(value: str) -> bytes:
    return nul_bytes(value.encode("utf-8", "surrogateescape"))


def int1(value: int) -> bytes:
    if not 0 <= value <= 0xFF:
        raise ProtocolError(f"value {value} does not fit 1 byte")
    return bytes((value,))


def int2(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ProtocolError(f"value {value} does not fit 2 bytes")
    return _UINT16.pack(value)


def int3(value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFF:
        raise ProtocolError(f"value {value} does not fit 3 bytes")
    return _UINT32.pack(value)[:3]


def int4(value: int) -> bytes:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ProtocolError(f"value {value} does not fit 4 bytes")
    return _UINT32.pack(value)


def int8(value: int) -> bytes:
    if not 0 <= value < 1 << 64:
        raise ProtocolError(f"value {value} does not fit 8 bytes")
    return _UINT64.pack(value)

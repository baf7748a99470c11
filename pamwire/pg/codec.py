"""Sans-IO framing, decoding and encoding of PostgreSQL protocol 3.0 messages.

Theory of operation: a FrameReader is fed raw bytes and hands back the bytes of
every complete frame in one block, together with the type byte and payload
offsets of each frame. The proxy can forward a block unchanged and decode only
the frames it needs (decode_startup, decode_frontend, decode_backend). encode
builds the full wire bytes of any message. Decoding is strict: anything that
does not match the manual's "Message Formats" chapter exactly raises
ProtocolError (ClientProtocolError or ServerProtocolError for the decoders).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

import attrs

from pamwire.errors import (
    ClientProtocolError,
    MessageTooLarge,
    ProtocolError,
    ServerProtocolError,
)
from pamwire.pg import messages as m
from pamwire.pg.cursor import Cursor
from pamwire.pg.messages import (
    BackendMessage,
    FrontendMessage,
    parse_password,
    parse_sasl_initial_response,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_STARTUP_PACKET_SIZE",
    "Frame",
    "FrameReader",
    "decode_backend",
    "decode_frontend",
    "decode_startup",
    "encode",
    "parse_password",
    "parse_sasl_initial_response",
    "payload",
]

# PostgreSQL refuses any field or message of 1 GB or more (MaxAllocSize is
# 0x3fffffff, and the backend caps large messages at that size), so no valid
# conversation has a longer message: 1 << 30 is the server's own ceiling.
DEFAULT_MAX_MESSAGE_SIZE: Final = 1 << 30

# The server refuses startup packets above 10000 bytes (MAX_STARTUP_PACKET_LENGTH
# in pqcomm.h); the reader applies the same limit while in startup mode.
MAX_STARTUP_PACKET_SIZE: Final = 10_000

# A frame at least this large that is still incomplete is collected as a list
# of received chunks and joined once, instead of being appended to the buffer
# and copied out again. 64 KiB is the size of one typical socket read.
_CHUNKED_FRAME_MIN = 1 << 16

_INT32 = struct.Struct(">i")
_INT16 = struct.Struct(">h")
_UINT16 = struct.Struct(">H")
_UINT32 = struct.Struct(">I")
_NULL_VALUE = _INT32.pack(-1)


@attrs.frozen
class Frame:
    """One message inside a block: type byte (0 for startup packets) and payload."""

    type: int
    start: int
    end: int


def payload(block: bytes, frame: Frame) -> memoryview:
    """The payload of frame (without type byte and length) as a view into block."""
    return memoryview(block)[frame.start : frame.end]


class FrameReader:
    """Splits a byte stream into frames; see the module docstring.

    While startup is true the next packet is untyped (an Int32 length that
    counts itself, then the payload) and read_frames returns at most one frame,
    so the caller can decide on the mode of the next packet.
    """

    def __init__(
        self, *, startup: bool = False, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ) -> None:
        self.startup = startup
        self.max_message_size = max_message_size
        self._buf = bytearray()
        # While _need > 0 a large frame of _need bytes (header included) is being
        # collected in _chunks; _buf stays empty until it is complete.
        self._chunks: list[bytes] = []
        self._chunked = 0
        self._need = 0
        self._need_type = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned by read_frames."""
        return len(self._buf) + self._chunked

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._need:
            self._collect(data)
        else:
            self._buf += data

    def _collect(self, data: bytes | bytearray | memoryview) -> None:
        missing = self._need - self._chunked
        if missing <= 0:
            self._buf += data
            return
        if len(data) > missing:
            self._buf += data[missing:]
            data = data[:missing]
        chunk = bytes(data)  # no copy when data already is bytes
        self._chunks.append(chunk)
        self._chunked += len(chunk)

    def read_frames(self) -> tuple[bytes, list[Frame]]:
        """Take every complete frame now buffered: (raw bytes, frames in order).

        Raises ProtocolError for a length below 4 (below 8 for a startup packet)
        and MessageTooLarge as soon as a header announces more than the limit.
        """
        if self._need:
            if self._chunked < self._need:
                return b"", []
            return self._finish_chunked()
        if self.startup:
            return self._scan_startup()
        return self._scan(0)

    def _scan(self, base: int) -> tuple[bytes, list[Frame]]:
        buf = self._buf
        size = len(buf)
        limit = self.max_message_size
        frames: list[Frame] = []
        pos = 0
        while size - pos >= 5:
            length = _INT32.unpack_from(buf, pos + 1)[0]
            if length < 4:
                raise ProtocolError(
                    f"message length {length} below 4 (type {chr(buf[pos])!r})"
                )
            if length > limit:
                raise MessageTooLarge(length, limit)
            end = pos + 1 + length
            if end > size:
                break
            frames.append(Frame(buf[pos], base + pos + 5, base + end))
            pos = end

        if pos == size:
            block = bytes(buf) if pos else b""
            buf.clear()
        else:
            block = bytes(buf[:pos]) if pos else b""
            del buf[:pos]
            if size - pos >= 5:
                self._maybe_start_chunked()
        return block, frames

    def _scan_startup(self) -> tuple[bytes, list[Frame]]:
        buf = self._buf
        if len(buf) < 4:
            return b"", []
        length = _INT32.unpack_from(buf, 0)[0]
        if length < 8:
            raise ProtocolError(f"startup packet length {length} below 8")
        limit = min(self.max_message_size, MAX_STARTUP_PACKET_SIZE)
        if length > limit:
            raise MessageTooLarge(length, limit)
        if length > len(buf):
            return b"", []
        block = bytes(buf[:length])
        del buf[:length]
        return block, [Frame(0, 4, length)]

    def _maybe_start_chunked(self) -> None:
        # _buf now holds the start of one incomplete frame, header included.
        need = 1 + _INT32.unpack_from(self._buf, 1)[0]
        if need < _CHUNKED_FRAME_MIN:
            return
        self._need = need
        self._need_type = self._buf[0]
        self._chunks = [bytes(self._buf)]
        self._chunked = len(self._buf)
        self._buf = bytearray()

    def _finish_chunked(self) -> tuple[bytes, list[Frame]]:
        head = b"".join(self._chunks)
        self._chunks = []
        self._chunked = 0
        self._need = 0
        first = Frame(self._need_type, 5, len(head))
        block, frames = self._scan(len(head))
        if not frames:
            return head, [first]
        return head + block, [first, *frames]


# Decoding ------------------------------------------------------------------------


def _type_name(type_: int) -> str:
    return repr(chr(type_)) if 0 <= type_ < 256 else str(type_)


def _value(cur: Cursor) -> bytes | None:
    length = cur.int32()
    if length == -1:
        return None
    if length < 0:
        raise ProtocolError(f"bad value length {length}")
    return cur.bytes(length)


def _int16s(cur: Cursor) -> tuple[int, ...]:
    # Counts are read unsigned, as the server and libpq do (65535 parameters).
    return tuple(cur.int16() for _ in range(cur.uint16()))


def _oids(cur: Cursor) -> tuple[int, ...]:
    return tuple(cur.uint32() for _ in range(cur.uint16()))


def _values(cur: Cursor) -> tuple[bytes | None, ...]:
    return tuple(_value(cur) for _ in range(cur.uint16()))


def _kind(cur: Cursor) -> bytes:
    kind = cur.bytes(1)
    if kind not in (b"S", b"P"):
        raise ProtocolError(f"bad kind {kind!r}, expected b'S' or b'P'")
    return kind


def _report_fields(cur: Cursor) -> tuple[tuple[str, str], ...]:
    fields: list[tuple[str, str]] = []
    while True:
        code = cur.byte()
        if code == 0:
            return tuple(fields)
        fields.append((chr(code), cur.cstring()))


def decode_startup(
    payload: bytes | bytearray | memoryview,
) -> m.StartupMessage | m.SSLRequest | m.GSSENCRequest | m.CancelRequest:
    """Decode the payload of an untyped startup-phase packet (after its length).

    Raises ClientProtocolError for an unknown request code, a protocol version
    other than 3.x, or a malformed body.
    """
    cur = Cursor(payload)
    try:
        message = _read_startup(cur)
        cur.expect_end()
    except ClientProtocolError:
        raise
    except ProtocolError as exc:
        raise ClientProtocolError(f"bad startup packet: {exc}") from None
    return message


def _read_startup(
    cur: Cursor,
) -> m.StartupMessage | m.SSLRequest | m.GSSENCRequest | m.CancelRequest:
    code = cur.int32()
    if code == m.SSL_REQUEST_CODE:
        return m.SSLRequest()
    if code == m.GSSENC_REQUEST_CODE:
        return m.GSSENCRequest()
    if code == m.CANCEL_REQUEST_CODE:
        process_id = cur.int32()
        key = cur.rest()
        if not m.MIN_CANCEL_KEY_LENGTH <= len(key) <= m.MAX_CANCEL_KEY_LENGTH:
            raise ClientProtocolError(f"bad cancel key length {len(key)}")
        return m.CancelRequest(process_id, key)

    major, minor = code >> 16, code & 0xFFFF
    if major == 1234:
        raise ClientProtocolError(f"unknown startup request code {code}")
    if major != 3:
        raise ClientProtocolError(f"unsupported protocol version {major}.{minor}")
    parameters = []
    while True:
        name = cur.cstring()
        if not name:
            break
        parameters.append((name, cur.cstring()))
    return m.StartupMessage(code, tuple(parameters))


_SYNC: Final = m.Sync()
_FLUSH: Final = m.Flush()
_TERMINATE: Final = m.Terminate()
_COPY_DONE: Final = m.CopyDone()

_FRONTEND: Final[dict[int, tuple[str, Callable[[Cursor], FrontendMessage]]]] = {
    ord("Q"): ("Query", lambda c: m.Query(c.cstring())),
    ord("P"): (
        "Parse",
        lambda c: m.Parse(c.cstring(), c.cstring(), _oids(c)),
    ),
    ord("B"): (
        "Bind",
        lambda c: m.Bind(c.cstring(), c.cstring(), _int16s(c), _values(c), _int16s(c)),
    ),
    ord("D"): ("Describe", lambda c: m.Describe(_kind(c), c.cstring())),
    ord("E"): ("Execute", lambda c: m.Execute(c.cstring(), c.int32())),
    ord("C"): ("Close", lambda c: m.Close(_kind(c), c.cstring())),
    ord("S"): ("Sync", lambda c: _SYNC),
    ord("H"): ("Flush", lambda c: _FLUSH),
    ord("X"): ("Terminate", lambda c: _TERMINATE),
    ord("d"): ("CopyData", lambda c: m.CopyData(c.rest())),
    ord("c"): ("CopyDone", lambda c: _COPY_DONE),
    ord("f"): ("CopyFail", lambda c: m.CopyFail(c.cstring())),
    ord("F"): (
        "FunctionCall",
        lambda c: m.FunctionCall(c.uint32(), _int16s(c), _values(c), c.int16()),
    ),
    ord("p"): ("PasswordMessage", lambda c: m.PasswordMessage(c.rest())),
}


# Bind and Execute come with every execution of a prepared statement. These
# readers take the payload whole, without a Cursor; for anything they do not accept
# they return None and the Cursor reader above decides (and names the error).


def _fast_bind(payload: bytes | bytearray | memoryview) -> m.Bind | None:
    raw = bytes(payload)
    size = len(raw)
    end = raw.find(0)
    end2 = raw.find(0, end + 1) if end >= 0 else -1
    if end2 < 0:
        return None
    pos = end2 + 1
    try:
        count = _UINT16.unpack_from(raw, pos)[0]
        formats = struct.unpack_from(f">{count}h", raw, pos + 2)
        pos += 2 + 2 * count
        count = _UINT16.unpack_from(raw, pos)[0]
        pos += 2
        values: list[bytes | None] = []
        for _ in range(count):
            length = _INT32.unpack_from(raw, pos)[0]
            pos += 4
            if length == -1:
                values.append(None)
            elif 0 <= length <= size - pos:
                values.append(raw[pos : pos + length])
                pos += length
            else:
                return None
        count = _UINT16.unpack_from(raw, pos)[0]
        results = struct.unpack_from(f">{count}h", raw, pos + 2)
        pos += 2 + 2 * count
    except struct.error:
        return None
    if pos != size:
        return None
    return m.Bind(
        raw[:end].decode("utf-8", "surrogateescape"),
        raw[end + 1 : end2].decode("utf-8", "surrogateescape"),
        formats,
        tuple(values),
        results,
    )


def _fast_execute(payload: bytes | bytearray | memoryview) -> m.Execute | None:
    raw = bytes(payload)
    end = raw.find(0)
    if end < 0 or len(raw) != end + 5:
        return None
    portal = raw[:end].decode("utf-8", "surrogateescape")
    return m.Execute(portal, _INT32.unpack_from(raw, end + 1)[0])


_FAST_FRONTEND: Final[
    dict[int, Callable[[bytes | bytearray | memoryview], FrontendMessage | None]]
] = {ord("B"): _fast_bind, ord("E"): _fast_execute}


def decode_frontend(
    type_: int, payload: bytes | bytearray | memoryview
) -> FrontendMessage:
    """Decode one typed frontend message from its type byte and payload.

    A 'p' message comes back as PasswordMessage with the raw payload. Raises
    ClientProtocolError for an unknown type byte or a malformed payload.
    """
    fast = _FAST_FRONTEND.get(type_)
    if fast is not None:
        found = fast(payload)
        if found is not None:
            return found
    entry = _FRONTEND.get(type_)
    if entry is None:
        raise ClientProtocolError(f"unknown frontend message type {_type_name(type_)}")
    name, read = entry
    cur = Cursor(payload)
    try:
        message = read(cur)
        cur.expect_end()
    except ProtocolError as exc:
        raise ClientProtocolError(f"bad {name}: {exc}") from None
    return message


def _read_authentication(cur: Cursor) -> BackendMessage:
    code = cur.int32()
    if code == m.AUTH_OK:
        return m.AuthenticationOk()
    if code == m.AUTH_SASL:
        mechanisms = []
        while name := cur.cstring():
            mechanisms.append(name)
        return m.AuthenticationSASL(tuple(mechanisms))
    if code == m.AUTH_SASL_CONTINUE:
        return m.AuthenticationSASLContinue(cur.rest())
    if code == m.AUTH_SASL_FINAL:
        return m.AuthenticationSASLFinal(cur.rest())
    if code == m.AUTH_MD5_PASSWORD:
        return m.AuthenticationMD5Password(cur.bytes(4))
    if code == m.AUTH_CLEARTEXT_PASSWORD:
        return m.AuthenticationCleartextPassword()
    if code == m.AUTH_GSS:
        return m.AuthenticationGSS()
    if code == m.AUTH_GSS_CONTINUE:
        return m.AuthenticationGSSContinue(cur.rest())
    if code == m.AUTH_SSPI:
        return m.AuthenticationSSPI()
    if code == m.AUTH_KERBEROS_V5:
        return m.AuthenticationKerberosV5()
    # TODO(auth): SCMCredential (6) is gone from servers since 9.1; not decoded.
    raise ProtocolError(f"unknown authentication code {code}")


def _read_backend_key(cur: Cursor) -> m.BackendKeyData:
    process_id = cur.int32()
    key = cur.rest()
    if not m.MIN_CANCEL_KEY_LENGTH <= len(key) <= m.MAX_CANCEL_KEY_LENGTH:
        raise ProtocolError(f"bad cancel key length {len(key)}")
    return m.BackendKeyData(process_id, key)


def _read_ready(cur: Cursor) -> m.ReadyForQuery:
    status = cur.bytes(1)
    if status not in (b"I", b"T", b"E"):
        raise ProtocolError(f"bad transaction status {status!r}, expected I, T or E")
    return m.ReadyForQuery(status)


def _read_field(cur: Cursor) -> m.FieldDescription:
    return m.FieldDescription(
        cur.cstring(),
        cur.uint32(),
        cur.int16(),
        cur.uint32(),
        cur.int16(),
        cur.int32(),
        cur.int16(),
    )


def _read_negotiate(cur: Cursor) -> m.NegotiateProtocolVersion:
    newest_minor = cur.int32()
    count = cur.int32()
    if count < 0:
        raise ProtocolError(f"negative option count {count}")
    return m.NegotiateProtocolVersion(
        newest_minor, tuple(cur.cstring() for _ in range(count))
    )


_BIND_COMPLETE: Final = m.BindComplete()
_CLOSE_COMPLETE: Final = m.CloseComplete()
_PARSE_COMPLETE: Final = m.ParseComplete()
_NO_DATA: Final = m.NoData()

_BACKEND: Final[dict[int, tuple[str, Callable[[Cursor], BackendMessage]]]] = {
    ord("R"): ("Authentication", _read_authentication),
    ord("K"): ("BackendKeyData", _read_backend_key),
    ord("2"): ("BindComplete", lambda c: _BIND_COMPLETE),
    ord("3"): ("CloseComplete", lambda c: _CLOSE_COMPLETE),
    ord("C"): ("CommandComplete", lambda c: m.CommandComplete(c.cstring())),
    ord("G"): (
        "CopyInResponse",
        lambda c: m.CopyInResponse(c.int8(), _int16s(c)),
    ),
    ord("H"): (
        "CopyOutResponse",
        lambda c: m.CopyOutResponse(c.int8(), _int16s(c)),
    ),
    ord("W"): (
        "CopyBothResponse",
        lambda c: m.CopyBothResponse(c.int8(), _int16s(c)),
    ),
    ord("d"): ("CopyData", lambda c: m.CopyData(c.rest())),
    ord("c"): ("CopyDone", lambda c: _COPY_DONE),
    ord("D"): ("DataRow", lambda c: m.DataRow(_values(c))),
    ord("I"): ("EmptyQueryResponse", lambda c: m.EmptyQueryResponse()),
    ord("E"): ("ErrorResponse", lambda c: m.ErrorResponse(_report_fields(c))),
    ord("N"): ("NoticeResponse", lambda c: m.NoticeResponse(_report_fields(c))),
    ord("V"): ("FunctionCallResponse", lambda c: m.FunctionCallResponse(_value(c))),
    ord("v"): ("NegotiateProtocolVersion", _read_negotiate),
    ord("n"): ("NoData", lambda c: _NO_DATA),
    ord("A"): (
        "NotificationResponse",
        lambda c: m.NotificationResponse(c.int32(), c.cstring(), c.cstring()),
    ),
    ord("t"): ("ParameterDescription", lambda c: m.ParameterDescription(_oids(c))),
    ord("S"): (
        "ParameterStatus",
        lambda c: m.ParameterStatus(c.cstring(), c.cstring()),
    ),
    ord("1"): ("ParseComplete", lambda c: _PARSE_COMPLETE),
    ord("s"): ("PortalSuspended", lambda c: m.PortalSuspended()),
    ord("Z"): ("ReadyForQuery", _read_ready),
    ord("T"): (
        "RowDescription",
        lambda c: m.RowDescription(tuple(_read_field(c) for _ in range(c.uint16()))),
    ),
}


def decode_backend(
    type_: int, payload: bytes | bytearray | memoryview
) -> BackendMessage:
    """Decode one backend message from its type byte and payload.

    Raises ServerProtocolError for an unknown type byte or a malformed payload.
    """
    entry = _BACKEND.get(type_)
    if entry is None:
        raise ServerProtocolError(f"unknown backend message type {_type_name(type_)}")
    name, read = entry
    cur = Cursor(payload)
    try:
        message = read(cur)
        cur.expect_end()
    except ProtocolError as exc:
        raise ServerProtocolError(f"bad {name}: {exc}") from None
    return message


# Hot-path readers -------------------------------------------------------------
# The relay reads these three on every statement. They accept exactly what
# decode_backend accepts, without a Cursor or a message record; anything they do
# not accept goes to decode_backend, which raises the same error it always does.

_READY_STATUSES: Final = {ord(c): c.encode("ascii") for c in "ITE"}


def ready_status(payload: bytes | bytearray | memoryview) -> bytes:
    """The transaction status of a ReadyForQuery payload (b"I", b"T" or b"E").

    Raises ServerProtocolError for a malformed payload.
    """
    if len(payload) == 1:
        status = _READY_STATUSES.get(payload[0])
        if status is not None:
            return status
    message = decode_backend(ord("Z"), payload)
    assert isinstance(message, m.ReadyForQuery)
    return message.status


def command_tag(payload: bytes | bytearray | memoryview) -> str:
    """The tag of a CommandComplete payload; ServerProtocolError if malformed."""
    raw = bytes(payload)
    if raw and raw.find(0) == len(raw) - 1:
        return raw[:-1].decode("utf-8", "surrogateescape")
    message = decode_backend(ord("C"), payload)
    assert isinstance(message, m.CommandComplete)
    return message.tag


def data_row_values(
    payload: bytes | bytearray | memoryview,
) -> tuple[bytes | None, ...]:
    """The column values of a DataRow payload; ServerProtocolError if malformed."""
    raw = bytes(payload)
    size = len(raw)
    if size >= 2:
        count = _UINT16.unpack_from(raw, 0)[0]
        values: list[bytes | None] = []
        pos = 2
        unpack = _INT32.unpack_from
        while count and pos + 4 <= size:
            length = unpack(raw, pos)[0]
            pos += 4
            if length == -1:
                values.append(None)
            elif 0 <= length <= size - pos:
                values.append(raw[pos : pos + length])
                pos += length
            else:
                break
            count -= 1
        if not count and pos == size:
            return tuple(values)
    message = decode_backend(ord("D"), payload)
    assert isinstance(message, m.DataRow)
    return message.values


# Encoding ------------------------------------------------------------------------


def _cstr(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raise ProtocolError(f"nul byte in string {text[:40]!r}")
    return raw + b"\0"


def _encode_value(value: bytes | None) -> bytes:
    if value is None:
        return _NULL_VALUE
    return _INT32.pack(len(value)) + value


def _encode_int16s(values: tuple[int, ...]) -> bytes:
    return _UINT16.pack(len(values)) + struct.pack(f">{len(values)}h", *values)


def _encode_oids(values: tuple[int, ...]) -> bytes:
    return _UINT16.pack(len(values)) + struct.pack(f">{len(values)}I", *values)


def _encode_values(values: tuple[bytes | None, ...]) -> bytes:
    return _UINT16.pack(len(values)) + b"".join(map(_encode_value, values))


def _encode_kind(kind: bytes) -> bytes:
    if kind not in (b"S", b"P"):
        raise ProtocolError(f"bad kind {kind!r}, expected b'S' or b'P'")
    return kind


def _encode_key(key: bytes) -> bytes:
    if not m.MIN_CANCEL_KEY_LENGTH <= len(key) <= m.MAX_CANCEL_KEY_LENGTH:
        raise ProtocolError(f"bad cancel key length {len(key)}")
    return key


def _encode_report(fields: tuple[tuple[str, str], ...]) -> bytes:
    parts = []
    for code, value in fields:
        if len(code) != 1 or not 0 < ord(code) < 256:
            raise ProtocolError(f"bad field code {code!r}")
        parts.append(bytes([ord(code)]) + _cstr(value))
    parts.append(b"\0")
    return b"".join(parts)


def _encode_startup(msg: m.StartupMessage) -> bytes:
    parts = [_INT32.pack(msg.protocol_version)]
    for name, value in msg.parameters:
        if not name:
            raise ProtocolError("empty startup parameter name")
        parts += (_cstr(name), _cstr(value))
    parts.append(b"\0")
    return b"".join(parts)


def _encode_sasl(msg: m.AuthenticationSASL) -> bytes:
    if not all(msg.mechanisms):
        raise ProtocolError("empty sasl mechanism name")
    names = b"".join(_cstr(name) for name in msg.mechanisms)
    return _INT32.pack(m.AUTH_SASL) + names + b"\0"


def _encode_field(field: m.FieldDescription) -> bytes:
    return _cstr(field.name) + _FIELD.pack(
        field.table_oid,
        field.column_number,
        field.type_oid,
        field.type_size,
        field.type_modifier,
        field.format,
    )


def _encode_ready(msg: m.ReadyForQuery) -> bytes:
    if msg.status not in (b"I", b"T", b"E"):
        raise ProtocolError(f"bad transaction status {msg.status!r}")
    return msg.status


def _auth(code: int, data: bytes = b"") -> bytes:
    return _INT32.pack(code) + data


_FIELD = struct.Struct(">IhIhih")

# Each entry builds the payload; encode adds the type byte and the length.
_ENCODERS: Final[dict[type[Any], Callable[[Any], bytes]]] = {
    m.StartupMessage: _encode_startup,
    m.SSLRequest: lambda msg: _INT32.pack(m.SSL_REQUEST_CODE),
    m.GSSENCRequest: lambda msg: _INT32.pack(m.GSSENC_REQUEST_CODE),
    m.CancelRequest: lambda msg: (
        _INT32.pack(m.CANCEL_REQUEST_CODE)
        + _INT32.pack(msg.process_id)
        + _encode_key(msg.secret_key)
    ),
    m.Query: lambda msg: _cstr(msg.query),
    m.Parse: lambda msg: (
        _cstr(msg.name) + _cstr(msg.query) + _encode_oids(msg.param_types)
    ),
    m.Bind: lambda msg: (
        _cstr(msg.portal)
        + _cstr(msg.statement)
        + _encode_int16s(msg.param_formats)
        + _encode_values(msg.params)
        + _encode_int16s(msg.result_formats)
    ),
    m.Describe: lambda msg: _encode_kind(msg.kind) + _cstr(msg.name),
    m.Execute: lambda msg: _cstr(msg.portal) + _INT32.pack(msg.max_rows),
    m.Close: lambda msg: _encode_kind(msg.kind) + _cstr(msg.name),
    m.Sync: lambda msg: b"",
    m.Flush: lambda msg: b"",
    m.Terminate: lambda msg: b"",
    m.CopyData: lambda msg: bytes(msg.data),
    m.CopyDone: lambda msg: b"",
    m.CopyFail: lambda msg: _cstr(msg.message),
    m.FunctionCall: lambda msg: (
        _UINT32.pack(msg.function_oid)
        + _encode_int16s(msg.arg_formats)
        + _encode_values(msg.args)
        + _INT16.pack(msg.result_format)
    ),
    m.PasswordMessage: lambda msg: bytes(msg.data),
    m.SASLInitialResponse: lambda msg: _cstr(msg.mechanism) + _encode_value(msg.data),
    m.SASLResponse: lambda msg: bytes(msg.data),
    m.GSSResponse: lambda msg: bytes(msg.data),
    m.AuthenticationOk: lambda msg: _auth(m.AUTH_OK),
    m.AuthenticationKerberosV5: lambda msg: _auth(m.AUTH_KERBEROS_V5),
    m.AuthenticationCleartextPassword: lambda msg: _auth(m.AUTH_CLEARTEXT_PASSWORD),
    m.AuthenticationMD5Password: lambda msg: (
        _auth(m.AUTH_MD5_PASSWORD, msg.salt)
        if len(msg.salt) == 4
        else _fail(f"md5 salt of {len(msg.salt)} bytes, expected 4")
    ),
    m.AuthenticationGSS: lambda msg: _auth(m.AUTH_GSS),
    m.AuthenticationGSSContinue: lambda msg: _auth(m.AUTH_GSS_CONTINUE, msg.data),
    m.AuthenticationSSPI: lambda msg: _auth(m.AUTH_SSPI),
    m.AuthenticationSASL: _encode_sasl,
    m.AuthenticationSASLContinue: lambda msg: _auth(m.AUTH_SASL_CONTINUE, msg.data),
    m.AuthenticationSASLFinal: lambda msg: _auth(m.AUTH_SASL_FINAL, msg.data),
    m.BackendKeyData: lambda msg: (
        _INT32.pack(msg.process_id) + _encode_key(msg.secret_key)
    ),
    m.BindComplete: lambda msg: b"",
    m.CloseComplete: lambda msg: b"",
    m.CommandComplete: lambda msg: _cstr(msg.tag),
    m.CopyInResponse: lambda msg: (
        struct.pack(">b", msg.format) + _encode_int16s(msg.column_formats)
    ),
    m.CopyOutResponse: lambda msg: (
        struct.pack(">b", msg.format) + _encode_int16s(msg.column_formats)
    ),
    m.CopyBothResponse: lambda msg: (
        struct.pack(">b", msg.format) + _encode_int16s(msg.column_formats)
    ),
    m.DataRow: lambda msg: _encode_values(msg.values),
    m.EmptyQueryResponse: lambda msg: b"",
    m.ErrorResponse: lambda msg: _encode_report(msg.fields),
    m.NoticeResponse: lambda msg: _encode_report(msg.fields),
    m.FunctionCallResponse: lambda msg: _encode_value(msg.value),
    m.NegotiateProtocolVersion: lambda msg: (
        _INT32.pack(msg.newest_minor)
        + _INT32.pack(len(msg.unrecognized))
        + b"".join(map(_cstr, msg.unrecognized))
    ),
    m.NoData: lambda msg: b"",
    m.NotificationResponse: lambda msg: (
        _INT32.pack(msg.process_id) + _cstr(msg.channel) + _cstr(msg.payload)
    ),
    m.ParameterDescription: lambda msg: _encode_oids(msg.type_oids),
    m.ParameterStatus: lambda msg: _cstr(msg.name) + _cstr(msg.value),
    m.ParseComplete: lambda msg: b"",
    m.PortalSuspended: lambda msg: b"",
    m.ReadyForQuery: _encode_ready,
    m.RowDescription: lambda msg: (
        _UINT16.pack(len(msg.fields)) + b"".join(map(_encode_field, msg.fields))
    ),
}


def _fail(reason: str) -> bytes:
    raise ProtocolError(reason)


def encode(message: FrontendMessage | BackendMessage) -> bytes:
    """The full wire bytes of message: type byte (if any), Int32 length, payload.

    Raises ProtocolError if a field cannot be put on the wire (a nul byte in a
    string, a number out of range, more than 65535 array entries, a bad kind).
    """
    write = _ENCODERS.get(type(message))
    if write is None:
        raise TypeError(f"not a postgresql message: {type(message).__name__}")
    try:
        body = write(message)
    except (struct.error, UnicodeEncodeError) as exc:
        name = type(message).__name__
        raise ProtocolError(f"cannot encode {name}: {exc}") from None
    size = len(body) + 4
    if size > 0x7FFFFFFF:
        raise ProtocolError(f"message of {size} bytes does not fit an Int32 length")
    return message.type_code + _INT32.pack(size) + body

"""Property tests of the MySQL codec: a strategy per record, round trips under the
capabilities that shape it, arbitrary splits of a stream, 16 MiB payloads, and
arbitrary or truncated bytes that must fail with ProtocolError only."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pamwire.errors import ProtocolError
from pamwire.mysql import codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Capability, ColumnType, ServerStatus
from pamwire.mysql.packets import MAX_CHUNK, PacketReader, frame, payload

C = Capability

# Strings as decoders produce them: bytes decoded with surrogateescape, or any
# text without lone surrogates. "nul-free" ones are for NUL-terminated fields.
_raw_text = st.binary(max_size=24).map(lambda b: b.decode("utf-8", "surrogateescape"))
_plain_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=24)
text = _raw_text | _plain_text
nul_free = st.binary(max_size=24).map(
    lambda b: b.replace(b"\0", b"").decode("utf-8", "surrogateescape")
) | _plain_text.map(lambda s: s.replace("\0", ""))
data = st.binary(max_size=40)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
lenenc = st.integers(0, 300) | st.integers(0, 2**64 - 1)
pairs = st.lists(st.tuples(text, text), max_size=3).map(tuple)

# The capability bits the layouts depend on, in any combination.
caps_strategy = st.builds(
    lambda bits: sum(bits),
    st.sets(
        st.sampled_from(
            [
                int(C.CLIENT_PROTOCOL_41),
                int(C.CLIENT_TRANSACTIONS),
                int(C.CLIENT_SESSION_TRACK),
                int(C.CLIENT_DEPRECATE_EOF),
                int(C.CLIENT_SECURE_CONNECTION),
                int(C.CLIENT_PLUGIN_AUTH),
                int(C.CLIENT_CONNECT_ATTRS),
                int(C.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA),
                int(C.CLIENT_CONNECT_WITH_DB),
                int(C.MARIADB_CLIENT_CACHE_METADATA),
                int(C.MARIADB_CLIENT_EXTENDED_METADATA),
            ]
        )
    ),
)

STATE_CHANGED = int(ServerStatus.SERVER_SESSION_STATE_CHANGED)

BINARY_TYPES = [
    ColumnType.MYSQL_TYPE_NULL,
    ColumnType.MYSQL_TYPE_TINY,
    ColumnType.MYSQL_TYPE_SHORT,
    ColumnType.MYSQL_TYPE_LONG,
    ColumnType.MYSQL_TYPE_LONGLONG,
    ColumnType.MYSQL_TYPE_DOUBLE,
    ColumnType.MYSQL_TYPE_DATE,
    ColumnType.MYSQL_TYPE_DATETIME,
    ColumnType.MYSQL_TYPE_TIME,
    ColumnType.MYSQL_TYPE_VAR_STRING,
    ColumnType.MYSQL_TYPE_BLOB,
    ColumnType.MYSQL_TYPE_NEWDECIMAL,
]
_SIZES = {
    ColumnType.MYSQL_TYPE_NULL: 0,
    ColumnType.MYSQL_TYPE_TINY: 1,
    ColumnType.MYSQL_TYPE_SHORT: 2,
    ColumnType.MYSQL_TYPE_LONG: 4,
    ColumnType.MYSQL_TYPE_LONGLONG: 8,
    ColumnType.MYSQL_TYPE_DOUBLE: 8,
}
_TEMPORAL = {
    ColumnType.MYSQL_TYPE_DATE,
    ColumnType.MYSQL_TYPE_DATETIME,
    ColumnType.MYSQL_TYPE_TIME,
}


@st.composite
def binary_value(draw: st.DrawFn, type_: int) -> bytes:
    """A binary-protocol field of type_, as on the wire (length prefix included)."""
    if type_ in _SIZES:
        return draw(st.binary(min_size=_SIZES[type_], max_size=_SIZES[type_]))
    if type_ in _TEMPORAL:
        size = draw(st.sampled_from([0, 4, 7, 8, 11, 12]))
        return bytes([size]) + draw(st.binary(min_size=size, max_size=size))
    value = draw(st.binary(max_size=300))
    return codec.w.lenenc_bytes(value)


@st.composite
def typed_values(
    draw: st.DrawFn, min_size: int = 0
) -> tuple[list[int], tuple[bytes | None, ...]]:
    types = draw(st.lists(st.sampled_from(BINARY_TYPES), min_size=min_size, max_size=6))
    values = tuple(
        None if draw(st.booleans()) and draw(st.booleans()) else draw(binary_value(t))
        for t in types
    )
    return types, values


@st.composite
def ok_packet(draw: st.DrawFn, caps: int) -> m.OkPacket:
    status = warnings = 0
    if caps & C.CLIENT_PROTOCOL_41:
        status, warnings = draw(u16), draw(u16)
    elif caps & C.CLIENT_TRANSACTIONS:
        status = draw(u16)
    info: str | None = draw(text)
    state = None
    if caps & C.CLIENT_SESSION_TRACK:
        if status & STATE_CHANGED:
            state = draw(data)
        elif draw(st.booleans()):
            info = None
    return m.OkPacket(
        draw(lenenc),
        draw(lenenc),
        status,
        warnings,
        info,
        state,
        draw(st.sampled_from([0, 0xFE])),
    )


@st.composite
def err_packet(draw: st.DrawFn, caps: int) -> m.ErrPacket:
    state = None
    if caps & C.CLIENT_PROTOCOL_41 and draw(st.booleans()):
        state = draw(st.text("0123456789ABCDEFHYZ", min_size=5, max_size=5))
    message = draw(text)
    if state is None and caps & C.CLIENT_PROTOCOL_41:
        message = message.lstrip("#")
    return m.ErrPacket(draw(u16), state, message)


@st.composite
def handshake(draw: st.DrawFn, caps: int) -> m.HandshakeV10:
    flags = draw(u32)
    data_len = draw(u8)
    part_2 = b""
    if flags & C.CLIENT_SECURE_CONNECTION:
        size = max(13, data_len - 8)
        part_2 = draw(st.binary(min_size=size, max_size=size))
    name = draw(nul_free) if flags & C.CLIENT_PLUGIN_AUTH else ""
    return m.HandshakeV10(
        draw(nul_free),
        draw(u32),
        draw(st.binary(min_size=8, max_size=8)),
        flags,
        draw(u8),
        draw(u16),
        data_len,
        part_2,
        name,
        draw(st.binary(min_size=6, max_size=6)),
        draw(u32),
    )


@st.composite
def handshake_response(draw: st.DrawFn, caps: int) -> m.HandshakeResponse41:
    flags = draw(u32) | C.CLIENT_PROTOCOL_41
    if flags & C.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth = draw(data)
    elif flags & C.CLIENT_SECURE_CONNECTION:
        auth = draw(st.binary(max_size=255))
    else:
        auth = draw(data).replace(b"\0", b"")
    fields: list[Any] = []
    ended = False
    for flag, strategy in (
        (C.CLIENT_CONNECT_WITH_DB, nul_free),
        (C.CLIENT_PLUGIN_AUTH, nul_free),
        (C.CLIENT_CONNECT_ATTRS, pairs),
        (C.CLIENT_ZSTD_COMPRESSION_ALGORITHM, u8),
    ):
        if not flags & flag:
            fields.append(None)
        elif ended or not draw(st.booleans()):
            # The decoder stops at the first flagged field that is missing.
            ended = True
            fields.append(None)
        else:
            fields.append(draw(strategy))
    return m.HandshakeResponse41(
        flags,
        draw(u32),
        draw(u8),
        draw(nul_free),
        auth,
        *fields,
        reserved=draw(st.binary(min_size=19, max_size=19)),
        extended_capabilities=draw(u32),
    )


@st.composite
def column(draw: st.DrawFn, caps: int) -> m.ColumnDefinition41:
    field_list = draw(st.booleans())
    return m.ColumnDefinition41(
        *(draw(text) for _ in range(5)),
        draw(u16),
        draw(u32),
        draw(u8),
        draw(u16),
        draw(u8),
        draw(text),
        field_list,
        draw(st.none() | data) if field_list else None,
        draw(data) if caps & C.MARIADB_CLIENT_EXTENDED_METADATA else None,
    )


@st.composite
def change_user(draw: st.DrawFn, caps: int) -> m.ComChangeUser:
    auth = draw(
        st.binary(max_size=255)
        if caps & C.CLIENT_SECURE_CONNECTION
        else data.map(lambda b: b.replace(b"\0", b""))
    )
    user, schema = draw(nul_free), draw(nul_free)
    if draw(st.booleans()):
        return m.ComChangeUser(user, auth, schema)
    plugin = draw(nul_free) if caps & C.CLIENT_PLUGIN_AUTH else None
    attrs = None
    if caps & C.CLIENT_CONNECT_ATTRS and (
        plugin is not None or not caps & C.CLIENT_PLUGIN_AUTH
    ):
        attrs = draw(st.none() | pairs)
    if plugin is not None and attrs is None and draw(st.booleans()):
        plugin = None
    return m.ComChangeUser(user, auth, schema, draw(u16), plugin, attrs)


@st.composite
def stmt_execute(draw: st.DrawFn, caps: int) -> m.ComStmtExecute:
    types, values = draw(typed_values())
    if not types:
        return m.ComStmtExecute(
            draw(u32), draw(st.sampled_from([0, 1, 2, 4])), draw(u32)
        )
    bound = draw(st.sampled_from([0, 1]))
    sent = tuple((t, draw(st.sampled_from([0, 0x80]))) for t in types) if bound else ()
    return m.ComStmtExecute(
        draw(u32), draw(st.sampled_from([0, 1])), draw(u32), bound, sent, values
    )


Strategy = Callable[[int], st.SearchStrategy[Any]]

STRATEGIES: dict[str, Strategy] = {
    "HandshakeV10": handshake,
    "SSLRequest": lambda caps: st.builds(
        m.SSLRequest,
        u32.map(lambda f: f | C.CLIENT_PROTOCOL_41 | C.CLIENT_SSL),
        u32,
        u8,
        st.binary(min_size=19, max_size=19),
        u32,
    ),
    "HandshakeResponse41": handshake_response,
    "AuthSwitchRequest": lambda caps: st.builds(m.AuthSwitchRequest, nul_free, data),
    "AuthSwitchResponse": lambda caps: st.builds(m.AuthSwitchResponse, data),
    "AuthMoreData": lambda caps: st.builds(m.AuthMoreData, data),
    "OkPacket": ok_packet,
    "ErrPacket": err_packet,
    "EofPacket": lambda caps: (
        st.builds(m.EofPacket, u16, u16)
        if caps & C.CLIENT_PROTOCOL_41
        else st.just(m.EofPacket())
    ),
    "ColumnCount": lambda caps: st.builds(
        m.ColumnCount,
        lenenc.filter(bool),
        st.sampled_from([0, 1])
        if caps & C.MARIADB_CLIENT_CACHE_METADATA
        else st.none(),
    ),
    "ColumnDefinition41": column,
    "TextResultsetRow": lambda caps: st.builds(
        m.TextResultsetRow, st.lists(st.none() | data, max_size=6).map(tuple)
    ),
    "BinaryResultsetRow": lambda caps: typed_values().map(
        lambda tv: m.BinaryResultsetRow(tv[1])
    ),
    "LocalInfileRequest": lambda caps: st.builds(m.LocalInfileRequest, text),
    "ComStmtPrepareOk": lambda caps: st.builds(m.ComStmtPrepareOk, u32, u16, u16, u16),
    "ComQuery": lambda caps: st.builds(m.ComQuery, text),
    "ComQuit": lambda caps: st.just(m.ComQuit()),
    "ComInitDb": lambda caps: st.builds(m.ComInitDb, text),
    "ComPing": lambda caps: st.just(m.ComPing()),
    "ComFieldList": lambda caps: st.builds(m.ComFieldList, nul_free, text),
    "ComStatistics": lambda caps: st.just(m.ComStatistics()),
    "ComSetOption": lambda caps: st.builds(m.ComSetOption, u16),
    "ComResetConnection": lambda caps: st.just(m.ComResetConnection()),
    "ComChangeUser": change_user,
    "ComStmtPrepare": lambda caps: st.builds(m.ComStmtPrepare, text),
    "ComStmtExecute": stmt_execute,
    "ComStmtSendLongData": lambda caps: st.builds(
        m.ComStmtSendLongData, u32, u16, data
    ),
    "ComStmtClose": lambda caps: st.builds(m.ComStmtClose, u32),
    "ComStmtReset": lambda caps: st.builds(m.ComStmtReset, u32),
    "ComStmtFetch": lambda caps: st.builds(m.ComStmtFetch, u32, u32),
    "ComProcessKill": lambda caps: st.builds(m.ComProcessKill, u32),
    "ComOther": lambda caps: st.builds(
        m.ComOther, st.sampled_from([0x00, 0x05, 0x06, 0x12, 0x1E, 0xFA]), data
    ),
}

COMMANDS = {
    name for name in STRATEGIES if name.startswith("Com") and name != "ComStmtPrepareOk"
}


def decode(name: str, raw: bytes, caps: int, message: Any) -> Any:
    """Decode raw with the decoder the proxy would use for a message of kind name."""
    if name == "HandshakeV10":
        return codec.decode_handshake(raw)
    if name in ("SSLRequest", "HandshakeResponse41"):
        return codec.decode_handshake_response(raw)
    if name in ("AuthSwitchRequest", "AuthMoreData"):
        return codec.decode_auth_reply(raw, caps)
    if name == "AuthSwitchResponse":
        return codec.decode_auth_response(raw)
    if name == "OkPacket":
        return codec.decode_ok(raw, caps)
    if name == "ErrPacket":
        return codec.decode_err(raw, caps)
    if name == "EofPacket":
        return codec.decode_eof(raw, caps)
    if name == "ColumnCount":
        return codec.decode_column_count(raw, caps)
    if name == "ColumnDefinition41":
        return codec.decode_column_definition(raw, caps, field_list=message.field_list)
    if name == "TextResultsetRow":
        return codec.decode_text_row(raw, len(message.values))
    if name == "LocalInfileRequest":
        return codec.decode_local_infile_request(raw)
    if name == "ComStmtPrepareOk":
        return codec.decode_stmt_prepare_ok(raw)
    statements = None
    if name == "ComStmtExecute":
        statements = {message.statement_id: statement_params(message)}
    return codec.decode_command(raw, caps, statements)


def statement_params(message: m.ComStmtExecute) -> m.StatementParams:
    return m.StatementParams(len(message.values), message.parameter_types)


@pytest.mark.parametrize(
    "name", sorted(set(STRATEGIES) - {"BinaryResultsetRow", "ComStmtExecute"})
)
@settings(max_examples=60, deadline=None)
@given(caps=caps_strategy, data_=st.data())
def test_codec_round_trip(name: str, caps: int, data_: st.DataObject) -> None:
    message = data_.draw(STRATEGIES[name](caps))
    raw = codec.encode_payload(message, caps)
    decoded = decode(name, raw, caps, message)
    assert decoded == message
    assert codec.encode_payload(decoded, caps) == raw


@settings(max_examples=200, deadline=None)
@given(typed_values())
def test_codec_binary_row_round_trip(
    types_values: tuple[list[int], tuple[bytes | None, ...]],
) -> None:
    types, values = types_values
    row = m.BinaryResultsetRow(values)
    raw = codec.encode_payload(row, 0)
    assert codec.decode_binary_row(raw, types) == row


@settings(max_examples=200, deadline=None)
@given(typed_values(min_size=1), st.data())
def test_codec_stmt_execute_round_trip(
    types_values: tuple[list[int], tuple[bytes | None, ...]], data_: st.DataObject
) -> None:
    types, values = types_values
    pairs_ = tuple((t, data_.draw(st.sampled_from([0, 0x80]))) for t in types)
    bound = data_.draw(st.booleans())
    message = m.ComStmtExecute(
        data_.draw(u32), 0, 1, int(bound), pairs_ if bound else (), values
    )
    raw = codec.encode_payload(message, 0)
    params = m.StatementParams(len(types), pairs_)
    assert codec.decode_command(raw, 0, {message.statement_id: params}) == message


@settings(max_examples=200, deadline=None)
@given(typed_values(min_size=1), st.data())
def test_codec_execute_nulls_agree_with_the_full_decode(
    types_values: tuple[list[int], tuple[bytes | None, ...]], data_: st.DataObject
) -> None:
    types, values = types_values
    pairs_ = tuple((t, data_.draw(st.sampled_from([0, 0x80]))) for t in types)
    bound = data_.draw(st.booleans())
    message = m.ComStmtExecute(
        data_.draw(u32), 0, 1, int(bound), pairs_ if bound else (), values
    )
    raw = codec.encode_payload(message, 0)
    params = m.StatementParams(len(types), pairs_)
    nulls, sent = codec.decode_execute_nulls(raw, params)
    assert sent == message.parameter_types
    assert [bool(nulls >> i & 1) for i in range(len(values))] == [
        v is None for v in values
    ]


# Streams ---------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=8), u8, st.data())
def test_packet_reader_any_split_gives_same_packets(
    payloads: list[bytes], first_seq: int, data_: st.DataObject
) -> None:
    stream = b"".join(frame(p, (first_seq + i) & 0xFF) for i, p in enumerate(payloads))
    cuts = sorted(
        data_.draw(st.lists(st.integers(0, len(stream)), max_size=10, unique=True))
    )
    reader = PacketReader()
    got, raw = [], b""
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.feed(stream[a:b])
        block, packets = reader.read_packets()
        raw += block
        got += [(p.sequence_id, bytes(payload(block, p))) for p in packets]
    assert raw == stream
    assert got == [((first_seq + i) & 0xFF, p) for i, p in enumerate(payloads)]
    assert reader.buffered == 0


@pytest.mark.parametrize(
    "size", [MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1, 2 * MAX_CHUNK, 2 * MAX_CHUNK + 7]
)
@settings(max_examples=3, deadline=None)
@given(st.data())
def test_packet_reader_large_payload_split_and_joined(
    size: int, data_: st.DataObject
) -> None:
    big = bytes([size & 0xFF]) * size
    stream = frame(big, 3) + frame(b"\x0e", 0)
    chunks = size // MAX_CHUNK + 1
    assert len(stream) == size + 4 * chunks + 5
    cuts = sorted(
        data_.draw(st.lists(st.integers(0, len(stream)), max_size=6, unique=True))
    )
    reader = PacketReader()
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.feed(stream[a:b])
        block, packets = reader.read_packets()
        got += [(p, payload(block, p)) for p in packets]
    assert len(got) == 2
    assert bytes(got[0][1]) == big
    assert bytes(got[1][1]) == b"\x0e"
    first = got[0][0]
    assert first.length == size
    assert first.last_sequence_id == (3 + chunks - 1) & 0xFF


# Arbitrary bytes fail only with ProtocolError --------------------------------------

DECODERS: list[Callable[[bytes, int], Any]] = [
    lambda raw, caps: codec.decode_handshake(raw),
    lambda raw, caps: codec.decode_handshake_response(raw),
    codec.decode_auth_reply,
    codec.decode_ok,
    codec.decode_err,
    codec.decode_eof,
    codec.decode_end_of_rows,
    codec.decode_response,
    lambda raw, caps: codec.decode_column_definition(
        raw, caps, field_list=bool(caps & 1)
    ),
    lambda raw, caps: codec.decode_text_row(raw, caps % 5),
    lambda raw, caps: codec.decode_binary_row(raw, BINARY_TYPES[: caps % 7]),
    lambda raw, caps: codec.decode_stmt_prepare_ok(raw),
    lambda raw, caps: codec.decode_command(raw, caps),
    lambda raw, caps: codec.decode_com_stmt_execute(
        raw,
        m.StatementParams(caps % 4, tuple((t, 0) for t in BINARY_TYPES[: caps % 4])),
    ),
]


@pytest.mark.parametrize("index", range(len(DECODERS)))
@settings(max_examples=300, deadline=None)
@given(caps=caps_strategy | u32, raw=st.binary(max_size=80))
def test_decoders_arbitrary_bytes_fail_cleanly_or_round_trip(
    index: int, caps: int, raw: bytes
) -> None:
    try:
        message = DECODERS[index](raw, caps)
    except ProtocolError:
        return
    if isinstance(
        message, m.BinaryResultsetRow | m.ComStmtExecute | m.TextResultsetRow
    ):
        assert codec.encode_payload(message, caps) == raw
        return
    with contextlib.suppress(ProtocolError):
        assert codec.encode_payload(message, caps) == raw


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=30), max_size=6))
def test_packet_reader_arbitrary_bytes_fail_cleanly(pieces: list[bytes]) -> None:
    reader = PacketReader(max_packet_size=1 << 20)
    consumed = b""
    try:
        for piece in pieces:
            reader.feed(piece)
            block, packets = reader.read_packets()
            consumed += block
            if packets:
                assert packets[-1].end == len(block)
    except ProtocolError:
        return
    assert len(consumed) + reader.buffered == sum(map(len, pieces))


# Records whose every truncation must fail (no open-ended or optional tail).
FIXED = {
    "HandshakeV10",
    "SSLRequest",
    "ColumnCount",
    "ColumnDefinition41",
    "TextResultsetRow",
    "ComStmtPrepareOk",
    "ComSetOption",
    "ComStmtClose",
    "ComStmtReset",
    "ComStmtFetch",
    "ComProcessKill",
}


@pytest.mark.parametrize("name", sorted(FIXED))
@settings(max_examples=25, deadline=None)
@given(caps=caps_strategy, data_=st.data())
def test_codec_truncated_payload_raises(
    name: str, caps: int, data_: st.DataObject
) -> None:
    message = data_.draw(STRATEGIES[name](caps))
    raw = codec.encode_payload(message, caps)
    if name == "TextResultsetRow" and not message.values:
        return
    for cut in range(len(raw)):
        with pytest.raises(ProtocolError):
            decode(name, raw[:cut], caps, message)


@settings(max_examples=100, deadline=None)
@given(typed_values(min_size=1))
def test_codec_truncated_binary_row_and_execute_raise(
    types_values: tuple[list[int], tuple[bytes | None, ...]],
) -> None:
    types, values = types_values
    raw = codec.encode_payload(m.BinaryResultsetRow(values), 0)
    for cut in range(len(raw)):
        with pytest.raises(ProtocolError):
            codec.decode_binary_row(raw[:cut], types)
    execute = m.ComStmtExecute(1, 0, 1, 1, tuple((t, 0) for t in types), values)
    raw = codec.encode_payload(execute, 0)
    params = m.StatementParams(len(types))
    for cut in range(len(raw)):
        with pytest.raises(ProtocolError):
            codec.decode_com_stmt_execute(raw[:cut], params)


def test_struct_layout_of_eof() -> None:
    assert codec.encode_payload(
        m.EofPacket(1, 2), C.CLIENT_PROTOCOL_41
    ) == b"\xfe" + struct.pack("<HH", 1, 2)

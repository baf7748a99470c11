"""Sans-IO decoding and encoding of MySQL/MariaDB packet payloads.

Theory of operation: MySQL packets carry no type byte that says what they are;
the meaning of a payload depends on the phase and on the command it answers,
and its layout on the negotiated capabilities. So there is one decoder per
place in the conversation (decode_handshake, decode_command, decode_response,
...), each taking the capabilities, and results.py follows a command's reply to
say which decoder applies. encode_payload builds the payload of any record and
encode adds the packet headers. Decoding is strict: anything that does not match
the documented layout exactly raises ProtocolError (ClientProtocolError or
ServerProtocolError by direction), so a decoded packet re-encodes byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from pamwire.errors import ClientProtocolError, ProtocolError, ServerProtocolError
from pamwire.mysql import cursor as w
from pamwire.mysql import messages as m
from pamwire.mysql.constants import (
    BINARY_TEMPORAL_TYPES,
    BINARY_VALUE_SIZES,
    Capability,
    Command,
    CursorType,
    ServerStatus,
)
from pamwire.mysql.cursor import Cursor
from pamwire.mysql.packets import MAX_CHUNK, frame

__all__ = [
    "SUPPORTED_CAPABILITIES",
    "decode_auth_reply",
    "decode_auth_response",
    "decode_binary_row",
    "decode_column_count",
    "decode_column_definition",
    "decode_com_stmt_execute",
    "decode_command",
    "decode_end_of_rows",
    "decode_eof",
    "decode_err",
    "decode_handshake",
    "decode_handshake_response",
    "decode_local_infile_request",
    "decode_ok",
    "decode_response",
    "decode_stmt_prepare_ok",
    "decode_text_row",
    "encode",
    "encode_payload",
    "is_end_of_rows",
    "parse_session_state",
    "session_schema",
    "session_system_variables",
]

# Plain ints for the hot path (IntFlag arithmetic builds enum members).
PROTOCOL_41: Final = int(Capability.CLIENT_PROTOCOL_41)
TRANSACTIONS: Final = int(Capability.CLIENT_TRANSACTIONS)
SECURE_CONNECTION: Final = int(Capability.CLIENT_SECURE_CONNECTION)
PLUGIN_AUTH: Final = int(Capability.CLIENT_PLUGIN_AUTH)
LENENC_CLIENT_DATA: Final = int(Capability.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA)
CONNECT_WITH_DB: Final = int(Capability.CLIENT_CONNECT_WITH_DB)
CONNECT_ATTRS: Final = int(Capability.CLIENT_CONNECT_ATTRS)
SESSION_TRACK: Final = int(Capability.CLIENT_SESSION_TRACK)
DEPRECATE_EOF: Final = int(Capability.CLIENT_DEPRECATE_EOF)
SSL: Final = int(Capability.CLIENT_SSL)
ZSTD: Final = int(Capability.CLIENT_ZSTD_COMPRESSION_ALGORITHM)
QUERY_ATTRIBUTES: Final = int(Capability.CLIENT_QUERY_ATTRIBUTES)
STATE_CHANGED: Final = int(ServerStatus.SERVER_SESSION_STATE_CHANGED)
OPTIONAL_METADATA: Final = int(
    Capability.CLIENT_OPTIONAL_RESULTSET_METADATA
    | Capability.MARIADB_CLIENT_CACHE_METADATA
)
EXTENDED_METADATA: Final = int(Capability.MARIADB_CLIENT_EXTENDED_METADATA)
PROGRESS: Final = int(Capability.MARIADB_CLIENT_PROGRESS)

# Capabilities whose packet layouts this codec reads and writes. A proxy
# advertises at most these (intersected with the server's), so both legs frame
# alike. Not here: compression, TLS (CLIENT_SSL changes no layout; the server
# layer adds it where TLS is configured), optional result set metadata, query
# attributes, multi-factor authentication, MariaDB's progress reports, bulk
# operations and extended or cached metadata.
SUPPORTED_CAPABILITIES: Final = int(
    Capability.CLIENT_LONG_PASSWORD
    | Capability.CLIENT_FOUND_ROWS
    | Capability.CLIENT_LONG_FLAG
    | Capability.CLIENT_CONNECT_WITH_DB
    | Capability.CLIENT_NO_SCHEMA
    | Capability.CLIENT_ODBC
    | Capability.CLIENT_LOCAL_FILES
    | Capability.CLIENT_IGNORE_SPACE
    | Capability.CLIENT_PROTOCOL_41
    | Capability.CLIENT_INTERACTIVE
    | Capability.CLIENT_IGNORE_SIGPIPE
    | Capability.CLIENT_TRANSACTIONS
    | Capability.CLIENT_SECURE_CONNECTION
    | Capability.CLIENT_MULTI_STATEMENTS
    | Capability.CLIENT_MULTI_RESULTS
    | Capability.CLIENT_PS_MULTI_RESULTS
    | Capability.CLIENT_PLUGIN_AUTH
    | Capability.CLIENT_CONNECT_ATTRS
    | Capability.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS
    | Capability.CLIENT_SESSION_TRACK
    | Capability.CLIENT_DEPRECATE_EOF
    | Capability.CLIENT_REMEMBER_OPTIONS
)

_COLUMN_FIXED_FIELDS = 0x0C
_TEMPORAL_LENGTHS = frozenset({0, 4, 7, 8, 11, 12})

Payload = bytes | bytearray | memoryview


def _guard(
    error: type[ProtocolError], name: str, read: Callable[[Cursor], Any], data: Payload
) -> Any:
    """Run read over data, demand the end, and re-raise failures as error."""
    cur = Cursor(data)
    try:
        message = read(cur)
        cur.expect_end()
    except error:
        raise
    except ProtocolError as exc:
        raise error(f"bad {name}: {exc}") from None
    return message


# Shared fields ---------------------------------------------------------------------


def _attrs(cur: Cursor) -> tuple[tuple[str, str], ...]:
    inner = Cursor(cur.lenenc_bytes())
    pairs = []
    while not inner.at_end():
        pairs.append((inner.lenenc_str(), inner.lenenc_str()))
    return tuple(pairs)


def _encode_attrs(pairs: tuple[tuple[str, str], ...]) -> bytes:
    body = b"".join(w.lenenc_str(k) + w.lenenc_str(v) for k, v in pairs)
    return w.lenenc_bytes(body)


def _binary_field(cur: Cursor, type_: int) -> bytes:
    """One binary-protocol value as it is on the wire, length prefix included."""
    start = cur.position
    size = BINARY_VALUE_SIZES.get(type_)
    if size is not None:
        cur.bytes(size)
    elif type_ in BINARY_TEMPORAL_TYPES:
        length = cur.int1()
        if length not in _TEMPORAL_LENGTHS:
            raise ProtocolError(f"temporal value of bad length {length}")
        cur.bytes(length)
    else:
        cur.bytes(cur.lenenc_int())
    return cur.since(start)


def _null_bitmap(cur: Cursor, count: int, offset: int) -> int:
    size = (count + offset + 7) // 8
    bitmap = int.from_bytes(cur.bytes(size), "little")
    if bitmap >> (count + offset) or bitmap & ((1 << offset) - 1):
        raise ProtocolError("null bitmap has bits set outside its columns")
    return bitmap >> offset


def _encode_bitmap(values: Sequence[bytes | None], offset: int) -> bytes:
    bits = 0
    for index, value in enumerate(values):
        if value is None:
            bits |= 1 << (index + offset)
    return bits.to_bytes((len(values) + offset + 7) // 8, "little")


# Connection phase ------------------------------------------------------------------


def _read_handshake(cur: Cursor) -> m.HandshakeV10:
    version = cur.int1()
    if version != 10:
        raise ProtocolError(f"unsupported handshake protocol version {version}")
    server_version = cur.nul_str()
    connection_id = cur.int4()
    part_1 = cur.bytes(8)
    if cur.int1() != 0:
        raise ProtocolError("handshake filler byte is not 0")
    lower = cur.int2()
    character_set = cur.int1()
    status_flags = cur.int2()
    caps = lower | cur.int2() << 16
    data_len = cur.int1()
    reserved = cur.bytes(6)
    extended = cur.int4()
    part_2 = b""
    if caps & SECURE_CONNECTION:
        part_2 = cur.bytes(max(13, data_len - 8))
    plugin = cur.nul_str() if caps & PLUGIN_AUTH else ""
    return m.HandshakeV10(
        server_version=server_version,
        connection_id=connection_id,
        auth_plugin_data_part_1=part_1,
        capability_flags=caps,
        character_set=character_set,
        status_flags=status_flags,
        auth_plugin_data_len=data_len,
        auth_plugin_data_part_2=part_2,
        auth_plugin_name=plugin,
        reserved=reserved,
        extended_capabilities=extended,
        protocol_version=version,
    )


def decode_handshake(payload: Payload) -> m.HandshakeV10 | m.ErrPacket:
    """Decode the server's first packet: HandshakeV10, or an ERR refusing us.

    Raises ServerProtocolError for another protocol version or a malformed body.
    """
    if payload[:1] == b"\xff":
        return decode_err(payload, PROTOCOL_41)
    result: m.HandshakeV10 = _guard(
        ServerProtocolError, "HandshakeV10", _read_handshake, payload
    )
    return result


def _read_handshake_response(cur: Cursor) -> m.HandshakeResponse41 | m.SSLRequest:
    caps = cur.int4()
    if not caps & PROTOCOL_41:
        raise ProtocolError("client without CLIENT_PROTOCOL_41 is not supported")
    max_packet_size = cur.int4()
    character_set = cur.int1()
    reserved = cur.bytes(19)
    extended = cur.int4()
    if cur.at_end():
        if not caps & SSL:
            raise ProtocolError("32-byte response without CLIENT_SSL")
        return m.SSLRequest(caps, max_packet_size, character_set, reserved, extended)

    username = cur.nul_str()
    if caps & LENENC_CLIENT_DATA:
        auth = cur.lenenc_bytes()
    elif caps & SECURE_CONNECTION:
        auth = cur.bytes(cur.int1())
    else:
        auth = cur.nul_bytes()
    # Clients that set a flag but stop early are accepted, as servers do.
    database = cur.nul_str() if caps & CONNECT_WITH_DB and not cur.at_end() else None
    plugin = cur.nul_str() if caps & PLUGIN_AUTH and not cur.at_end() else None
    attrs = _attrs(cur) if caps & CONNECT_ATTRS and not cur.at_end() else None
    zstd = cur.int1() if caps & ZSTD and not cur.at_end() else None
    return m.HandshakeResponse41(
        capability_flags=caps,
        max_packet_size=max_packet_size,
        character_set=character_set,
        username=username,
        auth_response=auth,
        database=database,
        auth_plugin_name=plugin,
        connect_attrs=attrs,
        zstd_compression_level=zstd,
        reserved=reserved,
        extended_capabilities=extended,
    )


def decode_handshake_response(
    payload: Payload,
) -> m.HandshakeResponse41 | m.SSLRequest:
    """Decode the client's answer to the handshake (an SSLRequest if 32 bytes).

    Raises ClientProtocolError for a pre-4.1 client or a malformed body.
    """
    result: m.HandshakeResponse41 | m.SSLRequest = _guard(
        ClientProtocolError, "HandshakeResponse41", _read_handshake_response, payload
    )
    return result


def _read_auth_reply(
    cur: Cursor, caps: int
) -> m.OkPacket | m.ErrPacket | m.AuthSwitchRequest | m.AuthMoreData:
    first = cur.peek()
    if first == m.OK_HEADER:
        return _read_ok(cur, caps)
    if first == m.ERR_HEADER:
        return _read_err(cur, caps)
    cur.int1()
    if first == m.AUTH_SWITCH_HEADER:
        if cur.at_end():
            raise ProtocolError("old-password auth switch is not supported")
        return m.AuthSwitchRequest(cur.nul_str(), cur.rest())
    if first == m.AUTH_MORE_DATA_HEADER:
        return m.AuthMoreData(cur.rest())
    raise ProtocolError(f"unexpected packet 0x{first:02x} during authentication")


def decode_auth_reply(
    payload: Payload, capabilities: int
) -> m.OkPacket | m.ErrPacket | m.AuthSwitchRequest | m.AuthMoreData:
    """Decode a server packet of the authentication exchange.

    Raises ServerProtocolError for anything else (including MySQL's old-password
    switch, a lone 0xFE).
    """
    result: m.OkPacket | m.ErrPacket | m.AuthSwitchRequest | m.AuthMoreData = _guard(
        ServerProtocolError,
        "authentication reply",
        lambda c: _read_auth_reply(c, capabilities),
        payload,
    )
    return result


def decode_auth_response(payload: Payload) -> m.AuthSwitchResponse:
    """A client packet during authentication after the handshake response: raw data."""
    return m.AuthSwitchResponse(bytes(payload))


# Generic responses -----------------------------------------------------------------


def _read_ok(cur: Cursor, caps: int) -> m.OkPacket:
    header = cur.int1()
    if header not in (m.OK_HEADER, m.EOF_HEADER):
        raise ProtocolError(f"ok packet header 0x{header:02x}")
    affected_rows = cur.lenenc_int()
    last_insert_id = cur.lenenc_int()
    status = warnings = 0
    if caps & PROTOCOL_41:
        status = cur.int2()
        warnings = cur.int2()
    elif caps & TRANSACTIONS:
        status = cur.int2()
    info: str | None
    state = None
    if caps & SESSION_TRACK:
        if cur.at_end() and not status & STATE_CHANGED:
            info = None
        else:
            info = cur.lenenc_str()
            if status & STATE_CHANGED:
                state = cur.lenenc_bytes()
    else:
        info = cur.rest_str()
    return m.OkPacket(
        affected_rows, last_insert_id, status, warnings, info, state, header
    )


def _read_err(cur: Cursor, caps: int) -> m.ErrPacket:
    if cur.int1() != m.ERR_HEADER:
        raise ProtocolError("err packet header is not 0xff")
    code = cur.int2()
    state = None
    if caps & PROTOCOL_41 and not cur.at_end() and cur.peek() == ord("#"):
        cur.int1()
        state = cur.bytes(5).decode("utf-8", "surrogateescape")
    return m.ErrPacket(code, state, cur.rest_str())


def _read_eof(cur: Cursor, caps: int) -> m.EofPacket:
    if cur.int1() != m.EOF_HEADER:
        raise ProtocolError("eof packet header is not 0xfe")
    if caps & PROTOCOL_41:
        return m.EofPacket(cur.int2(), cur.int2())
    return m.EofPacket()


def decode_ok(payload: Payload, capabilities: int) -> m.OkPacket:
    """Decode an OK packet (header 0x00 or 0xFE). Raises ServerProtocolError."""
    result: m.OkPacket = _guard(
        ServerProtocolError, "OK", lambda c: _read_ok(c, capabilities), payload
    )
    return result


def decode_err(payload: Payload, capabilities: int) -> m.ErrPacket:
    """Decode an ERR packet. Raises ServerProtocolError."""
    result: m.ErrPacket = _guard(
        ServerProtocolError, "ERR", lambda c: _read_err(c, capabilities), payload
    )
    return result


def decode_eof(payload: Payload, capabilities: int) -> m.EofPacket:
    """Decode an EOF packet. Raises ServerProtocolError."""
    if len(payload) == 5 and payload[0] == m.EOF_HEADER and capabilities & PROTOCOL_41:
        # The one shape a 4.1 EOF has, read without a cursor: it ends every
        # result set of a client without DEPRECATE_EOF, twice.
        return m.EofPacket(payload[1] | payload[2] << 8, payload[3] | payload[4] << 8)
    result: m.EofPacket = _guard(
        ServerProtocolError, "EOF", lambda c: _read_eof(c, capabilities), payload
    )
    return result


def is_end_of_rows(first_byte: int, length: int) -> bool:
    """Whether a packet where a row (or column definition) may stand ends the list.

    An EOF packet or an OK packet with header 0xFE starts with 0xFE; so does a
    row whose first value is at least 2**24 bytes long, but such a row is
    longer than one physical packet. EOF packets are 5 bytes (the documents'
    "less than 9" rule); an OK packet carrying session state can be longer.
    """
    return first_byte == m.EOF_HEADER and length < MAX_CHUNK


def decode_end_of_rows(payload: Payload, capabilities: int) -> m.EofPacket | m.OkPacket:
    """Decode the packet that ends rows: OK with 0xFE under DEPRECATE_EOF, else EOF."""
    if capabilities & DEPRECATE_EOF:
        return decode_ok(payload, capabilities)
    if len(payload) >= 9:
        raise ServerProtocolError(f"eof packet of {len(payload)} bytes, expected < 9")
    return decode_eof(payload, capabilities)


def decode_response(
    payload: Payload, capabilities: int
) -> m.OkPacket | m.ErrPacket | m.LocalInfileRequest | m.ColumnCount:
    """Decode the first packet of a (next) result: OK, ERR, LOCAL INFILE or columns."""
    first = payload[0] if len(payload) else -1
    if first == m.OK_HEADER:
        return decode_ok(payload, capabilities)
    if first == m.ERR_HEADER:
        return decode_err(payload, capabilities)
    if first == m.LOCAL_INFILE_HEADER:
        return decode_local_infile_request(payload)
    return decode_column_count(payload, capabilities)


def decode_local_infile_request(payload: Payload) -> m.LocalInfileRequest:
    def read(cur: Cursor) -> m.LocalInfileRequest:
        if cur.int1() != m.LOCAL_INFILE_HEADER:
            raise ProtocolError("local infile request header is not 0xfb")
        return m.LocalInfileRequest(cur.rest_str())

    result: m.LocalInfileRequest = _guard(
        ServerProtocolError, "LocalInfileRequest", read, payload
    )
    return result


# The column counts below 251, shared: each is one byte on the wire.
_COLUMN_COUNTS: Final = tuple(m.ColumnCount(n) for n in range(0xFB))


def decode_column_count(payload: Payload, capabilities: int = 0) -> m.ColumnCount:
    """Decode a column count (with its metadata-follows byte where negotiated)."""
    if (
        len(payload) == 1
        and 0 < payload[0] < 0xFB
        and not capabilities & OPTIONAL_METADATA
    ):
        return _COLUMN_COUNTS[payload[0]]  # a one-byte length-encoded integer

    def read(cur: Cursor) -> m.ColumnCount:
        count = cur.lenenc_int()
        if count == 0:
            raise ProtocolError("column count 0")
        if not capabilities & OPTIONAL_METADATA:
            return m.ColumnCount(count)
        follows = cur.int1()
        if follows not in (0, 1):
            raise ProtocolError(f"metadata_follows {follows}, expected 0 or 1")
        return m.ColumnCount(count, follows)

    result: m.ColumnCount = _guard(ServerProtocolError, "column count", read, payload)
    return result


def _read_column(cur: Cursor, caps: int, field_list: bool) -> m.ColumnDefinition41:
    catalog = cur.lenenc_str()
    schema = cur.lenenc_str()
    table = cur.lenenc_str()
    org_table = cur.lenenc_str()
    name = cur.lenenc_str()
    org_name = cur.lenenc_str()
    extended = cur.lenenc_bytes() if caps & EXTENDED_METADATA else None
    fixed = cur.lenenc_int()
    if fixed != _COLUMN_FIXED_FIELDS:
        raise ProtocolError(f"column fixed-fields length {fixed}, expected 12")
    character_set = cur.int2()
    column_length = cur.int4()
    column_type = cur.int1()
    flags = cur.int2()
    decimals = cur.int1()
    if cur.int2() != 0:
        raise ProtocolError("column definition filler is not 0")
    default = cur.lenenc_bytes_or_null() if field_list else None
    return m.ColumnDefinition41(
        schema=schema,
        table=table,
        org_table=org_table,
        name=name,
        org_name=org_name,
        character_set=character_set,
        column_length=column_length,
        column_type=column_type,
        flags=flags,
        decimals=decimals,
        catalog=catalog,
        field_list=field_list,
        default_value=default,
        extended_metadata=extended,
    )


def decode_column_definition(
    payload: Payload, capabilities: int = 0, *, field_list: bool = False
) -> m.ColumnDefinition41:
    """Decode a ColumnDefinition41; field_list for COM_FIELD_LIST replies (default)."""
    result: m.ColumnDefinition41 = _guard(
        ServerProtocolError,
        "ColumnDefinition41",
        lambda c: _read_column(c, capabilities, field_list),
        payload,
    )
    return result


def decode_text_row(payload: Payload, column_count: int) -> m.TextResultsetRow:
    """Decode a text-protocol row of column_count values."""

    def read(cur: Cursor) -> m.TextResultsetRow:
        return m.TextResultsetRow(
            tuple(cur.lenenc_bytes_or_null() for _ in range(column_count))
        )

    result: m.TextResultsetRow = _guard(ServerProtocolError, "text row", read, payload)
    return result


def decode_binary_row(
    payload: Payload, column_types: Sequence[int]
) -> m.BinaryResultsetRow:
    """Decode a binary-protocol row given the column types of its result set."""

    def read(cur: Cursor) -> m.BinaryResultsetRow:
        if cur.int1() != 0:
            raise ProtocolError("binary row header is not 0x00")
        nulls = _null_bitmap(cur, len(column_types), 2)
        return m.BinaryResultsetRow(
            tuple(
                None if nulls >> i & 1 else _binary_field(cur, type_)
                for i, type_ in enumerate(column_types)
            )
        )

    result: m.BinaryResultsetRow = _guard(
        ServerProtocolError, "binary row", read, payload
    )
    return result


def decode_stmt_prepare_ok(payload: Payload) -> m.ComStmtPrepareOk:
    def read(cur: Cursor) -> m.ComStmtPrepareOk:
        if cur.int1() != m.OK_HEADER:
            raise ProtocolError("prepare ok header is not 0x00")
        statement_id, columns, params = cur.int4(), cur.int2(), cur.int2()
        if cur.int1() != 0:
            raise ProtocolError("prepare ok filler is not 0")
        return m.ComStmtPrepareOk(statement_id, columns, params, cur.int2())

    result: m.ComStmtPrepareOk = _guard(
        ServerProtocolError, "COM_STMT_PREPARE_OK", read, payload
    )
    return result


def parse_session_state(data: bytes) -> tuple[m.SessionStateChange, ...]:
    """Split an OK packet's session_state_info into its entries.

    Raises ServerProtocolError if the entries do not fill it exactly.
    """

    def read(cur: Cursor) -> tuple[m.SessionStateChange, ...]:
        changes = []
        while not cur.at_end():
            changes.append(m.SessionStateChange(cur.int1(), cur.lenenc_bytes()))
        return tuple(changes)

    result: tuple[m.SessionStateChange, ...] = _guard(
        ServerProtocolError, "session state", read, data
    )
    return result


def session_system_variables(
    changes: Sequence[m.SessionStateChange],
) -> list[tuple[str, str]]:
    """The (name, value) pairs of SESSION_TRACK_SYSTEM_VARIABLES entries."""
    pairs = []
    for change in changes:
        if change.type == 0:

            def read(cur: Cursor) -> tuple[str, str]:
                return cur.lenenc_str(), cur.lenenc_str()

            pairs.append(_guard(ServerProtocolError, "variable", read, change.data))
    return pairs


def session_schema(changes: Sequence[m.SessionStateChange]) -> str | None:
    """The new current schema from a SESSION_TRACK_SCHEMA entry, if any (last wins)."""
    schema = None
    for change in changes:
        if change.type == 1:
            schema = _guard(
                ServerProtocolError, "schema", Cursor.lenenc_str, change.data
            )
    return schema


# Commands --------------------------------------------------------------------------


def _read_change_user(cur: Cursor, caps: int) -> m.ComChangeUser:
    user = cur.nul_str()
    auth = cur.bytes(cur.int1()) if caps & SECURE_CONNECTION else cur.nul_bytes()
    schema = cur.nul_str()
    if cur.at_end():
        return m.ComChangeUser(user, auth, schema)
    character_set = cur.int2()
    plugin = cur.nul_str() if caps & PLUGIN_AUTH and not cur.at_end() else None
    attrs = _attrs(cur) if caps & CONNECT_ATTRS and not cur.at_end() else None
    return m.ComChangeUser(user, auth, schema, character_set, plugin, attrs)


def _read_execute(cur: Cursor, params: m.StatementParams) -> m.ComStmtExecute:
    statement_id = cur.int4()
    flags = cur.int1()
    if flags & CursorType.PARAMETER_COUNT_AVAILABLE:
        raise ProtocolError("com_stmt_execute with query attributes is not supported")
    iteration_count = cur.int4()
    count = params.num_params
    if count == 0:
        return m.ComStmtExecute(statement_id, flags, iteration_count)
    nulls = _null_bitmap(cur, count, 0)
    bound = cur.int1()
    if bound not in (0, 1):
        raise ProtocolError(f"new_params_bound_flag {bound}, expected 0 or 1")
    sent: tuple[tuple[int, int], ...] = ()
    if bound:
        sent = tuple((cur.int1(), cur.int1()) for _ in range(count))
    types = sent or params.types
    if len(types) != count:
        raise ProtocolError(f"no parameter types bound for statement {statement_id}")
    long_data = params.long_data
    values = tuple(
        None
        if nulls >> i & 1
        else b""
        if i in long_data
        else _binary_field(cur, types[i][0])
        for i in range(count)
    )
    return m.ComStmtExecute(
        statement_id,
        flags,
        iteration_count,
        bound,
        sent,
        values,
        tuple(sorted(i for i in long_data if i < count and values[i] is not None)),
    )


def decode_com_stmt_execute(
    payload: Payload, params: m.StatementParams
) -> m.ComStmtExecute:
    """Decode COM_STMT_EXECUTE given what is known of its statement.

    Raises ClientProtocolError if the values do not match the parameters.
    """

    def read(cur: Cursor) -> m.ComStmtExecute:
        if cur.int1() != Command.COM_STMT_EXECUTE:
            raise ProtocolError("not a com_stmt_execute packet")
        return _read_execute(cur, params)

    result: m.ComStmtExecute = _guard(
        ClientProtocolError, "COM_STMT_EXECUTE", read, payload
    )
    return result


def decode_execute_nulls(
    payload: Payload, params: m.StatementParams
) -> tuple[int, tuple[tuple[int, int], ...]]:
    """The NULL bitmap of a COM_STMT_EXECUTE and the types it binds, if any.

    Reads the head of the packet only, up to the types; the values are left
    unread (the trail keeps a "?" per value when they are redacted). Raises
    ClientProtocolError where decode_com_stmt_execute would reject the head.
    """

    def read(cur: Cursor) -> tuple[int, tuple[tuple[int, int], ...]]:
        if cur.int1() != Command.COM_STMT_EXECUTE:
            raise ProtocolError("not a com_stmt_execute packet")
        statement_id = cur.int4()
        if cur.int1() & CursorType.PARAMETER_COUNT_AVAILABLE:
            raise ProtocolError(
                "com_stmt_execute with query attributes is not supported"
            )
        cur.int4()  # iteration count
        count = params.num_params
        if count == 0:
            return 0, ()
        nulls = _null_bitmap(cur, count, 0)
        bound = cur.int1()
        if bound not in (0, 1):
            raise ProtocolError(f"new_params_bound_flag {bound}, expected 0 or 1")
        if bound:
            data = bytes(cur.bytes(2 * count))
            return nulls, tuple(zip(data[::2], data[1::2], strict=True))
        if len(params.types) != count:
            raise ProtocolError(
                f"no parameter types bound for statement {statement_id}"
            )
        return nulls, ()

    cur = Cursor(payload)
    try:
        return read(cur)
    except ClientProtocolError:
        raise
    except ProtocolError as exc:
        raise ClientProtocolError(f"bad COM_STMT_EXECUTE: {exc}") from None


_NO_ARGUMENTS: Final[dict[int, m.ClientCommand]] = {
    Command.COM_QUIT: m.ComQuit(),
    Command.COM_PING: m.ComPing(),
    Command.COM_STATISTICS: m.ComStatistics(),
    Command.COM_RESET_CONNECTION: m.ComResetConnection(),
}


def _read_command(cur: Cursor, caps: int) -> m.ClientCommand:
    command = cur.int1()
    simple = _NO_ARGUMENTS.get(command)
    if simple is not None:
        return simple
    if command == Command.COM_QUERY:
        if caps & QUERY_ATTRIBUTES:
            raise ProtocolError("com_query with query attributes is not supported")
        return m.ComQuery(cur.rest_str())
    if command == Command.COM_STMT_PREPARE:
        return m.ComStmtPrepare(cur.rest_str())
    if command == Command.COM_INIT_DB:
        return m.ComInitDb(cur.rest_str())
    if command == Command.COM_FIELD_LIST:
        return m.ComFieldList(cur.nul_str(), cur.rest_str())
    if command == Command.COM_SET_OPTION:
        return m.ComSetOption(cur.int2())
    if command == Command.COM_STMT_CLOSE:
        return m.ComStmtClose(cur.int4())
    if command == Command.COM_STMT_RESET:
        return m.ComStmtReset(cur.int4())
    if command == Command.COM_STMT_FETCH:
        return m.ComStmtFetch(cur.int4(), cur.int4())
    if command == Command.COM_STMT_SEND_LONG_DATA:
        return m.ComStmtSendLongData(cur.int4(), cur.int2(), cur.rest())
    if command == Command.COM_PROCESS_KILL:
        return m.ComProcessKill(cur.int4())
    if command == Command.COM_CHANGE_USER:
        return _read_change_user(cur, caps)
    return m.ComOther(command, cur.rest())


def decode_command(
    payload: Payload,
    capabilities: int,
    statements: Mapping[int, m.StatementParams] | None = None,
) -> m.ClientCommand:
    """Decode a client command packet (command phase).

    A COM_STMT_EXECUTE needs its statement's entry in statements; commands this
    codec does not model come back as ComOther. Raises ClientProtocolError for
    an empty or malformed packet or an execute of an unknown statement.
    """
    if not len(payload):
        raise ClientProtocolError("empty command packet")
    if payload[0] == Command.COM_STMT_EXECUTE:
        if len(payload) < 5:
            raise ClientProtocolError("bad COM_STMT_EXECUTE: short read")
        statement_id = int.from_bytes(payload[1:5], "little")
        params = None if statements is None else statements.get(statement_id)
        if params is None:
            raise ClientProtocolError(
                f"parameters of prepared statement {statement_id} unknown"
            )
        return decode_com_stmt_execute(payload, params)
    result: m.ClientCommand = _guard(
        ClientProtocolError,
        "command",
        lambda c: _read_command(c, capabilities),
        payload,
    )
    return result


# Encoding --------------------------------------------------------------------------


def _fail(reason: str) -> bytes:
    raise ProtocolError(reason)


def _encode_handshake(msg: m.HandshakeV10, caps: int) -> bytes:
    flags = msg.capability_flags
    if len(msg.auth_plugin_data_part_1) != 8:
        raise ProtocolError("auth_plugin_data_part_1 must be 8 bytes")
    if len(msg.reserved) != 6:
        raise ProtocolError("handshake reserved bytes must be 6")
    part_2 = b""
    if flags & SECURE_CONNECTION:
        part_2 = msg.auth_plugin_data_part_2
        wanted = max(13, msg.auth_plugin_data_len - 8)
        if len(part_2) != wanted:
            raise ProtocolError(f"auth_plugin_data_part_2 must be {wanted} bytes")
    elif msg.auth_plugin_data_part_2:
        raise ProtocolError("auth_plugin_data_part_2 without secure connection")
    plugin = b""
    if flags & PLUGIN_AUTH:
        plugin = w.nul_str(msg.auth_plugin_name)
    elif msg.auth_plugin_name:
        raise ProtocolError("auth_plugin_name without CLIENT_PLUGIN_AUTH")
    return b"".join(
        (
            w.int1(msg.protocol_version),
            w.nul_str(msg.server_version),
            w.int4(msg.connection_id),
            msg.auth_plugin_data_part_1,
            b"\0",
            w.int2(flags & 0xFFFF),
            w.int1(msg.character_set),
            w.int2(msg.status_flags),
            w.int2(flags >> 16),
            w.int1(msg.auth_plugin_data_len),
            msg.reserved,
            w.int4(msg.extended_capabilities),
            part_2,
            plugin,
        )
    )


def _response_head(
    flags: int, max_packet: int, charset: int, reserved: bytes, extended: int
) -> bytes:
    if not flags & PROTOCOL_41:
        raise ProtocolError("handshake response without CLIENT_PROTOCOL_41")
    if len(reserved) != 19:
        raise ProtocolError("handshake response reserved bytes must be 19")
    return (
        w.int4(flags)
        + w.int4(max_packet)
        + w.int1(charset)
        + reserved
        + w.int4(extended)
    )


def _encode_ssl_request(msg: m.SSLRequest, caps: int) -> bytes:
    if not msg.capability_flags & SSL:
        raise ProtocolError("ssl request without CLIENT_SSL")
    return _response_head(
        msg.capability_flags,
        msg.max_packet_size,
        msg.character_set,
        msg.reserved,
        msg.extended_capabilities,
    )


def _optional(value: Any, flag: int, flags: int, name: str) -> None:
    if value is not None and not flags & flag:
        raise ProtocolError(f"{name} given but its capability flag is not set")


def _encode_handshake_response(msg: m.HandshakeResponse41, caps: int) -> bytes:
    flags = msg.capability_flags
    parts = [
        _response_head(
            flags,
            msg.max_packet_size,
            msg.character_set,
            msg.reserved,
            msg.extended_capabilities,
        ),
        w.nul_str(msg.username),
    ]
    if flags & LENENC_CLIENT_DATA:
        parts.append(w.lenenc_bytes(msg.auth_response))
    elif flags & SECURE_CONNECTION:
        parts.append(w.int1(len(msg.auth_response)) + msg.auth_response)
    else:
        parts.append(w.nul_bytes(msg.auth_response))
    _optional(msg.database, CONNECT_WITH_DB, flags, "database")
    _optional(msg.auth_plugin_name, PLUGIN_AUTH, flags, "auth_plugin_name")
    _optional(msg.connect_attrs, CONNECT_ATTRS, flags, "connect_attrs")
    _optional(msg.zstd_compression_level, ZSTD, flags, "zstd_compression_level")
    ended = False
    for value, flag in (
        (msg.database, CONNECT_WITH_DB),
        (msg.auth_plugin_name, PLUGIN_AUTH),
        (msg.connect_attrs, CONNECT_ATTRS),
        (msg.zstd_compression_level, ZSTD),
    ):
        # The decoder stops at the first flagged field that is missing.
        if not flags & flag:
            continue
        if value is None:
            ended = True
        elif ended:
            raise ProtocolError("a missing field cannot be followed by others")
    if msg.database is not None:
        parts.append(w.nul_str(msg.database))
    if msg.auth_plugin_name is not None:
        parts.append(w.nul_str(msg.auth_plugin_name))
    if msg.connect_attrs is not None:
        parts.append(_encode_attrs(msg.connect_attrs))
    if msg.zstd_compression_level is not None:
        parts.append(w.int1(msg.zstd_compression_level))
    return b"".join(parts)


def _encode_ok(msg: m.OkPacket, caps: int) -> bytes:
    if msg.header not in (m.OK_HEADER, m.EOF_HEADER):
        raise ProtocolError(f"ok packet header 0x{msg.header:02x}")
    parts = [
        w.int1(msg.header),
        w.lenenc_int(msg.affected_rows),
        w.lenenc_int(msg.last_insert_id),
    ]
    if caps & PROTOCOL_41:
        parts += (w.int2(msg.status_flags), w.int2(msg.warnings))
    elif caps & TRANSACTIONS:
        parts.append(w.int2(msg.status_flags))
    changed = msg.status_flags & STATE_CHANGED
    if caps & SESSION_TRACK:
        if (msg.session_state_info is not None) != bool(changed):
            raise ProtocolError("session_state_info must match the state-changed flag")
        if msg.info is not None:
            parts.append(w.lenenc_str(msg.info))
        elif changed:
            raise ProtocolError("info missing before session state")
        if msg.session_state_info is not None:
            parts.append(w.lenenc_bytes(msg.session_state_info))
    else:
        if msg.session_state_info is not None:
            raise ProtocolError("session state without CLIENT_SESSION_TRACK")
        parts.append((msg.info or "").encode("utf-8", "surrogateescape"))
    return b"".join(parts)


def _encode_err(msg: m.ErrPacket, caps: int) -> bytes:
    message = msg.error_message.encode("utf-8", "surrogateescape")
    state = b""
    if msg.sql_state is not None:
        if not caps & PROTOCOL_41:
            raise ProtocolError("sql state without CLIENT_PROTOCOL_41")
        raw = msg.sql_state.encode("utf-8", "surrogateescape")
        if len(raw) != 5:
            raise ProtocolError(f"sql state {msg.sql_state!r} is not 5 bytes")
        state = b"#" + raw
    elif caps & PROTOCOL_41 and message.startswith(b"#"):
        raise ProtocolError("message starting with '#' needs a sql state")
    return w.int1(m.ERR_HEADER) + w.int2(msg.error_code) + state + message


def _encode_eof(msg: m.EofPacket, caps: int) -> bytes:
    if caps & PROTOCOL_41:
        return w.int1(m.EOF_HEADER) + w.int2(msg.warnings) + w.int2(msg.status_flags)
    return w.int1(m.EOF_HEADER)


def _encode_column(msg: m.ColumnDefinition41, caps: int) -> bytes:
    parts = [
        w.lenenc_str(msg.catalog),
        w.lenenc_str(msg.schema),
        w.lenenc_str(msg.table),
        w.lenenc_str(msg.org_table),
        w.lenenc_str(msg.name),
        w.lenenc_str(msg.org_name),
        b"" if msg.extended_metadata is None else w.lenenc_bytes(msg.extended_metadata),
        w.int1(_COLUMN_FIXED_FIELDS),
        w.int2(msg.character_set),
        w.int4(msg.column_length),
        w.int1(msg.column_type),
        w.int2(msg.flags),
        w.int1(msg.decimals),
        b"\0\0",
    ]
    if msg.field_list:
        default = msg.default_value
        parts.append(b"\xfb" if default is None else w.lenenc_bytes(default))
    elif msg.default_value is not None:
        raise ProtocolError("default_value outside a COM_FIELD_LIST reply")
    return b"".join(parts)


def _encode_text_row(msg: m.TextResultsetRow, caps: int) -> bytes:
    return b"".join(
        b"\xfb" if value is None else w.lenenc_bytes(value) for value in msg.values
    )


def _encode_binary_row(msg: m.BinaryResultsetRow, caps: int) -> bytes:
    fields = b"".join(value for value in msg.values if value is not None)
    return b"\0" + _encode_bitmap(msg.values, 2) + fields


def _encode_column_count(msg: m.ColumnCount, caps: int) -> bytes:
    if msg.column_count == 0:
        raise ProtocolError("column count 0")
    if msg.metadata_follows is None:
        return w.lenenc_int(msg.column_count)
    return w.lenenc_int(msg.column_count) + w.int1(msg.metadata_follows)


def _encode_prepare_ok(msg: m.ComStmtPrepareOk, caps: int) -> bytes:
    return (
        b"\0"
        + w.int4(msg.statement_id)
        + w.int2(msg.num_columns)
        + w.int2(msg.num_params)
        + b"\0"
        + w.int2(msg.warning_count)
    )


def _encode_change_user(msg: m.ComChangeUser, caps: int) -> bytes:
    parts = [w.int1(msg.command), w.nul_str(msg.user)]
    if caps & SECURE_CONNECTION:
        parts.append(w.int1(len(msg.auth_response)) + msg.auth_response)
    else:
        parts.append(w.nul_bytes(msg.auth_response))
    parts.append(w.nul_str(msg.schema))
    if msg.character_set is None:
        if msg.auth_plugin_name is not None or msg.connect_attrs is not None:
            raise ProtocolError("character_set missing before later fields")
        return b"".join(parts)
    parts.append(w.int2(msg.character_set))
    _optional(msg.auth_plugin_name, PLUGIN_AUTH, caps, "auth_plugin_name")
    _optional(msg.connect_attrs, CONNECT_ATTRS, caps, "connect_attrs")
    if msg.auth_plugin_name is not None:
        parts.append(w.nul_str(msg.auth_plugin_name))
    elif msg.connect_attrs is not None and caps & PLUGIN_AUTH:
        raise ProtocolError("auth_plugin_name missing before connect_attrs")
    if msg.connect_attrs is not None:
        parts.append(_encode_attrs(msg.connect_attrs))
    return b"".join(parts)


def _encode_execute(msg: m.ComStmtExecute, caps: int) -> bytes:
    head = (
        w.int1(msg.command)
        + w.int4(msg.statement_id)
        + w.int1(msg.flags)
        + w.int4(msg.iteration_count)
    )
    if not msg.values:
        if msg.parameter_types or msg.new_params_bound_flag:
            raise ProtocolError("parameter types without parameter values")
        return head
    if msg.new_params_bound_flag not in (0, 1):
        raise ProtocolError(f"new_params_bound_flag {msg.new_params_bound_flag}")
    types = b""
    if msg.new_params_bound_flag:
        if len(msg.parameter_types) != len(msg.values):
            raise ProtocolError("one (type, flags) pair per parameter is needed")
        types = b"".join(w.int1(t) + w.int1(f) for t, f in msg.parameter_types)
    elif msg.parameter_types:
        raise ProtocolError("parameter types given but new_params_bound_flag is 0")
    fields = b"".join(value for value in msg.values if value is not None)
    return (
        head
        + _encode_bitmap(msg.values, 0)
        + w.int1(msg.new_params_bound_flag)
        + types
        + fields
    )


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


# Each entry builds the payload; encode adds the packet headers.
_ENCODERS: Final[dict[type[Any], Callable[[Any, int], bytes]]] = {
    m.HandshakeV10: _encode_handshake,
    m.SSLRequest: _encode_ssl_request,
    m.HandshakeResponse41: _encode_handshake_response,
    m.AuthSwitchRequest: lambda msg, caps: (
        w.int1(m.AUTH_SWITCH_HEADER) + w.nul_str(msg.plugin_name) + msg.plugin_data
    ),
    m.AuthSwitchResponse: lambda msg, caps: bytes(msg.data),
    m.AuthMoreData: lambda msg, caps: w.int1(m.AUTH_MORE_DATA_HEADER) + msg.data,
    m.OkPacket: _encode_ok,
    m.ErrPacket: _encode_err,
    m.EofPacket: _encode_eof,
    m.ColumnCount: _encode_column_count,
    m.ColumnDefinition41: _encode_column,
    m.TextResultsetRow: _encode_text_row,
    m.BinaryResultsetRow: _encode_binary_row,
    m.LocalInfileRequest: lambda msg, caps: b"\xfb" + _text(msg.filename),
    m.ComStmtPrepareOk: _encode_prepare_ok,
    m.ComQuery: lambda msg, caps: w.int1(msg.command) + _text(msg.query),
    m.ComQuit: lambda msg, caps: w.int1(msg.command),
    m.ComInitDb: lambda msg, caps: w.int1(msg.command) + _text(msg.schema),
    m.ComPing: lambda msg, caps: w.int1(msg.command),
    m.ComFieldList: lambda msg, caps: (
        w.int1(msg.command) + w.nul_str(msg.table) + _text(msg.wildcard)
    ),
    m.ComStatistics: lambda msg, caps: w.int1(msg.command),
    m.ComSetOption: lambda msg, caps: w.int1(msg.command) + w.int2(msg.option),
    m.ComResetConnection: lambda msg, caps: w.int1(msg.command),
    m.ComChangeUser: _encode_change_user,
    m.ComStmtPrepare: lambda msg, caps: w.int1(msg.command) + _text(msg.query),
    m.ComStmtExecute: _encode_execute,
    m.ComStmtSendLongData: lambda msg, caps: (
        w.int1(msg.command) + w.int4(msg.statement_id) + w.int2(msg.param_id) + msg.data
    ),
    m.ComStmtClose: lambda msg, caps: w.int1(msg.command) + w.int4(msg.statement_id),
    m.ComStmtReset: lambda msg, caps: w.int1(msg.command) + w.int4(msg.statement_id),
    m.ComStmtFetch: lambda msg, caps: (
        w.int1(msg.command) + w.int4(msg.statement_id) + w.int4(msg.num_rows)
    ),
    m.ComProcessKill: lambda msg, caps: w.int1(msg.command) + w.int4(msg.connection_id),
    m.ComOther: lambda msg, caps: w.int1(msg.command_byte) + msg.data,
}


def encode_payload(
    message: m.ServerMessage | m.ClientMessage, capabilities: int
) -> bytes:
    """The payload of message laid out for the negotiated capabilities.

    Raises ProtocolError if a field cannot be put on the wire (a NUL in a
    NUL-terminated string, a number out of range, fields that contradict the
    capability flags).
    """
    write = _ENCODERS.get(type(message))
    if write is None:
        raise TypeError(f"not a mysql message: {type(message).__name__}")
    try:
        return write(message, capabilities)
    except (OverflowError, UnicodeEncodeError) as exc:
        name = type(message).__name__
        raise ProtocolError(f"cannot encode {name}: {exc}") from None


def encode(
    message: m.ServerMessage | m.ClientMessage, capabilities: int, sequence_id: int
) -> bytes:
    """The wire bytes of message as packet(s) starting at sequence_id."""
    return frame(encode_payload(message, capabilities), sequence_id)

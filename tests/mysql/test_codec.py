"""Unit tests of the MySQL framing, cursor and codec on known bytes and edge cases."""

from __future__ import annotations

import importlib.util
import pathlib
import tomllib

import pytest

from pamwire.errors import (
    ClientProtocolError,
    MessageTooLarge,
    ProtocolError,
    ServerProtocolError,
)
from pamwire.mysql import codec
from pamwire.mysql import cursor as w
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Capability, ColumnType, ServerStatus
from pamwire.mysql.cursor import Cursor
from pamwire.mysql.packets import (
    MAX_CHUNK,
    PacketReader,
    frame,
    next_sequence_id,
    payload,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]

CAPS = int(
    Capability.CLIENT_PROTOCOL_41
    | Capability.CLIENT_SECURE_CONNECTION
    | Capability.CLIENT_PLUGIN_AUTH
    | Capability.CLIENT_TRANSACTIONS
)
CAPS_TRACK = CAPS | Capability.CLIENT_SESSION_TRACK | Capability.CLIENT_DEPRECATE_EOF

# A MariaDB 10.11 handshake, as received by a test of this suite.
MARIADB_HANDSHAKE = bytes.fromhex(
    "0a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100"
    "090000007d577a243c44227a00fef72d0200ff81150000000000001d0000006464487b"
    "546f522e2c335a4c006d7973716c5f6e61746976655f70617373776f726400"
)


# Constants -------------------------------------------------------------------------


def _generator() -> object:
    path = ROOT / "protocols" / "mysql" / "gen_constants.py"
    spec = importlib.util.spec_from_file_location("gen_constants", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_constants_module_is_current() -> None:
    gen = _generator()
    data = tomllib.loads(
        (ROOT / "protocols" / "mysql" / "constants.toml").read_text("utf-8")
    )
    expected = gen.render(data)  # type: ignore[attr-defined]
    actual = (ROOT / "pamwire" / "mysql" / "constants.py").read_text("utf-8")
    assert actual == expected, "run python protocols/mysql/gen_constants.py"


def test_constants_known_values() -> None:
    assert Capability.CLIENT_DEPRECATE_EOF == 1 << 24
    assert Capability.MARIADB_CLIENT_CACHE_METADATA == 1 << 36
    assert ServerStatus.SERVER_MORE_RESULTS_EXISTS == 8
    assert ColumnType.MYSQL_TYPE_VAR_STRING == 253


# Cursor ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        (0, "00"),
        (250, "fa"),
        (251, "fcfb00"),
        (0xFFFF, "fcffff"),
        (0x10000, "fd000001"),
        (0xFFFFFF, "fdffffff"),
        (0x1000000, "fe0000000100000000"),
        (2**64 - 1, "feffffffffffffffff"),
    ],
)
def test_cursor_lenenc_int_boundaries(value: int, raw: str) -> None:
    assert w.lenenc_int(value).hex() == raw
    cur = Cursor(bytes.fromhex(raw))
    assert cur.lenenc_int() == value
    cur.expect_end()


@pytest.mark.parametrize(
    "raw", ["fb", "ff", "fc0500", "fd050000", "fe0500000000000000"]
)
def test_cursor_lenenc_int_rejects_null_err_and_long_forms(raw: str) -> None:
    with pytest.raises(ProtocolError):
        Cursor(bytes.fromhex(raw)).lenenc_int()


def test_cursor_short_reads_raise_protocol_error() -> None:
    for read in (
        Cursor.int1,
        Cursor.int2,
        Cursor.int3,
        Cursor.int4,
        Cursor.int8,
        Cursor.lenenc_int,
        Cursor.nul_bytes,
        Cursor.peek,
    ):
        with pytest.raises(ProtocolError):
            read(Cursor(b""))
    with pytest.raises(ProtocolError):
        Cursor(b"\x05abc").lenenc_bytes()
    with pytest.raises(ProtocolError):
        Cursor(b"abc").nul_str()


def test_cursor_reads_little_endian_and_nul_strings() -> None:
    cur = Cursor(memoryview(b"\x01\x02\x03\x04\x05\x06abc\x00\xfbrest"))
    assert cur.int2() == 0x0201
    assert cur.int4() == 0x06050403
    assert cur.nul_str() == "abc"
    assert cur.lenenc_bytes_or_null() is None
    assert cur.rest() == b"rest"
    assert cur.at_end()


def test_writers_reject_out_of_range() -> None:
    for write, value in ((w.int1, 256), (w.int2, -1), (w.int3, 1 << 24), (w.int4, -5)):
        with pytest.raises(ProtocolError):
            write(value)
    with pytest.raises(ProtocolError):
        w.nul_str("a\0b")
    with pytest.raises(ProtocolError):
        w.lenenc_int(2**64)


# Framing ---------------------------------------------------------------------------


def test_packet_reader_whole_and_one_byte_at_a_time() -> None:
    stream = frame(b"\x03SELECT 1", 0) + frame(b"", 1) + frame(b"\x0e", 0)
    reader = PacketReader()
    reader.feed(stream)
    block, packets = reader.read_packets()
    assert block == stream
    assert [(p.sequence_id, p.length, p.first_byte) for p in packets] == [
        (0, 9, 3),
        (1, 0, -1),
        (0, 1, 0x0E),
    ]
    assert bytes(payload(block, packets[0])) == b"\x03SELECT 1"

    reader = PacketReader()
    got = []
    for i in range(len(stream)):
        reader.feed(stream[i : i + 1])
        block, packets = reader.read_packets()
        got += [bytes(payload(block, p)) for p in packets]
    assert got == [b"\x03SELECT 1", b"", b"\x0e"]
    assert reader.buffered == 0


def test_packet_reader_keeps_trailing_bytes() -> None:
    reader = PacketReader()
    reader.feed(frame(b"\x01", 0) + b"\x05\x00")
    block, packets = reader.read_packets()
    assert len(packets) == 1 and block == b"\x01\x00\x00\x00\x01"
    assert reader.buffered == 2
    reader.feed(b"\x00\x07hello")
    block, packets = reader.read_packets()
    assert bytes(payload(block, packets[0])) == b"hello"
    assert packets[0].sequence_id == 7


def test_frame_exactly_max_chunk_ends_with_empty_packet() -> None:
    data = b"x" * MAX_CHUNK
    wire = frame(data, 254)
    assert len(wire) == MAX_CHUNK + 8
    assert wire[:4] == b"\xff\xff\xff\xfe"
    assert wire[-4:] == b"\x00\x00\x00\xff"
    assert next_sequence_id(254, len(data)) == 0
    reader = PacketReader()
    reader.feed(wire)
    block, packets = reader.read_packets()
    assert len(packets) == 1
    packet = packets[0]
    assert (packet.sequence_id, packet.last_sequence_id) == (254, 255)
    assert packet.length == MAX_CHUNK and packet.is_split
    assert payload(block, packet) == data


def test_packet_reader_rejects_gap_in_split_sequence() -> None:
    wire = bytearray(frame(b"y" * (MAX_CHUNK + 3), 0))
    wire[MAX_CHUNK + 4 + 3] = 5  # the continuation's sequence id
    reader = PacketReader()
    reader.feed(bytes(wire))
    with pytest.raises(ProtocolError, match="sequence id 5"):
        reader.read_packets()


def test_packet_reader_too_large_as_soon_as_header_arrives() -> None:
    reader = PacketReader(max_packet_size=100)
    reader.feed(b"\x65\x00\x00\x00")
    with pytest.raises(MessageTooLarge):
        reader.read_packets()


def test_frame_rejects_bad_sequence_id() -> None:
    with pytest.raises(ProtocolError):
        frame(b"", 256)


# Connection phase ------------------------------------------------------------------


def test_decode_mariadb_handshake() -> None:
    handshake = codec.decode_handshake(MARIADB_HANDSHAKE)
    assert isinstance(handshake, m.HandshakeV10)
    assert handshake.server_version.endswith("MariaDB-0+deb12u1")
    assert handshake.connection_id == 9
    assert handshake.scramble == b'}Wz$<D"zddH{ToR.,3ZL'
    assert handshake.auth_plugin_name == "mysql_native_password"
    assert not handshake.capability_flags & Capability.CLIENT_LONG_PASSWORD
    assert handshake.capabilities >> 32 == 0x1D
    assert codec.encode_payload(handshake, 0) == MARIADB_HANDSHAKE


def test_handshake_build_round_trips() -> None:
    handshake = m.HandshakeV10.build(
        server_version="8.0.0-pamwire",
        connection_id=7,
        scramble=bytes(range(1, 21)),
        capabilities=codec.SUPPORTED_CAPABILITIES,
        character_set=45,
        status_flags=2,
        auth_plugin_name="caching_sha2_password",
    )
    raw = codec.encode_payload(handshake, 0)
    assert codec.decode_handshake(raw) == handshake
    assert handshake.scramble == bytes(range(1, 21))


def test_decode_handshake_err_and_bad_version() -> None:
    err = codec.decode_handshake(b"\xff\x10\x04Too many connections")
    assert err == m.ErrPacket(1040, None, "Too many connections")
    with pytest.raises(ServerProtocolError, match="version 9"):
        codec.decode_handshake(b"\x09" + MARIADB_HANDSHAKE[1:])


def _response(**changes: object) -> m.HandshakeResponse41:
    fields: dict[str, object] = {
        "capability_flags": CAPS
        | Capability.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | Capability.CLIENT_CONNECT_WITH_DB
        | Capability.CLIENT_CONNECT_ATTRS,
        "max_packet_size": 1 << 24,
        "character_set": 45,
        "username": "app",
        "auth_response": bytes(20),
        "database": "app",
        "auth_plugin_name": "mysql_native_password",
        "connect_attrs": (("_client_name", "libmariadb"), ("_pid", "42")),
    }
    fields.update(changes)
    return m.HandshakeResponse41(**fields)  # type: ignore[arg-type]


def test_handshake_response_round_trips_in_each_auth_layout() -> None:
    for flags in (
        CAPS | Capability.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
        CAPS,
        Capability.CLIENT_PROTOCOL_41 | Capability.CLIENT_PLUGIN_AUTH,
    ):
        response = _response(
            capability_flags=int(flags),
            auth_response=b"\x01" * 20,
            database=None,
            connect_attrs=None,
        )
        raw = codec.encode_payload(response, 0)
        assert codec.decode_handshake_response(raw) == response
    full = _response()
    assert codec.decode_handshake_response(codec.encode_payload(full, 0)) == full


def test_handshake_response_stopping_early_is_accepted() -> None:
    # Flags promise a database and a plugin name, but the packet ends after auth.
    response = _response(database=None, auth_plugin_name=None, connect_attrs=None)
    raw = codec.encode_payload(response, 0)
    assert codec.decode_handshake_response(raw) == response
    with pytest.raises(ProtocolError, match="missing field"):
        codec.encode_payload(_response(database=None), 0)


def test_ssl_request_and_pre_41_client() -> None:
    request = m.SSLRequest(CAPS | Capability.CLIENT_SSL, 1 << 24, 33)
    raw = codec.encode_payload(request, 0)
    assert len(raw) == m.SSL_REQUEST_LENGTH
    assert codec.decode_handshake_response(raw) == request
    with pytest.raises(ClientProtocolError, match="CLIENT_SSL"):
        no_ssl = int.from_bytes(raw[:4], "little") & ~Capability.CLIENT_SSL
        codec.decode_handshake_response(no_ssl.to_bytes(4, "little") + raw[4:])
    with pytest.raises(ClientProtocolError, match="PROTOCOL_41"):
        codec.decode_handshake_response(b"\x00\x00\x00\x00" + raw[4:] + b"u\0\0")


def test_auth_replies() -> None:
    switch = codec.decode_auth_reply(
        b"\xfecaching_sha2_password\x00" + bytes(range(1, 21)) + b"\0", CAPS
    )
    assert switch == m.AuthSwitchRequest(
        "caching_sha2_password", bytes(range(1, 21)) + b"\0"
    )
    assert codec.decode_auth_reply(b"\x01\x04", CAPS) == m.AuthMoreData(b"\x04")
    with pytest.raises(ServerProtocolError, match="old-password"):
        codec.decode_auth_reply(b"\xfe", CAPS)
    with pytest.raises(ServerProtocolError, match="0x07"):
        codec.decode_auth_reply(b"\x07", CAPS)


# Generic responses -----------------------------------------------------------------


def test_ok_with_session_state_from_mariadb() -> None:
    raw = b"\x00\x00\x00\x02\x40\x00\x00\x00\x06\x01\x04\x03app"
    ok = codec.decode_ok(raw, CAPS_TRACK)
    assert ok.status_flags & ServerStatus.SERVER_SESSION_STATE_CHANGED
    assert ok.info == ""
    changes = codec.parse_session_state(ok.session_state_info or b"")
    assert changes == (m.SessionStateChange(1, b"\x03app"),)
    assert codec.session_schema(changes) == "app"
    assert codec.encode_payload(ok, CAPS_TRACK) == raw


def test_ok_ending_rows_without_info() -> None:
    raw = b"\xfe\x00\x00\x0a\x00\x00\x00"
    ok = codec.decode_end_of_rows(raw, CAPS_TRACK)
    assert ok == m.OkPacket(status_flags=10, info=None, header=0xFE)
    assert codec.encode_payload(ok, CAPS_TRACK) == raw


def test_ok_without_session_track_has_info_to_the_end() -> None:
    raw = b"\x00\x01\x00\x02\x00\x00\x00Rows matched: 1"
    ok = codec.decode_ok(raw, CAPS)
    assert (ok.affected_rows, ok.info) == (1, "Rows matched: 1")
    assert codec.encode_payload(ok, CAPS) == raw


def test_session_system_variables() -> None:
    data = w.lenenc_bytes(w.lenenc_str("sql_mode") + w.lenenc_str("ANSI_QUOTES"))
    changes = codec.parse_session_state(b"\x00" + data)
    assert codec.session_system_variables(changes) == [("sql_mode", "ANSI_QUOTES")]
    with pytest.raises(ServerProtocolError):
        codec.parse_session_state(b"\x00\x05ab")


def test_err_with_and_without_sql_state() -> None:
    raw = b"\xff\x7a\x04#42S02Table 'app.x' doesn't exist"
    err = codec.decode_err(raw, CAPS)
    assert err == m.ErrPacket(1146, "42S02", "Table 'app.x' doesn't exist")
    assert codec.encode_payload(err, CAPS) == raw
    assert codec.decode_err(b"\xff\x7a\x04#42S02", 0).error_message == "#42S02"
    with pytest.raises(ProtocolError, match="sql state"):
        codec.encode_payload(m.ErrPacket(1, None, "#x"), CAPS)
    with pytest.raises(ProtocolError, match="5 bytes"):
        codec.encode_payload(m.ErrPacket(1, "42", "x"), CAPS)


def test_end_of_rows_rule_for_0xfe() -> None:
    assert codec.is_end_of_rows(0xFE, 5)
    assert codec.is_end_of_rows(0xFE, 40)  # an OK carrying session state
    assert not codec.is_end_of_rows(0xFE, MAX_CHUNK)  # a row of 16 MiB and more
    assert not codec.is_end_of_rows(0x00, 7)
    with pytest.raises(ServerProtocolError, match="< 9"):
        codec.decode_end_of_rows(b"\xfe" + bytes(9), CAPS)
    assert codec.decode_end_of_rows(b"\xfe\x01\x00\x22\x00", CAPS) == m.EofPacket(
        1, 0x22
    )


# Result sets -----------------------------------------------------------------------


def test_column_definition_from_mariadb_field_list() -> None:
    raw = (
        b"\x03def\x03app\x01d\x01d\x04name\x04name\x0c-\x00P\x00\x00\x00\xfd"
        b"\x01\x00\x00\x00\x00\x06nobody"
    )
    column = codec.decode_column_definition(raw, field_list=True)
    assert (column.name, column.column_type, column.default_value) == (
        "name",
        ColumnType.MYSQL_TYPE_VAR_STRING,
        b"nobody",
    )
    assert codec.encode_payload(column, 0) == raw
    with pytest.raises(ServerProtocolError, match="trailing"):
        codec.decode_column_definition(raw)


def test_rows_text_and_binary() -> None:
    raw = b"\x011\xfb\x05row 1"
    row = codec.decode_text_row(raw, 3)
    assert row.values == (b"1", None, b"row 1")
    assert codec.encode_payload(row, 0) == raw
    with pytest.raises(ServerProtocolError):
        codec.decode_text_row(raw, 4)

    types = [ColumnType.MYSQL_TYPE_LONG, ColumnType.MYSQL_TYPE_VAR_STRING]
    binary = b"\x00\x08" + b"\x07\x00\x00\x00"  # second column NULL (bit 3)
    decoded = codec.decode_binary_row(binary, types)
    assert decoded.values == (b"\x07\x00\x00\x00", None)
    assert codec.encode_payload(decoded, 0) == binary
    with pytest.raises(ServerProtocolError, match="null bitmap"):
        codec.decode_binary_row(b"\x00\x01" + b"\x07\x00\x00\x00" + b"\x00", types)


def test_response_dispatch() -> None:
    assert codec.decode_response(b"\x03", CAPS) == m.ColumnCount(3)
    assert codec.decode_response(b"\xfbdata.csv", CAPS) == m.LocalInfileRequest(
        "data.csv"
    )
    assert isinstance(
        codec.decode_response(b"\x00\x00\x00\x02\x00\x00\x00", CAPS), m.OkPacket
    )
    with pytest.raises(ServerProtocolError):
        codec.decode_response(b"", CAPS)


def test_prepare_ok() -> None:
    raw = b"\x00\x01\x00\x00\x00\x03\x00\x02\x00\x00\x00\x00"
    ok = codec.decode_stmt_prepare_ok(raw)
    assert ok == m.ComStmtPrepareOk(1, 3, 2, 0)
    assert codec.encode_payload(ok, 0) == raw


# Commands --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x03SELECT 1", m.ComQuery("SELECT 1")),
        (b"\x01", m.ComQuit()),
        (b"\x02app", m.ComInitDb("app")),
        (b"\x0e", m.ComPing()),
        (b"\x04t\x00", m.ComFieldList("t")),
        (b"\x09", m.ComStatistics()),
        (b"\x1b\x01\x00", m.ComSetOption(1)),
        (b"\x1f", m.ComResetConnection()),
        (b"\x16SELECT ?", m.ComStmtPrepare("SELECT ?")),
        (b"\x18\x01\x00\x00\x00\x02\x00abc", m.ComStmtSendLongData(1, 2, b"abc")),
        (b"\x19\x05\x00\x00\x00", m.ComStmtClose(5)),
        (b"\x1a\x05\x00\x00\x00", m.ComStmtReset(5)),
        (b"\x1c\x05\x00\x00\x00\x0a\x00\x00\x00", m.ComStmtFetch(5, 10)),
        (b"\x0c\x2a\x00\x00\x00", m.ComProcessKill(42)),
        (b"\x12\x01\x02", m.ComOther(0x12, b"\x01\x02")),
    ],
)
def test_commands_decode_and_encode(raw: bytes, message: m.ClientCommand) -> None:
    assert codec.decode_command(raw, CAPS) == message
    assert codec.encode_payload(message, CAPS) == raw


def test_command_errors_are_client_errors() -> None:
    with pytest.raises(ClientProtocolError, match="empty"):
        codec.decode_command(b"", CAPS)
    with pytest.raises(ClientProtocolError, match="trailing"):
        codec.decode_command(b"\x0e\x00", CAPS)
    with pytest.raises(ClientProtocolError, match="query attributes"):
        codec.decode_command(b"\x03x", CAPS | Capability.CLIENT_QUERY_ATTRIBUTES)


def test_change_user_variants() -> None:
    caps = CAPS | Capability.CLIENT_CONNECT_ATTRS
    full = m.ComChangeUser("bob", b"\x01" * 20, "app", 45, "mysql_native_password", ())
    short = m.ComChangeUser("bob", b"", "")
    for message in (full, short):
        raw = codec.encode_payload(message, caps)
        assert codec.decode_command(raw, caps) == message


def test_stmt_execute_needs_and_reuses_parameter_types() -> None:
    types = ((ColumnType.MYSQL_TYPE_LONG, 0), (ColumnType.MYSQL_TYPE_STRING, 0))
    first = m.ComStmtExecute(1, 0, 1, 1, types, (b"\x05\x00\x00\x00", b"\x02hi"))
    raw = codec.encode_payload(first, CAPS)
    assert raw == (
        b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00"
        b"\x00\x01\x03\x00\xfe\x00\x05\x00\x00\x00\x02hi"
    )
    with pytest.raises(ClientProtocolError, match="unknown"):
        codec.decode_command(raw, CAPS)
    assert codec.decode_command(raw, CAPS, {1: m.StatementParams(2)}) == first

    again = m.ComStmtExecute(1, 0, 1, 0, (), (None, b"\x01x"))
    raw = codec.encode_payload(again, CAPS)
    with pytest.raises(ClientProtocolError, match="no parameter types"):
        codec.decode_command(raw, CAPS, {1: m.StatementParams(2)})
    assert codec.decode_command(raw, CAPS, {1: m.StatementParams(2, types)}) == again


def test_stmt_execute_long_data_params_are_not_on_the_wire() -> None:
    types = ((ColumnType.MYSQL_TYPE_BLOB, 0), (ColumnType.MYSQL_TYPE_TINY, 0))
    message = m.ComStmtExecute(3, 0, 1, 1, types, (b"", b"\x07"), (0,))
    raw = codec.encode_payload(message, CAPS)
    assert raw.endswith(b"\xfc\x00\x01\x00\x07")
    params = m.StatementParams(2, long_data=frozenset({0}))
    assert codec.decode_com_stmt_execute(raw, params) == message


def test_stmt_execute_rejects_bad_bitmaps_and_flags() -> None:
    params = m.StatementParams(1, ((ColumnType.MYSQL_TYPE_TINY, 0),))
    with pytest.raises(ClientProtocolError, match="null bitmap"):
        codec.decode_com_stmt_execute(b"\x17" + bytes(9) + b"\x02\x00", params)
    with pytest.raises(ClientProtocolError, match="new_params_bound_flag"):
        codec.decode_com_stmt_execute(b"\x17" + bytes(9) + b"\x00\x02", params)
    with pytest.raises(ClientProtocolError, match="temporal"):
        codec.decode_com_stmt_execute(
            b"\x17" + bytes(9) + b"\x00\x01\x0a\x00\x05" + bytes(5),
            m.StatementParams(1),
        )


def test_decode_execute_nulls_rejects_what_the_full_decode_rejects() -> None:
    params = m.StatementParams(1, ((ColumnType.MYSQL_TYPE_TINY, 0),))
    head = b"\x17" + bytes(9)
    assert codec.decode_execute_nulls(head + b"\x01\x00", params) == (1, ())
    assert codec.decode_execute_nulls(head + b"\x00\x01\x01\x80\x05", params) == (
        0,
        ((ColumnType.MYSQL_TYPE_TINY, 0x80),),
    )
    with pytest.raises(ClientProtocolError, match="null bitmap"):
        codec.decode_execute_nulls(head + b"\x02\x00", params)
    with pytest.raises(ClientProtocolError, match="new_params_bound_flag"):
        codec.decode_execute_nulls(head + b"\x00\x02", params)
    with pytest.raises(ClientProtocolError, match="no parameter types"):
        codec.decode_execute_nulls(head + b"\x00\x00", m.StatementParams(1))
    with pytest.raises(ClientProtocolError, match="query attributes"):
        codec.decode_execute_nulls(b"\x17" + bytes(4) + b"\x08" + bytes(4), params)
    with pytest.raises(ClientProtocolError, match="short read"):
        codec.decode_execute_nulls(head + b"\x00\x01\x01", params)


def test_decode_eof_and_column_count_short_forms() -> None:
    # The forms read without a cursor give what the general reader gives.
    eof = b"\xfe\x03\x00\x22\x00"
    assert codec.decode_eof(eof, CAPS) == m.EofPacket(3, 0x22)
    assert codec.decode_eof(eof[:1], 0) == m.EofPacket()
    with pytest.raises(ServerProtocolError):
        codec.decode_eof(eof + b"\x00", CAPS)
    assert codec.decode_column_count(b"\x07") == m.ColumnCount(7)
    assert codec.decode_column_count(b"\xfa") == m.ColumnCount(250)
    assert codec.decode_column_count(b"\xfc\xfb\x00") == m.ColumnCount(251)
    with pytest.raises(ServerProtocolError, match="column count 0"):
        codec.decode_column_count(b"\x00")


def test_encode_unknown_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        codec.encode_payload(object(), 0)  # type: ignore[arg-type]
    assert codec.encode(m.ComPing(), 0, 0) == b"\x01\x00\x00\x00\x0e"


def test_every_record_is_in_the_coverage_doc() -> None:
    doc = (ROOT / "docs" / "protocol-mysql.md").read_text("utf-8")
    records = [
        name
        for name, value in vars(m).items()
        if isinstance(value, type) and hasattr(value, "__attrs_attrs__")
    ]
    assert len(records) > 30
    for name in records:
        if name == "StatementParams":
            continue
        assert f"| {name} |" in doc, name

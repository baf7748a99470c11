"""Tests of the CLIENT_DEPRECATE_EOF translator, byte for byte.

A reply is generated as a structure and rendered twice, once as a server with
CLIENT_DEPRECATE_EOF lays it out and once as a server without; translating
either rendering must give exactly the other. The renderer states the
translator's documented rules: an EOF after definitions carries no warnings
and the latest status; rows end with an OK (0xFE) of no affected rows or info.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pamwire.errors import ServerProtocolError
from pamwire.mysql import codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Capability, Command, ServerStatus
from pamwire.mysql.eof import EofTranslator, legs_differ, translate_reply
from pamwire.mysql.packets import MAX_CHUNK, PacketReader, frame
from pamwire.mysql.results import ReplyTracker

S = ServerStatus
BASE_CAPS = int(
    Capability.CLIENT_PROTOCOL_41
    | Capability.CLIENT_MULTI_RESULTS
    | Capability.CLIENT_PS_MULTI_RESULTS
)
DEP = codec.DEPRECATE_EOF
MORE = int(S.SERVER_MORE_RESULTS_EXISTS)
CURSOR = int(S.SERVER_STATUS_CURSOR_EXISTS)

# Status bits a reply may carry anywhere (MORE_RESULTS is set by position).
_STATUS_BITS = [
    int(S.SERVER_STATUS_IN_TRANS),
    int(S.SERVER_STATUS_AUTOCOMMIT),
    int(S.SERVER_STATUS_NO_INDEX_USED),
    int(S.SERVER_STATUS_NO_BACKSLASH_ESCAPES),
    int(S.SERVER_STATUS_LAST_ROW_SENT),
]
status = st.sets(st.sampled_from(_STATUS_BITS)).map(sum)
warnings = st.integers(0, 3) | st.integers(0, 0xFFFF)
definition = st.binary(max_size=30).map(lambda b: b"\x03def" + b)
# A row: text (lenenc or NULL 0xFB) or binary (0x00); never 0xFE or 0xFF first.
row = st.tuples(st.integers(0, 0xFB), st.binary(max_size=30)).map(
    lambda t: bytes([t[0]]) + t[1]
)


@attrs.frozen
class ResultSet:
    columns: tuple[bytes, ...]
    rows: tuple[bytes, ...]
    warnings: int
    status: int


@attrs.frozen
class Ok:
    affected_rows: int
    warnings: int
    status: int


result_set = st.builds(
    ResultSet,
    st.lists(definition, min_size=1, max_size=4).map(tuple),
    st.lists(row, max_size=6).map(tuple),
    warnings,
    status,
)
ok_result = st.builds(Ok, st.integers(0, 1000), warnings, status)
err = st.builds(
    m.ErrPacket, st.integers(1000, 2000), st.just("42000"), st.text("abc ", max_size=9)
)


class Renderer:
    """Writes a reply's packets from sequence id 1 for one layout."""

    def __init__(self, caps: int, status: int) -> None:
        self.caps = caps
        self.deprecate = bool(caps & DEP)
        self.status = status
        self.seq = 1
        self.out: list[bytes] = []

    def put(self, data: bytes) -> None:
        self.out.append(frame(data, self.seq))
        self.seq = (self.seq + 1 + len(data) // MAX_CHUNK) & 0xFF

    def message(self, msg: Any) -> None:
        self.put(codec.encode_payload(msg, self.caps))

    def definitions_end(self) -> None:
        if not self.deprecate:
            self.message(m.EofPacket(0, self.status))

    def end(self, warnings: int, status: int) -> None:
        if self.deprecate:
            self.message(
                m.OkPacket(status_flags=status, warnings=warnings, header=0xFE, info="")
            )
        else:
            self.message(m.EofPacket(warnings, status))
        self.status = status

    def result(self, item: ResultSet | Ok, status: int) -> None:
        if isinstance(item, Ok):
            self.message(
                m.OkPacket(item.affected_rows, 0, status, item.warnings, info="")
            )
            self.status = status
            return
        self.message(m.ColumnCount(len(item.columns)))
        for column in item.columns:
            self.put(column)
        self.definitions_end()
        for data in item.rows:
            self.put(data)
        self.end(item.warnings, status)

    def data(self) -> bytes:
        return b"".join(self.out)


def render_results(
    caps: int, start: int, results: list[ResultSet | Ok], error: m.ErrPacket | None
) -> bytes:
    r = Renderer(caps, start)
    for index, item in enumerate(results):
        more = index < len(results) - 1 or error is not None
        r.result(item, (item.status & ~MORE) | (MORE if more else 0))
    if error is not None:
        r.message(error)
    return r.data()


def both(render: Any, session_track: bool) -> tuple[bytes, bytes, int, int]:
    track = int(Capability.CLIENT_SESSION_TRACK) if session_track else 0
    with_caps, without_caps = BASE_CAPS | track | DEP, BASE_CAPS | track
    return render(with_caps), render(without_caps), with_caps, without_caps


def assert_translates(
    command: int,
    with_eof: bytes,
    without: bytes,
    caps_with: int,
    caps_without: int,
    start: int,
) -> None:
    there = translate_reply(
        command,
        with_eof,
        server_caps=caps_with,
        client_caps=caps_without,
        status_flags=start,
    )
    assert there == without
    back = translate_reply(
        command,
        without,
        server_caps=caps_without,
        client_caps=caps_with,
        status_flags=start,
    )
    assert back == with_eof
    # What the client gets is a well-formed reply for its own leg.
    for data, caps in ((there, caps_without), (back, caps_with)):
        tracker = ReplyTracker(command, caps)
        reader = PacketReader()
        reader.feed(data)
        block, packets = reader.read_packets()
        for packet in packets:
            tracker.feed_packet(block, packet)
        assert tracker.done


@settings(max_examples=150, deadline=None)
@given(
    results=st.lists(result_set | ok_result, min_size=1, max_size=4),
    error=st.none() | err,
    start=status,
    session_track=st.booleans(),
    command=st.sampled_from([Command.COM_QUERY, Command.COM_STMT_EXECUTE]),
)
def test_eof_translator_result_sets_both_ways(
    results: list[ResultSet | Ok],
    error: m.ErrPacket | None,
    start: int,
    session_track: bool,
    command: int,
) -> None:
    a, b, ca, cb = both(
        lambda c: render_results(c, start, results, error), session_track
    )
    assert_translates(command, a, b, ca, cb, start)


@settings(max_examples=80, deadline=None)
@given(
    params=st.lists(definition, max_size=4),
    columns=st.lists(definition, max_size=4),
    start=status,
    session_track=st.booleans(),
)
def test_eof_translator_prepare_reply_both_ways(
    params: list[bytes], columns: list[bytes], start: int, session_track: bool
) -> None:
    def render(caps: int) -> bytes:
        r = Renderer(caps, start)
        r.message(m.ComStmtPrepareOk(7, len(columns), len(params), 0))
        for group in (params, columns):
            for item in group:
                r.put(item)
            if group:
                r.definitions_end()
        return r.data()

    a, b, ca, cb = both(render, session_track)
    assert_translates(Command.COM_STMT_PREPARE, a, b, ca, cb, start)


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(definition, max_size=5),
    end_warnings=warnings,
    end_status=status,
    command=st.sampled_from([Command.COM_FIELD_LIST, Command.COM_STMT_FETCH]),
    session_track=st.booleans(),
)
def test_eof_translator_field_list_and_fetch_both_ways(
    items: list[bytes],
    end_warnings: int,
    end_status: int,
    command: int,
    session_track: bool,
) -> None:
    def render(caps: int) -> bytes:
        r = Renderer(caps, 0)
        for item in items:
            r.put(item)
        r.end(end_warnings, end_status)
        return r.data()

    a, b, ca, cb = both(render, session_track)
    assert_translates(command, a, b, ca, cb, 0)


@given(end_status=status, session_track=st.booleans())
def test_eof_translator_set_option_and_cursor_both_ways(
    end_status: int, session_track: bool
) -> None:
    def set_option(caps: int) -> bytes:
        r = Renderer(caps, 0)
        r.end(0, end_status)
        return r.data()

    a, b, ca, cb = both(set_option, session_track)
    assert_translates(Command.COM_SET_OPTION, a, b, ca, cb, 0)

    def cursor(caps: int) -> bytes:
        # An execute that opened a cursor: definitions and one EOF, no rows.
        r = Renderer(caps, 0)
        r.message(m.ColumnCount(2))
        r.put(b"\x03def-a")
        r.put(b"\x03def-b")
        r.end(1, end_status | CURSOR)
        return r.data()

    a, b, ca, cb = both(cursor, session_track)
    assert_translates(Command.COM_STMT_EXECUTE, a, b, ca, cb, 0)


def test_eof_translator_wraps_sequence_ids() -> None:
    results: list[ResultSet | Ok] = [
        ResultSet(
            (b"\x03def",), tuple(b"\x01" + bytes([i % 200]) for i in range(300)), 0, 2
        )
    ] * 2
    a, b, ca, cb = both(lambda c: render_results(c, 2, results, None), False)
    assert_translates(Command.COM_QUERY, a, b, ca, cb, 2)


def test_eof_translator_renumbers_a_split_row() -> None:
    big = b"\x01" + bytes(MAX_CHUNK + 10)
    results: list[ResultSet | Ok] = [ResultSet((b"\x03def",), (b"\x01x", big), 0, 2)]
    a, b, ca, cb = both(lambda c: render_results(c, 2, results, None), True)
    assert_translates(Command.COM_QUERY, a, b, ca, cb, 2)


def test_eof_translator_ok_with_session_state_becomes_plain_eof() -> None:
    caps = BASE_CAPS | int(Capability.CLIENT_SESSION_TRACK)
    changed = int(S.SERVER_SESSION_STATE_CHANGED)
    state = b"\x01\x05\x04\x03app"  # SESSION_TRACK_SCHEMA 'app'
    ok = m.OkPacket(
        status_flags=2 | changed,
        warnings=4,
        header=0xFE,
        info="",
        session_state_info=state,
    )
    reply = b"".join(
        [
            frame(b"\x01", 1),
            frame(b"\x03def", 2),
            frame(b"\x01x", 3),
            frame(codec.encode_payload(ok, caps | DEP), 4),
        ]
    )
    out = translate_reply(
        Command.COM_QUERY, reply, server_caps=caps | DEP, client_caps=caps
    )
    assert out[-9:] == frame(codec.encode_payload(m.EofPacket(4, 2), caps), 5)


def test_eof_translator_shifts_client_packets_back() -> None:
    caps = BASE_CAPS
    t = EofTranslator(Command.COM_QUERY, caps | DEP, caps)
    reader = PacketReader()
    count = codec.encode(m.ColumnCount(1), caps, 1)
    reader.feed(count + frame(b"\x03def", 2))
    block, packets = reader.read_packets()
    for packet in packets:
        t.feed_packet(block, packet)
    assert t.delta == 1 and t.client_sequence_id(3) == 4
    client = PacketReader()
    client.feed(frame(b"file data", 5))
    cblock, (cpacket,) = client.read_packets()
    assert t.to_server(cblock, cpacket) == frame(b"file data", 4)


def test_eof_translator_refuses_agreeing_legs_and_broken_replies() -> None:
    assert legs_differ(DEP, 0) and not legs_differ(DEP, DEP)
    with pytest.raises(ValueError):
        EofTranslator(Command.COM_QUERY, DEP, DEP)
    ok = codec.encode(m.OkPacket(status_flags=2), BASE_CAPS, 1)
    with pytest.raises(ServerProtocolError, match="after the end"):
        translate_reply(
            Command.COM_PING,
            ok + ok,
            server_caps=BASE_CAPS,
            client_caps=BASE_CAPS | DEP,
        )
    with pytest.raises(ServerProtocolError, match="incomplete"):
        translate_reply(
            Command.COM_QUERY,
            frame(b"\x01", 1),
            server_caps=BASE_CAPS,
            client_caps=BASE_CAPS | DEP,
        )

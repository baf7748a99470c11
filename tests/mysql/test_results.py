"""Tests of the reply tracker on scripted server replies (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from pamwire.errors import ServerProtocolError
from pamwire.mysql import codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Capability, Command, ServerStatus
from pamwire.mysql.packets import MAX_CHUNK, PacketReader, frame
from pamwire.mysql.results import Phase, ReplyKind, ReplyTracker, Step, reply_kind

BASE = int(
    Capability.CLIENT_PROTOCOL_41
    | Capability.CLIENT_SECURE_CONNECTION
    | Capability.CLIENT_PLUGIN_AUTH
    | Capability.CLIENT_TRANSACTIONS
    | Capability.CLIENT_MULTI_RESULTS
)
NEW = BASE | Capability.CLIENT_DEPRECATE_EOF | Capability.CLIENT_SESSION_TRACK
MORE = int(ServerStatus.SERVER_MORE_RESULTS_EXISTS)
AUTOCOMMIT = int(ServerStatus.SERVER_STATUS_AUTOCOMMIT)

COLUMN = m.ColumnDefinition41("app", "t", "t", "id", "id", 63, 11, 3, 0, 0)


def result_set(
    caps: int, rows: list[Any], status: int, binary: bool = False
) -> list[Any]:
    """The messages of one result set in the framing caps select."""
    ncols = len(rows[0].values) if rows else 1
    messages: list[Any] = [m.ColumnCount(ncols), *[COLUMN] * ncols]
    if not caps & Capability.CLIENT_DEPRECATE_EOF:
        messages.append(m.EofPacket(0, status))
    messages += rows
    if caps & Capability.CLIENT_DEPRECATE_EOF:
        messages.append(m.OkPacket(status_flags=status, info=None, header=0xFE))
    else:
        messages.append(m.EofPacket(0, status))
    return messages


def feed_all(tracker: ReplyTracker, messages: list[Any], caps: int) -> list[Step]:
    """Feed the messages as one stream through a PacketReader, checking sequence ids."""
    seq = 1
    stream = b""
    for message in messages:
        data = codec.encode_payload(message, caps)
        stream += frame(data, seq)
        seq = (seq + 1 + len(data) // MAX_CHUNK) & 0xFF
    reader = PacketReader()
    reader.feed(stream)
    block, packets = reader.read_packets()
    assert len(packets) == len(messages)
    return [tracker.feed_packet(block, packet) for packet in packets]


@pytest.mark.parametrize("caps", [BASE, NEW], ids=["eof", "deprecate_eof"])
def test_results_multi_statement_with_ok_in_between(caps: int) -> None:
    rows = [m.TextResultsetRow((b"1",)), m.TextResultsetRow((b"2",))]
    messages = [
        *result_set(caps, rows, AUTOCOMMIT | MORE),
        m.OkPacket(3, 0, AUTOCOMMIT | MORE, 1, "Rows matched: 3"),
        *result_set(caps, rows[:1], AUTOCOMMIT),
    ]
    tracker = ReplyTracker(Command.COM_QUERY, caps)
    steps = feed_all(tracker, messages, caps)
    assert tracker.done
    assert steps.count(Step.ROW) == 3
    assert steps.count(Step.RESULT_END) == 2
    assert steps.count(Step.EOF) == (0 if caps & Capability.CLIENT_DEPRECATE_EOF else 2)
    outcome = tracker.outcome
    assert outcome is not None and outcome.ok
    assert (outcome.result_sets, outcome.rows, outcome.affected_rows) == (3, 3, 3)
    assert outcome.status_flags == AUTOCOMMIT


def test_results_call_reply_ends_with_ok() -> None:
    rows = [m.TextResultsetRow((b"5",))]
    messages = [
        *result_set(NEW, rows, AUTOCOMMIT | MORE),
        *result_set(NEW, rows, AUTOCOMMIT | MORE),
        m.OkPacket(0, 0, AUTOCOMMIT, 0, None),
    ]
    tracker = ReplyTracker(Command.COM_QUERY, NEW)
    feed_all(tracker, messages, NEW)
    assert tracker.outcome is not None and tracker.outcome.result_sets == 3


def test_results_error_in_the_middle() -> None:
    messages = [
        *result_set(NEW, [m.TextResultsetRow((b"1",))], MORE),
        m.ErrPacket(1146, "42S02", "Table 'app.x' doesn't exist"),
    ]
    tracker = ReplyTracker(Command.COM_QUERY, NEW)
    steps = feed_all(tracker, messages, NEW)
    assert steps[-1] is Step.ERR and tracker.done
    assert tracker.outcome is not None and not tracker.outcome.ok
    assert tracker.outcome.error == messages[-1]
    assert tracker.outcome.result_sets == 1
    with pytest.raises(ServerProtocolError, match="complete"):
        tracker.feed(b"\x00\x00\x00\x00\x00\x00\x00")


def test_results_row_starting_with_0xfe_is_a_row_when_long() -> None:
    # A text row whose first value is 16 MiB: lenenc 0xFE prefix, length >= 2**24.
    value = b"x" * (1 << 24)
    caps = NEW
    messages = [
        m.ColumnCount(1),
        COLUMN,
        m.TextResultsetRow((value,)),
        m.OkPacket(status_flags=AUTOCOMMIT, info=None, header=0xFE),
    ]
    tracker = ReplyTracker(Command.COM_QUERY, caps)
    steps = feed_all(tracker, messages, caps)
    assert steps == [
        Step.COLUMN_COUNT,
        Step.COLUMN_DEFINITION,
        Step.ROW,
        Step.RESULT_END,
    ]
    assert tracker.outcome is not None and tracker.outcome.rows == 1


def test_results_ok_with_session_state_ends_rows() -> None:
    state = b"\x01\x04\x03app"
    end = m.OkPacket(
        0, 0, AUTOCOMMIT | ServerStatus.SERVER_SESSION_STATE_CHANGED, 0, "", state, 0xFE
    )
    assert len(codec.encode_payload(end, NEW)) >= 9
    messages = [m.ColumnCount(1), COLUMN, m.TextResultsetRow((b"1",)), end]
    tracker = ReplyTracker(Command.COM_QUERY, NEW)
    feed_all(tracker, messages, NEW)
    assert tracker.outcome is not None
    assert codec.session_schema(tracker.outcome.session_state) == "app"


def test_results_eof_must_be_short_without_deprecate_eof() -> None:
    tracker = ReplyTracker(Command.COM_QUERY, BASE)
    tracker.feed(codec.encode_payload(m.ColumnCount(1), BASE))
    tracker.feed(codec.encode_payload(COLUMN, BASE))
    with pytest.raises(ServerProtocolError):
        tracker.feed(b"\xfe" + bytes(10))


def test_results_sequence_ids_checked_and_wrap() -> None:
    rows = [m.TextResultsetRow((str(i).encode(),)) for i in range(300)]
    tracker = ReplyTracker(Command.COM_QUERY, NEW)
    steps = feed_all(tracker, result_set(NEW, rows, AUTOCOMMIT), NEW)
    assert steps.count(Step.ROW) == 300 and tracker.done

    tracker = ReplyTracker(Command.COM_QUERY, NEW)
    reader = PacketReader()
    reader.feed(frame(b"\x01", 2))
    block, packets = reader.read_packets()
    with pytest.raises(ServerProtocolError, match="expected 1"):
        tracker.feed_packet(block, packets[0])


@pytest.mark.parametrize("caps", [BASE, NEW], ids=["eof", "deprecate_eof"])
def test_results_prepare(caps: int) -> None:
    messages: list[Any] = [m.ComStmtPrepareOk(7, 2, 3, 0), *[COLUMN] * 3]
    if not caps & Capability.CLIENT_DEPRECATE_EOF:
        messages.append(m.EofPacket(0, AUTOCOMMIT))
    messages += [COLUMN] * 2
    if not caps & Capability.CLIENT_DEPRECATE_EOF:
        messages.append(m.EofPacket(0, AUTOCOMMIT))
    tracker = ReplyTracker(Command.COM_STMT_PREPARE, caps)
    steps = feed_all(tracker, messages, caps)
    assert steps[0] is Step.PREPARE_OK and tracker.done
    assert tracker.outcome is not None
    assert tracker.outcome.prepare_ok == messages[0]


def test_results_prepare_without_params_or_columns_and_error() -> None:
    tracker = ReplyTracker(Command.COM_STMT_PREPARE, BASE)
    feed_all(tracker, [m.ComStmtPrepareOk(1, 0, 0, 0)], BASE)
    assert tracker.done
    tracker = ReplyTracker(Command.COM_STMT_PREPARE, BASE)
    feed_all(tracker, [m.ErrPacket(1064, "42000", "syntax")], BASE)
    assert tracker.outcome is not None and tracker.outcome.error is not None


def test_results_binary_execute_with_cursor_then_fetch() -> None:
    messages = [
        m.ColumnCount(1),
        COLUMN,
        m.EofPacket(0, AUTOCOMMIT | ServerStatus.SERVER_STATUS_CURSOR_EXISTS),
    ]
    tracker = ReplyTracker(Command.COM_STMT_EXECUTE, BASE)
    feed_all(tracker, messages, BASE)
    assert tracker.done and tracker.outcome is not None
    assert tracker.outcome.rows == 0

    rows = [m.BinaryResultsetRow((b"\x01\x00\x00\x00",))] * 2
    last = m.EofPacket(0, AUTOCOMMIT | ServerStatus.SERVER_STATUS_LAST_ROW_SENT)
    tracker = ReplyTracker(Command.COM_STMT_FETCH, BASE)
    steps = feed_all(tracker, [*rows, last], BASE)
    assert steps == [Step.ROW, Step.ROW, Step.RESULT_END]
    assert tracker.outcome is not None and tracker.outcome.rows == 2


def test_results_field_list() -> None:
    column = m.ColumnDefinition41(
        "app", "d", "d", "n", "n", 63, 11, 3, 0, 0, field_list=True, default_value=b"7"
    )
    tracker = ReplyTracker(Command.COM_FIELD_LIST, BASE)
    steps = feed_all(tracker, [column, column, m.EofPacket(0, AUTOCOMMIT)], BASE)
    assert steps == [Step.COLUMN_DEFINITION, Step.COLUMN_DEFINITION, Step.RESULT_END]
    assert tracker.done


def test_results_local_infile() -> None:
    tracker = ReplyTracker(Command.COM_QUERY, NEW)
    assert tracker.feed(b"\xfbdata.csv") is Step.LOCAL_INFILE_REQUEST
    assert tracker.phase is Phase.LOCAL_INFILE
    with pytest.raises(ServerProtocolError, match="waiting for the client"):
        tracker.feed(b"\x00\x00\x00\x02\x00\x00\x00")
    assert tracker.client_packet(100, sequence_id=2) is Step.LOCAL_INFILE_DATA
    assert tracker.client_packet(0, sequence_id=3) is Step.LOCAL_INFILE_DATA
    assert tracker.next_sequence_id == 4
    assert (
        tracker.feed(codec.encode_payload(m.OkPacket(2, 0, AUTOCOMMIT), NEW)) is Step.OK
    )
    assert tracker.outcome is not None and tracker.outcome.affected_rows == 2


def test_results_single_reply_commands() -> None:
    tracker = ReplyTracker(Command.COM_PING, BASE)
    assert tracker.feed(b"\x00\x00\x00\x02\x00\x00\x00") is Step.OK and tracker.done
    tracker = ReplyTracker(Command.COM_SET_OPTION, BASE)
    assert tracker.feed(b"\xfe\x00\x00\x02\x00") is Step.EOF and tracker.done
    tracker = ReplyTracker(Command.COM_INIT_DB, BASE)
    with pytest.raises(ServerProtocolError, match="expected ok or err"):
        tracker.feed(b"\x05")
    tracker = ReplyTracker(Command.COM_STATISTICS, BASE)
    assert tracker.feed(b"Uptime: 5") is Step.STATISTICS
    assert tracker.outcome is not None and tracker.outcome.info == "Uptime: 5"


def test_results_commands_without_reply_are_done_at_once() -> None:
    for command in (
        Command.COM_QUIT,
        Command.COM_STMT_CLOSE,
        Command.COM_STMT_SEND_LONG_DATA,
    ):
        tracker = ReplyTracker(command, BASE)
        assert tracker.done and tracker.outcome is not None and tracker.outcome.ok


def test_results_change_user_exchange() -> None:
    tracker = ReplyTracker(Command.COM_CHANGE_USER, BASE)
    switch = codec.encode_payload(
        m.AuthSwitchRequest("mysql_native_password", bytes(21)), 0
    )
    assert tracker.feed(switch) is Step.AUTH_DATA
    assert tracker.client_packet(20) is Step.AUTH_DATA
    assert tracker.feed(b"\x00\x00\x00\x02\x00\x00\x00") is Step.OK and tracker.done


def test_reply_kind_table() -> None:
    assert reply_kind(Command.COM_STMT_EXECUTE) is ReplyKind.RESULT
    assert reply_kind(Command.COM_RESET_CONNECTION) is ReplyKind.OK
    with pytest.raises(ServerProtocolError, match="0x12"):
        reply_kind(Command.COM_BINLOG_DUMP)


def test_results_cached_metadata_skips_definitions() -> None:
    caps = BASE | Capability.MARIADB_CLIENT_CACHE_METADATA
    messages = [
        m.ColumnCount(2, 0),
        m.EofPacket(0, AUTOCOMMIT),
        m.TextResultsetRow((b"1", b"2")),
        m.EofPacket(0, AUTOCOMMIT),
    ]
    tracker = ReplyTracker(Command.COM_STMT_EXECUTE, caps)
    steps = feed_all(tracker, messages, caps)
    assert steps == [Step.COLUMN_COUNT, Step.EOF, Step.ROW, Step.RESULT_END]


def test_results_mariadb_progress_report_is_not_an_error() -> None:
    caps = NEW | Capability.MARIADB_CLIENT_PROGRESS
    tracker = ReplyTracker(Command.COM_QUERY, caps)
    assert tracker.feed(b"\xff\xff\xff\x01\x01\x00\x10\x00\x05stage") is Step.PROGRESS
    assert not tracker.done
    assert tracker.feed(b"\x00\x00\x00\x02\x00\x00\x00") is Step.OK and tracker.done


@pytest.mark.parametrize("caps", [BASE, NEW])
def test_tracker_feed_row_counts_rows_as_feed_packet_does(caps: int) -> None:
    rows = [m.TextResultsetRow((str(n).encode(),)) for n in range(5)]
    messages = result_set(caps, rows, AUTOCOMMIT)
    stream, seq = b"", 1
    for message in messages:
        stream += frame(codec.encode_payload(message, caps), seq)
        seq += 1
    reader = PacketReader()
    reader.feed(stream)
    block, packets = reader.read_packets()
    head = 2 if caps & Capability.CLIENT_DEPRECATE_EOF else 3

    tracker = ReplyTracker(Command.COM_QUERY, caps)
    assert not tracker.feed_row(packets[0])  # not in the rows yet
    for packet in packets[:head]:
        tracker.feed_packet(block, packet)
    assert not tracker.feed_row(packets[head + 1])  # out of sequence
    assert all(tracker.feed_row(packet) for packet in packets[head:-1])
    assert not tracker.feed_row(packets[-1])  # the end of rows is not a row
    assert tracker.feed_packet(block, packets[-1]) is Step.RESULT_END
    assert tracker.done and tracker.outcome is not None
    assert tracker.outcome.rows == 5


def test_tracker_feed_row_leaves_an_error_to_feed_packet() -> None:
    tracker = ReplyTracker(Command.COM_QUERY, BASE)
    feed_all(tracker, result_set(BASE, [], AUTOCOMMIT)[:3], BASE)
    reader = PacketReader()
    reader.feed(frame(b"\xff\x7a\x04#42S02gone", tracker.next_sequence_id))
    block, (packet,) = reader.read_packets()
    assert not tracker.feed_row(packet)
    assert tracker.feed_packet(block, packet) is Step.ERR

"""The reply tracker pairs server replies with requests as the server produces them."""

from __future__ import annotations

from pamwire.pg.tracker import ExchangeTracker, Op, rows_from_tag


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rows_from_tag_reads_counts() -> None:
    assert rows_from_tag("INSERT 0 3") == 3
    assert rows_from_tag("SELECT 5") == 5
    assert rows_from_tag("CREATE TABLE") is None
    assert rows_from_tag("BEGIN") is None


def test_tracker_simple_query_statements_complete_in_order() -> None:
    clock = FakeClock()
    tracker = ExchangeTracker(clock)
    tracker.sent(Op.QUERY, ["a", "b"])
    clock.now = 0.002
    first = tracker.command_complete("SELECT 1")
    clock.now = 0.005
    second = tracker.command_complete("UPDATE 4")
    assert [(o.event_id, o.outcome, o.rows) for o in first + second] == [
        ("a", "ok", 1),
        ("b", "ok", 4),
    ]
    assert first[0].duration_ms == 2.0 and second[0].duration_ms == 3.0
    assert tracker.ready_for_query(b"I") == []
    assert not tracker.busy


def test_tracker_simple_query_error_skips_the_rest() -> None:
    tracker = ExchangeTracker(FakeClock())
    tracker.sent(Op.QUERY, ["a", "b", "c"])
    tracker.command_complete("SELECT 1")
    errored = tracker.error("22012")
    assert [(o.event_id, o.outcome, o.sqlstate) for o in errored] == [
        ("b", "error", "22012"),
        ("c", "skipped", None),
    ]
    assert tracker.ready_for_query(b"I") == []


def test_tracker_extended_error_skips_until_sync() -> None:
    tracker = ExchangeTracker(FakeClock())
    for eid in ("x", "y", "z"):
        tracker.sent(Op.PARSE)
        tracker.sent(Op.BIND)
        tracker.sent(Op.EXECUTE, [eid])
    tracker.sent(Op.SYNC)
    tracker.simple_reply(Op.PARSE)
    tracker.simple_reply(Op.BIND)
    assert [o.outcome for o in tracker.command_complete("INSERT 0 1")] == ["ok"]
    tracker.simple_reply(Op.PARSE)
    tracker.simple_reply(Op.BIND)
    outcomes = tracker.error("22012")
    assert [(o.event_id, o.outcome) for o in outcomes] == [
        ("y", "error"),
        ("z", "skipped"),
    ]
    assert tracker.busy
    tracker.ready_for_query(b"I")
    assert not tracker.busy


def test_tracker_syncs_during_copy_in_are_ignored() -> None:
    tracker = ExchangeTracker(FakeClock())
    tracker.sent(Op.PARSE)
    tracker.sent(Op.BIND)
    tracker.sent(Op.DESCRIBE)
    tracker.sent(Op.EXECUTE, ["copy"])
    tracker.sent(Op.SYNC)  # arrives while the server is in copy-in: ignored
    tracker.simple_reply(Op.PARSE)
    tracker.simple_reply(Op.BIND)
    tracker.row_description()
    tracker.copy_in_response()
    tracker.sent(Op.SYNC)  # also during copy-in
    tracker.sent(Op.COPY_END)
    tracker.sent(Op.SYNC)
    done = tracker.command_complete("COPY 2")
    assert [(o.event_id, o.rows) for o in done] == [("copy", 2)]
    tracker.ready_for_query(b"I")
    assert not tracker.busy


def test_tracker_records_transaction_status() -> None:
    tracker = ExchangeTracker(FakeClock())
    tracker.sent(Op.QUERY, ["b"])
    tracker.command_complete("BEGIN")
    tracker.ready_for_query(b"T")
    assert tracker.transaction_status == b"T"


def test_tracker_cancelled_statement_is_marked_cancelled() -> None:
    tracker = ExchangeTracker(FakeClock())
    tracker.sent(Op.QUERY, ["sleep"])
    outcomes = tracker.error("57014")
    assert [(o.outcome, o.sqlstate) for o in outcomes] == [("cancelled", "57014")]

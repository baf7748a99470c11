"""Tests of `log search`: filters, time parsing, output formats and options."""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Iterator

import pytest

from pamwire.audit.events import AuditEvent, AuditRecord, Completion
from pamwire.audit.search import (
    SearchQuery,
    add_search_arguments,
    format_json_lines,
    format_table,
    format_time,
    parse_time,
    run_search,
)
from pamwire.audit.store import AuditStore
from pamwire.errors import PamwireError
from tests.audit import BASE_TIME, make_event

HOUR = 3600.0

# Six events an hour apart, each the only one with its distinguishing value.
EVENTS = [
    make_event(time=BASE_TIME + 0 * HOUR, user="alice", target="prod", session="a1"),
    make_event(time=BASE_TIME + 1 * HOUR, user="bob", target="prod", session="b1"),
    make_event(time=BASE_TIME + 2 * HOUR, user="alice", target="staging", session="a2"),
    make_event(
        time=BASE_TIME + 3 * HOUR,
        user="alice",
        target="prod",
        session="a3",
        statement="DROP TABLE Größe",
        verdict="deny",
        rule="no-drop",
        message="drop is not allowed",
    ),
    make_event(
        time=BASE_TIME + 4 * HOUR,
        user="carol",
        target="prod",
        session="c1",
        statement="UPDATE t SET a = '100%'",
        verdict="audit",
    ),
    make_event(
        time=BASE_TIME + 5 * HOUR,
        kind="login_failed",
        user="mallory",
        target="prod",
        session="m1",
        statement=None,
        verdict=None,
        detail="wrong password",
    ),
]


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[AuditStore]:
    store = AuditStore(tmp_path / "audit.db")
    # Inserted out of time order: results must still come back by time.
    store.append(EVENTS[3:])
    store.append(EVENTS[:3])
    store.complete([Completion(EVENTS[1].event_id, 2.5, "ok", None, 7)])
    yield store
    store.close()


def found(store: AuditStore, **filters: object) -> list[AuditEvent]:
    return [record.event for record in store.search(SearchQuery(**filters))]  # type: ignore[arg-type]


def test_search_without_filters_returns_all_in_time_order(store: AuditStore) -> None:
    assert found(store) == EVENTS


def test_search_by_user(store: AuditStore) -> None:
    assert found(store, user="alice") == [EVENTS[0], EVENTS[2], EVENTS[3]]


def test_search_by_target(store: AuditStore) -> None:
    assert found(store, target="staging") == [EVENTS[2]]


def test_search_since_is_inclusive(store: AuditStore) -> None:
    assert found(store, since=BASE_TIME + 4 * HOUR) == EVENTS[4:]


def test_search_until_is_exclusive(store: AuditStore) -> None:
    assert found(store, until=BASE_TIME + 1 * HOUR) == EVENTS[:1]


def test_search_by_verdict(store: AuditStore) -> None:
    assert found(store, verdict="deny") == [EVENTS[3]]
    assert found(store, verdict="audit") == [EVENTS[4]]


def test_search_by_session(store: AuditStore) -> None:
    assert found(store, session="b1") == [EVENTS[1]]


def test_search_text_ignores_case_beyond_ascii(store: AuditStore) -> None:
    assert found(store, text="drop table GRÖSSE") == [EVENTS[3]]


def test_search_text_matches_message_and_detail(store: AuditStore) -> None:
    assert found(store, text="NOT ALLOWED") == [EVENTS[3]]
    assert found(store, text="wrong password") == [EVENTS[5]]


def test_search_text_wildcards_are_literal(store: AuditStore) -> None:
    assert found(store, text="100%") == [EVENTS[4]]
    assert found(store, text="1_0") == []
    assert found(store, text="%") == [EVENTS[4]]


def test_search_limit_keeps_the_newest_in_time_order(store: AuditStore) -> None:
    assert found(store, limit=2) == EVENTS[4:]


def test_search_filters_combine(store: AuditStore) -> None:
    assert found(store, user="alice", target="prod", since=BASE_TIME + 1) == [EVENTS[3]]


def test_search_query_rejects_a_limit_below_one() -> None:
    with pytest.raises(ValueError):
        SearchQuery(limit=0)


def test_search_returns_completions(store: AuditStore) -> None:
    record = store.search(SearchQuery(session="b1"))[0]
    assert (record.duration_ms, record.outcome, record.rows) == (2.5, "ok", 7)


# parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-04", BASE_TIME - 10 * HOUR),
        ("2026-12-04T10:00:00Z", BASE_TIME),
        ("2026-12-04T10:00:00", BASE_TIME),
        ("2026-12-04T12:00:00+02:00", BASE_TIME),
        ("2026-12-04T10:00:00.250Z", BASE_TIME + 0.25),
        (" 2026-12-04 10:00:00Z ", BASE_TIME),
    ],
)
def test_parse_time_iso_forms(text: str, expected: float) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), ("0s", 0)],
)
def test_parse_time_ages(text: str, seconds: int) -> None:
    assert parse_time(text, now=BASE_TIME) == BASE_TIME - seconds


def test_parse_time_age_defaults_to_the_clock() -> None:
    assert abs(parse_time("1h") - (parse_time("0s") - HOUR)) < 1


@pytest.mark.parametrize(
    "text", ["yesterday", "5w", "-5m", "1.5h", "", "2026-13-01", "m"]
)
def test_parse_time_rejects_other_forms(text: str) -> None:
    with pytest.raises(PamwireError, match="invalid time") as info:
        parse_time(text)
    assert repr(text) in str(info.value)
    assert "2026-12-04T10:00:00Z" in str(info.value)
    assert "15m" in str(info.value)


def test_format_time_is_utc_iso() -> None:
    assert format_time(BASE_TIME + 0.123456) == "2026-12-04T10:00:00.123456Z"
    assert format_time(BASE_TIME, timespec="milliseconds") == "2026-12-04T10:00:00.000Z"


# Output formats


def test_format_json_lines_has_every_field(store: AuditStore) -> None:
    records = store.search(SearchQuery())
    lines = format_json_lines(records).split("\n")
    assert len(lines) == len(EVENTS)

    objects = [json.loads(line) for line in lines]
    assert set(objects[0]) == {
        "time",
        "session",
        "user",
        "target",
        "statement",
        "verdict",
        "rule",
        "event_id",
        "kind",
        "client_addr",
        "application",
        "message",
        "statement_kind",
        "fingerprint",
        "operation",
        "detail",
        "duration_ms",
        "outcome",
        "sqlstate",
        "rows",
        # Added in schema version 2.
        "grant",
        "approvers",
        "protocol",
        "db_account",
        "tables_read",
        "tables_written",
        "functions",
        "params",
        "schema",
        "writer",
        "seq",
    }
    assert objects[0]["schema"] == 2
    assert objects[0]["tables_read"] == []
    assert isinstance(objects[0]["seq"], int)
    assert objects[0]["time"] == "2026-12-04T10:00:00.000000Z"
    assert objects[1]["duration_ms"] == 2.5
    assert objects[1]["rows"] == 7
    assert objects[3]["statement"] == "DROP TABLE Größe"
    assert objects[3]["rule"] == "no-drop"
    assert objects[5]["kind"] == "login_failed"
    assert objects[5]["verdict"] is None


def test_format_json_lines_escapes_control_characters() -> None:
    record = AuditRecord(make_event(statement="SELECT 1;\n\x1b[2J\u009b"))
    line = format_json_lines([record])
    assert "\n" not in line
    assert "\x1b" not in line
    assert "\u009b" not in line
    assert json.loads(line)["statement"] == "SELECT 1;\n\x1b[2J\u009b"


def test_format_json_lines_of_nothing_is_empty() -> None:
    assert format_json_lines([]) == ""


def test_format_table_aligns_columns(store: AuditStore) -> None:
    lines = format_table(store.search(SearchQuery()), width=200).split("\n")

    assert lines[0].split() == [
        "TIME",
        "SESSION",
        "USER",
        "TARGET",
        "VERDICT",
        "RULE",
        "STATEMENT",
    ]
    assert len(lines) == 1 + len(EVENTS)
    statement_column = lines[0].index("STATEMENT")
    rule_column = lines[0].index("RULE")
    for line in lines[1:]:
        assert line.startswith("2026-12-04T")
        assert line[statement_column - 1] == " "
        assert line[statement_column] != " "
        assert line[rule_column - 1] == " "
    assert lines[4].split()[:7] == [
        "2026-12-04T13:00:00.000Z",
        "a3",
        "alice",
        "prod",
        "deny",
        "no-drop",
        "DROP",
    ]
    assert lines[1].split()[5] == "-"  # no rule
    assert lines[6].endswith("[login_failed] wrong password")


def test_format_table_cuts_the_statement_to_the_width() -> None:
    record = AuditRecord(make_event(statement="SELECT " + "x, " * 100 + "1"))
    _header, line = format_table([record], width=100).split("\n")
    assert len(line) == 100
    assert line.endswith("x, …")


def test_format_table_shows_newlines_as_spaces_and_neutralises_escapes() -> None:
    record = AuditRecord(
        make_event(statement="SELECT 1\nFROM t\r\n\tWHERE \x1b[31mred", user="a\x07")
    )
    line = format_table([record], width=200).split("\n")[1]
    assert "SELECT 1 FROM t   WHERE \\x1b[31mred" in line
    assert "a\\x07" in line
    assert "\x1b" not in line
    assert "\x07" not in line


def test_format_table_of_nothing_is_the_header() -> None:
    assert format_table([], width=80).split() == [
        "TIME",
        "SESSION",
        "USER",
        "TARGET",
        "VERDICT",
        "RULE",
        "STATEMENT",
    ]


# Command-line options


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="pamwire log search")
    add_search_arguments(result)
    return result


def test_arguments_defaults() -> None:
    args = parser().parse_args([])
    assert (args.user, args.since, args.verdict, args.limit, args.format) == (
        None,
        None,
        None,
        1000,
        "table",
    )


def test_arguments_parse_times() -> None:
    args = parser().parse_args(
        ["--since", "2026-12-04T10:00Z", "--until", "2026-12-04T11:00"]
    )
    assert (args.since, args.until) == (BASE_TIME, BASE_TIME + HOUR)


@pytest.mark.parametrize(
    "argv",
    [
        ["--since", "yesterday"],
        ["--verdict", "maybe"],
        ["--limit", "0"],
        ["--limit", "ten"],
        ["--format", "xml"],
    ],
)
def test_arguments_reject_bad_values(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(argv)
    assert argv[1] in capsys.readouterr().err


def test_run_search_json(store: AuditStore) -> None:
    args = parser().parse_args(
        ["--user", "alice", "--verdict", "deny", "--text", "größe", "--format", "json"]
    )
    (line,) = run_search(store, args).split("\n")
    assert json.loads(line)["event_id"] == EVENTS[3].event_id


def test_run_search_table(store: AuditStore) -> None:
    args = parser().parse_args(
        ["--target", "prod", "--session", "c1", "--since", "2026-12-04T14:00Z"]
    )
    lines = run_search(store, args).split("\n")
    assert len(lines) == 2
    assert "carol" in lines[1]


def test_run_search_limit_and_until(store: AuditStore) -> None:
    args = parser().parse_args(
        ["--until", "2026-12-04T12:00Z", "--limit", "1", "--format", "json"]
    )
    (line,) = run_search(store, args).split("\n")
    assert json.loads(line)["session"] == "b1"


def test_run_search_rejects_since_after_until(store: AuditStore) -> None:
    args = parser().parse_args(["--since", "2026-12-05", "--until", "2026-12-04"])
    with pytest.raises(PamwireError, match=r"--since 2026-12-05.* is after --until"):
        run_search(store, args)


# Filters and formats added with schema version 2


@pytest.fixture
def facts_store(tmp_path: pathlib.Path) -> Iterator[AuditStore]:
    store = AuditStore(tmp_path / "facts.db")
    store.append(
        [
            make_event(
                statement="SELECT * FROM public.orders",
                tables_read=["public.orders"],
                grant="g-17",
            ),
            make_event(
                statement="DELETE FROM sales.orders_archive",
                statement_kind="delete",
                tables_written=["sales.orders_archive"],
                rule="no-unscoped-delete",
                verdict="deny",
            ),
            make_event(statement='=HYPERLINK("x")', functions=["now", "abs"]),
        ]
    )
    yield store
    store.close()


def statements(store: AuditStore, **filters: object) -> list[str | None]:
    return [e.statement for e in found(store, **filters)]


def test_search_by_statement_kind(facts_store: AuditStore) -> None:
    assert statements(facts_store, kind="delete") == [
        "DELETE FROM sales.orders_archive"
    ]


def test_search_by_table_with_or_without_schema(facts_store: AuditStore) -> None:
    orders = ["SELECT * FROM public.orders"]
    assert statements(facts_store, table="orders") == orders
    assert statements(facts_store, table="public.orders") == orders
    assert statements(facts_store, table="sales.orders") == []
    assert statements(facts_store, table="orders_archive") == [
        "DELETE FROM sales.orders_archive"
    ]


def test_search_by_rule_and_grant(facts_store: AuditStore) -> None:
    assert statements(facts_store, rule="no-unscoped-delete") == [
        "DELETE FROM sales.orders_archive"
    ]
    assert statements(facts_store, grant="g-17") == ["SELECT * FROM public.orders"]


def test_run_search_csv(facts_store: AuditStore) -> None:
    import csv
    import io

    args = parser().parse_args(["--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(run_search(facts_store, args))))
    assert len(rows) == 3
    assert rows[0]["tables_read"] == "public.orders"
    assert rows[0]["rule"] == ""
    assert rows[2]["functions"] == "abs now"
    # A cell a spreadsheet would run as a formula is shown as text.
    assert rows[2]["statement"] == '\'=HYPERLINK("x")'
    assert list(rows[0])[:3] == ["time", "session", "user"]


def test_format_csv_of_nothing_is_the_header() -> None:
    from pamwire.audit.search import format_csv

    header = format_csv([]).strip().split(",")
    assert header[:3] == ["time", "session", "user"] and "seq" in header


def test_arguments_new_filters() -> None:
    args = parser().parse_args(
        ["--kind", "drop", "--table", "t", "--rule", "r", "--grant", "g"]
    )
    assert (args.kind, args.table, args.rule, args.grant) == ("drop", "t", "r", "g")

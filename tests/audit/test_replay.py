"""Tests of session list and replay: psql-like layout, errors, truncation, CLI."""

from __future__ import annotations

import argparse
import io
import json
import pathlib
from collections.abc import Iterator

import pytest

from pamwire.audit import replay
from pamwire.audit.events import Completion
from pamwire.audit.recording import SessionRecorder
from pamwire.audit.replay import format_report, format_rows
from pamwire.audit.store import AuditStore
from pamwire.errors import PamwireError
from pamwire.pg.codec import encode
from pamwire.pg.messages import (
    CommandComplete,
    DataRow,
    ErrorResponse,
    FieldDescription,
    NoticeResponse,
    ReadyForQuery,
    RowDescription,
)
from tests.audit import BASE_TIME, make_event

# Printed by psql 15 (`psql -X -c ...`), trailing spaces as psql writes them.
PSQL_TWO_ROWS = """\
 id | name  | n | amount \n\
----+-------+---+--------
  1 | alice |   |   12.5
 22 | b     | x |      3"""

PSQL_WIDE_AND_MULTILINE = """\
   t   |   w   \n\
-------+-------
 two  +| é漢字
 lines | """


def test_replay_table_matches_psql_aligned_output() -> None:
    rows = [("1", "alice", None, "12.5"), ("22", "b", "x", "3")]
    lines = format_rows(
        ["id", "name", "n", "amount"], rows, column_types=[23, 25, 25, 1700]
    )
    assert "\n".join(lines) == PSQL_TWO_ROWS


def test_replay_table_wide_characters_and_line_breaks_match_psql() -> None:
    lines = format_rows(["t", "w"], [("two\nlines", "é漢字")])
    assert "\n".join(lines) == PSQL_WIDE_AND_MULTILINE


def test_replay_control_characters_are_escaped() -> None:
    lines = format_rows(["v"], [("\x1b[31mred\x07",)])
    assert "\x1b" not in "".join(lines) and "\\x1b[31mred\\x07" in lines[2]


def test_replay_error_shows_message_detail_and_sqlstate() -> None:
    fields = (("S", "ERROR"), ("C", "42P01"), ("M", 'relation "x" does not exist'))
    assert format_report((*fields, ("H", "check the name"))) == [
        'ERROR:  relation "x" does not exist',
        "HINT:  check the name",
        "SQLSTATE: 42P01",
    ]


def _server(recorder: SessionRecorder, *messages: object) -> None:
    recorder.server_block(b"".join(encode(m) for m in messages))  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[AuditStore]:
    """A trail with one recorded psql session and one older session without rows."""
    path = tmp_path / "audit.db"
    writer = AuditStore(path)
    start = make_event(kind="session_start", statement=None, verdict=None)
    select = make_event(statement="SELECT id, name FROM t")
    bad = make_event(statement="SELECT * FROM nope")
    denied = make_event(
        statement="DROP TABLE t",
        verdict="deny",
        rule="no-drop",
        message='pamwire: statement denied by rule "no-drop"',
        statement_kind="drop",
    )
    end = make_event(kind="session_end", statement=None, verdict=None)
    other = make_event(session="0ld", user="bob", time=BASE_TIME - 3600)
    writer.append([other, start, select, bad, denied, end])
    writer.complete(
        [
            Completion(select.event_id, 1.25, "ok", None, 250),
            Completion(bad.event_id, 0.5, "error", "42P01", None),
            Completion(other.event_id, 0.5, "ok", None, 1),
        ]
    )

    rec = SessionRecorder("5e55", max_rows_per_statement=2, clock=lambda: BASE_TIME)
    rec.statement(select.event_id, select.statement or "", select.time)
    rec.sync()
    rows = [DataRow((str(i).encode(), f"n{i}".encode())) for i in range(250)]
    _server(
        rec,
        RowDescription((FieldDescription("id", type_oid=23), FieldDescription("name"))),
        NoticeResponse((("S", "NOTICE"), ("V", "NOTICE"), ("M", "slow table"))),
        *rows,
        CommandComplete("SELECT 250"),
        ReadyForQuery(b"I"),
    )
    rec.statement(bad.event_id, bad.statement or "", bad.time)
    rec.sync()
    _server(
        rec,
        ErrorResponse(
            (("S", "ERROR"), ("C", "42P01"), ("M", 'relation "nope" does not exist'))
        ),
        ReadyForQuery(b"I"),
    )
    writer.append_recording(rec.close())
    writer.close()

    reader = AuditStore(path, read_only=True)
    yield reader
    reader.close()


def test_replay_text_shows_the_session_as_seen(store: AuditStore) -> None:
    text = replay.replay_text(store, "5e55")
    assert "prod=> SELECT id, name FROM t\nNOTICE:  slow table\n" in text
    assert (
        " id | name \n----+------\n  0 | n0\n  1 | n1\n"
        "… 248 more rows not recorded (row limit per statement)\n(250 rows)\n"
    ) in text
    assert 'ERROR:  relation "nope" does not exist\nSQLSTATE: 42P01' in text
    assert "denied by rule no-drop" in text
    assert 'ERROR:  pamwire: statement denied by rule "no-drop"' in text
    assert "-- 2026-12-04T10:00:" in text and "session end" in text
    assert "1.250 ms" in text


def test_replay_json_carries_rows_and_events(store: AuditStore) -> None:
    doc = json.loads(replay.replay_json(store, "5e55"))
    assert doc["session"] == "5e55"
    results = [s["result"] for s in doc["steps"] if s["result"] is not None]
    assert results[0]["rows"] == [["0", "n0"], ["1", "n1"]]
    assert results[0]["row_count"] == 250 and results[0]["truncated"] == "rows"
    assert next(s["kind"] for s in doc["steps"]) == "session_start"


def test_replay_unknown_session_is_an_error(store: AuditStore) -> None:
    with pytest.raises(PamwireError, match="no session 'nope'"):
        replay.replay_text(store, "nope")


def test_session_list_filters_and_counts(store: AuditStore) -> None:
    summaries = store.session_summaries()
    assert [s.session for s in summaries] == ["5e55", "0ld"]
    first = summaries[0]
    assert (first.statements, first.denied, first.recorded, first.ended) == (
        3,
        1,
        2,
        True,
    )
    assert [s.session for s in store.session_summaries(user="bob")] == ["0ld"]
    assert store.session_summaries(since=BASE_TIME - 10, user="bob") == []
    assert [s.session for s in store.session_summaries(until=BASE_TIME - 10)] == ["0ld"]
    text = replay.format_session_list(summaries)
    assert text.splitlines()[0].split() == list(replay._LIST_HEADERS)
    assert "(open)" in text  # the old session has no session_end


def test_session_commands_through_argparse(
    store: AuditStore, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pamwire.toml"
    config.write_text('[audit]\npath = "audit.db"\n')
    parser = argparse.ArgumentParser()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=pathlib.Path)
    replay.add_session_commands(parser.add_subparsers(), common)

    args = parser.parse_args(["session", "list", "--config", str(config)])
    assert args.func(args) == 0
    assert "5e55" in capsys.readouterr().out

    args = parser.parse_args(["session", "replay", "5e55", "--config", str(config)])
    out = io.StringIO()
    assert args.func(args, out) == 0
    assert "(250 rows)" in out.getvalue()


def test_session_list_leaves_out_grant_steps(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "audit.db"
    writer = AuditStore(path)
    writer.append(
        [
            make_event(kind="grant", session="grant-7", statement=None, verdict=None),
            make_event(session="c1e47"),
        ]
    )
    writer.close()
    reader = AuditStore(path, read_only=True)
    try:
        assert [s.session for s in reader.session_summaries()] == ["c1e47"]
    finally:
        reader.close()

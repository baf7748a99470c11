"""Tests of MySQL replay: the mysql client's tables and messages, whole sessions."""

from __future__ import annotations

import json
import pathlib

from pamwire.audit import replay
from pamwire.audit.events import AuditEvent, Completion
from pamwire.audit.mysql_recording import MySqlRecorder, Recorded
from pamwire.audit.mysql_replay import format_error, format_mysql_chunk, format_table
from pamwire.audit.recording import RecordingChunk
from pamwire.audit.store import AuditStore
from pamwire.mysql import replies
from pamwire.mysql.constants import Command
from tests.audit import BASE_TIME, make_event
from tests.audit.test_mysql_recording import CAPS, END, Feeder, column, text_row

NOT_NULL = 1 << 8  # NOT_NULL_FLAG, as recorded above the type code

# As the mariadb 10.11 client prints `SELECT id, a, b, NULL AS z ...` (-t):
# a nullable column is at least as wide as NULL, numbers are right-aligned.
MARIADB_TABLE = """\
+----+-------+------+------+
| id | a     | b    | z    |
+----+-------+------+------+
|  1 | row 1 |   10 | NULL |
| 10 | é漢字 |  100 | NULL |
+----+-------+------+------+"""


def test_mysql_replay_table_matches_the_client() -> None:
    lines = format_table(
        ["id", "a", "b", "z"],
        [("1", "row 1", "10", None), ("10", "é漢字", "100", None)],
        column_types=[3 | NOT_NULL, 252, 3, 6],
    )
    assert "\n".join(lines) == MARIADB_TABLE


def test_mysql_replay_table_escapes_control_characters_and_line_breaks() -> None:
    lines = format_table(["v"], [("\x1b[31mred\nnext",)], column_types=[253])
    assert "\x1b" not in "".join(lines)
    assert lines[3] == "| \\x1b[31mred\\nnext |"


def _chunk(**fields: object) -> RecordingChunk:
    base: dict[str, object] = {
        "session": "5e55",
        "seq": 1,
        "event_id": "e1",
        "statement": "SELECT 1",
        "started": BASE_TIME,
        "finished": BASE_TIME + 0.0125,
        "status": "ok",
    }
    base.update(fields)
    return RecordingChunk(**base)  # type: ignore[arg-type]


def test_mysql_replay_messages_of_the_client() -> None:
    ok = _chunk(tag="affected_rows=1 warnings=2 info=Rows matched: 1  Changed: 1")
    assert format_mysql_chunk(ok) == [
        "Query OK, 1 row affected, 2 warnings (0.013 sec)",
        "Rows matched: 1  Changed: 1",
    ]
    empty = _chunk(columns=("a",), column_types=(253,), tag="warnings=0")
    assert format_mysql_chunk(empty) == ["Empty set (0.013 sec)"]
    cut = _chunk(
        columns=("n",),
        column_types=(3,),
        rows=(("1",),),
        row_count=300,
        truncated="rows",
    )
    assert format_mysql_chunk(cut)[-2:] == [
        "… 299 more rows not recorded (row limit per statement)",
        "300 rows in set (0.013 sec)",
    ]
    error = _chunk(
        status="error", error=(("N", "1146"), ("C", "42S02"), ("M", "no table"))
    )
    assert format_mysql_chunk(error) == ["ERROR 1146 (42S02): no table"]
    assert format_error((("N", "2013"), ("M", "lost"))) == "ERROR 2013: lost"
    assert format_mysql_chunk(_chunk(tag="command=init_db")) == ["Database changed"]


def test_mysql_replay_whole_session(tmp_path: pathlib.Path) -> None:
    def event(**fields: object) -> AuditEvent:
        return make_event(protocol="mysql", target="app", application=None, **fields)

    start = event(kind="session_start", statement=None, verdict=None)
    select = event(statement="SELECT n FROM t", statement_kind="select")
    call = event(statement="CALL p(1)", statement_kind="call")
    delete = event(statement="DELETE FROM t", verdict="deny", rule="no-unscoped-delete")
    events = [start, select, call, delete]

    rec = MySqlRecorder("5e55", clock=lambda: BASE_TIME + 1)
    feed = Feeder(rec, CAPS)
    feed.command(
        Command.COM_QUERY, Recorded(select.event_id, "SELECT n FROM t", select.time)
    )
    for data in (b"\x01", column("n", 3), text_row("7"), END):
        feed.server(data)
    feed.command(
        Command.COM_QUERY,
        Recorded(call.event_id, "CALL p(1)", call.time, call=True),
    )
    more = bytes.fromhex("fe 00 00 0a00 0000")
    for data in (b"\x01", column("a", 3), text_row("1"), more):
        feed.server(data)
    for data in (b"\x01", column("b", 3), text_row("2"), more):
        feed.server(data)
    feed.server(bytes.fromhex("00 00 00 0200 0000"))
    reply = replies.denial("no-unscoped-delete", "add a WHERE", "delete", 1, CAPS)
    rec.refused([Recorded(delete.event_id, "DELETE FROM t", delete.time)], 0, reply)

    store = AuditStore(tmp_path / "audit.db")
    try:
        store.append_and_complete(
            events, [Completion(select.event_id, 1.5, "ok", None, 1)]
        )
        store.append_recording(rec.close())
        text = replay.replay_text(store, "5e55")
        as_json = json.loads(replay.replay_json(store, "5e55"))
    finally:
        store.close()

    assert "app> SELECT n FROM t\n+------+\n| n    |\n+------+\n|    7 |\n" in text
    assert "1 row in set (" in text
    # The CALL's two result sets and its final OK, in order, under one prompt.
    call_part = text.split("app> CALL p(1)\n")[1]
    assert call_part.index("| a    |") < call_part.index("| b    |")
    assert call_part.index("| b    |") < call_part.index("Query OK, 0 rows affected")
    assert (
        "app> DELETE FROM t\nERROR 1142 (42000): pamwire: statement denied by rule "
        '"no-unscoped-delete": add a WHERE (statement kind: delete)'
    ) in text
    steps = {s.get("statement"): s for s in as_json["steps"]}
    assert steps["CALL p(1)"]["result"]["rows"] == [["1"]]
    assert [r["rows"] for r in steps["CALL p(1)"]["more_results"]] == [[["2"]], []]

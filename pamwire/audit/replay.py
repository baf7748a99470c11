"""`pamwire session list` and `pamwire session replay`: recorded sessions, shown as
the person saw them.

Replay merges a session's audit events (statements, verdicts, timing) with its
recording (result rows, errors, notices; pamwire/audit/recording.py and
mysql_recording.py) and lays the results out the way psql prints them in its
default aligned format, or, for MySQL sessions, the way the mysql client prints
them (mysql_replay.py). Everything that came from the client or the server passes
through one filter (terminal.clean) that turns control characters into visible
escapes, so a recorded value cannot drive the terminal of the person replaying it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from pamwire.audit.events import AuditRecord
from pamwire.audit.mysql_recording import parse_tag
from pamwire.audit.mysql_replay import format_mysql_chunk
from pamwire.audit.recording import RecordingChunk
from pamwire.audit.recording_store import SessionSummary
from pamwire.audit.search import SearchQuery, format_time, parse_time, record_to_json
from pamwire.audit.store import AuditStore
from pamwire.audit.terminal import clean, display_width
from pamwire.errors import PamwireError

# Type oids psql right-aligns (its column_type_alignment): int2, int4, int8, oid,
# xid, cid, float4, float8, money, numeric, xid8.
_NUMERIC_TYPES = frozenset({20, 21, 23, 26, 28, 29, 700, 701, 790, 1700, 5069})
# psql prints the command tag after the rows of these commands (… RETURNING).
_TAG_AFTER_ROWS = ("INSERT", "UPDATE", "DELETE", "MERGE")

_REPORT_LABELS = (("D", "DETAIL"), ("H", "HINT"), ("W", "CONTEXT"))
_TRUNCATION_REASONS = {
    "rows": "row limit per statement",
    "bytes": "byte limit per session",
    "secret": "the statement carried a secret",
}

_ALL = 1 << 62  # "no limit" for searches of one session


# -- psql-like tables --------------------------------------------------------------


def format_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[str | None]],
    *,
    column_types: Sequence[int] = (),
) -> list[str]:
    """The lines psql's aligned format prints for a result, without the footer.

    Values with line breaks span several lines, the continued cell ending in "+".
    NULL shows as an empty cell, as in psql's default.
    """
    count = len(columns)
    if count == 0:
        return ["--"]
    right = [
        i < len(column_types) and column_types[i] in _NUMERIC_TYPES
        for i in range(count)
    ]
    header = [clean(c).split("\n") for c in columns]
    cells = [
        [clean("" if v is None else v).split("\n") for v in _fit(row, count)]
        for row in rows
    ]
    widths = [
        max(
            display_width(line)
            for cell in [header[i], *(r[i] for r in cells)]
            for line in cell
        )
        for i in range(count)
    ]

    lines = _physical_lines(header, widths, [False] * count, center=True)
    lines.append("+".join("-" * (w + 2) for w in widths))
    for row in cells:
        lines += _physical_lines(row, widths, right, center=False)
    return lines


def _fit(row: Sequence[str | None], count: int) -> list[str | None]:
    values = list(row[:count])
    return values + [None] * (count - len(values))


def _physical_lines(
    cells: list[list[str]], widths: list[int], right: list[bool], *, center: bool
) -> list[str]:
    # As psql does: a header line keeps its padding; a data line ends right after
    # its last value (or its continuation mark).
    height = max(len(c) for c in cells)
    last = len(cells) - 1
    out = []
    for n in range(height):
        parts = []
        for i, cell in enumerate(cells):
            text = cell[n] if n < len(cell) else ""
            pad = widths[i] - display_width(text)
            more = "+" if n + 1 < len(cell) else " "
            if center:
                text = " " * (pad // 2) + text + " " * (pad - pad // 2)
            elif right[i]:
                text = " " * pad + text
            elif i < last or more == "+":
                text = text + " " * pad
            if i == last and not center and more == " ":
                more = ""
            parts.append(" " + text + more)
        out.append("|".join(parts))
    return out


def format_report(fields: Sequence[tuple[str, str]]) -> list[str]:
    """An ErrorResponse or NoticeResponse as psql prints it, with its SQLSTATE."""
    values = dict(fields)
    severity = values.get("V") or values.get("S") or "ERROR"
    lines = [f"{clean(severity)}:  {clean(values.get('M', ''))}"]
    for code, label in _REPORT_LABELS:
        if code in values:
            lines.append(f"{label}:  {clean(values[code])}")
    if "C" in values and severity in ("ERROR", "FATAL", "PANIC"):
        lines.append(f"SQLSTATE: {clean(values['C'])}")
    return lines


def format_chunk(chunk: RecordingChunk) -> list[str]:
    """What the person saw for one recorded statement: notices, then the result
    table or command tag, or the error."""
    lines: list[str] = []
    for notice in chunk.notices:
        lines += format_report(notice)
    if chunk.notices_dropped:
        lines.append(f"… {chunk.notices_dropped} more notices not recorded")

    if chunk.columns is not None or chunk.rows:
        columns = chunk.columns
        if columns is None:  # rows of a statement described before it was recorded
            width = max(len(r) for r in chunk.rows)
            columns = ("?column?",) * width
        lines += format_rows(columns, chunk.rows, column_types=chunk.column_types)
        missing = chunk.rows_not_recorded
        if missing:
            reason = _TRUNCATION_REASONS.get(chunk.truncated or "", "not recorded")
            lines.append(f"… {missing} more rows not recorded ({reason})")
        if chunk.status in ("ok", "suspended"):
            count = chunk.row_count
            lines.append("(1 row)" if count == 1 else f"({count} rows)")
        if chunk.tag and chunk.tag.startswith(_TAG_AFTER_ROWS):
            lines.append(clean(chunk.tag))
    elif chunk.tag:
        lines.append(clean(chunk.tag))

    if chunk.error is not None:
        lines += format_report(chunk.error)
    elif chunk.status == "skipped":
        lines.append("(not run: an earlier statement of the same request failed)")
    elif chunk.status == "unfinished":
        lines.append("(no answer before the session ended)")
    elif chunk.status == "suspended":
        lines.append("(portal suspended: the client asked for more rows later)")
    return lines


# -- a whole session -------------------------------------------------------------------


def _session_records(store: AuditStore, session: str) -> list[AuditRecord]:
    records = store.search(SearchQuery(session=session, limit=_ALL))
    if not records:
        raise PamwireError(f"no session {session!r} in the audit trail")
    return records


Step = tuple[float, AuditRecord | None, list[RecordingChunk]]


def _steps(records: list[AuditRecord], chunks: list[RecordingChunk]) -> list[Step]:
    """Events with their chunks, and chunks of no event, in time order.

    An event has one chunk, or (a MySQL CALL) one per result set it answered.
    """
    by_event: dict[str, list[RecordingChunk]] = {}
    for chunk in chunks:
        if chunk.event_id is not None:
            by_event.setdefault(chunk.event_id, []).append(chunk)
    steps: list[Step] = [
        (r.event.time, r, by_event.get(r.event.event_id, [])) for r in records
    ]
    steps += [
        (c.finished if c.started is None else c.started, None, [c])
        for c in chunks
        if c.event_id is None
    ]
    steps.sort(key=lambda s: s[0])  # stable: events keep their store order
    return steps


def replay_text(store: AuditStore, session: str) -> str:
    """The session as text: a header, then each step with its timestamp.

    PostgreSQL sessions look as psql shows them, MySQL sessions as the mysql
    client does (pamwire/audit/mysql_replay.py).
    """
    records = _session_records(store, session)
    chunks = store.recording(session)
    first = records[0].event
    who = next((r.event.user for r in records if r.event.user), None)
    target = next((r.event.target for r in records if r.event.target), None)
    mysql = first.protocol == "mysql"
    lines = [
        f"session {clean(session)}: {clean(who or '-')} on {clean(target or '-')}"
        f" from {clean(first.client_addr or '-')}"
        f" ({clean(first.application or 'no application name')})",
    ]
    prompt = f"{clean(target or 'db')}{'>' if mysql else '=>'} "
    show = format_mysql_chunk if mysql else format_chunk
    for when, record, found in _steps(records, chunks):
        stamp = format_time(when, timespec="milliseconds")
        if record is None:
            chunk = found[0]
            if chunk.statement is None:
                lines += ["", f"-- {stamp}  server message"]
            else:  # a MySQL prepare or change of database, which has no event
                operation = _loose_operation(chunk)
                lines += ["", f"-- {stamp}  via {operation}"]
                lines.append(_prompted(prompt, chunk.statement))
            lines += show(chunk)
            continue
        event = record.event
        if event.kind != "statement":
            note = event.detail or event.message or ""
            extra = f": {clean(note)}" if note else ""
            lines += ["", f"-- {stamp}  {event.kind.replace('_', ' ')}{extra}"]
            continue
        lines += ["", _statement_header(stamp, record)]
        lines.append(_prompted(prompt, event.statement or ""))
        if found:
            for chunk in found:
                lines += show(chunk)
        else:
            lines += _unrecorded_body(record, mysql=mysql)
    return "\n".join(lines) + "\n"


def _prompted(prompt: str, statement: str) -> str:
    text = clean(statement)
    return prompt + text.replace("\n", "\n" + " " * len(prompt))


def _loose_operation(chunk: RecordingChunk) -> str:
    command = parse_tag(chunk.tag).get("command")
    if command is None and chunk.statement and chunk.statement.startswith("USE "):
        command = "init_db"
    return command or "prepare"


def _statement_header(stamp: str, record: AuditRecord) -> str:
    event = record.event
    parts = [f"-- {stamp}"]
    if record.duration_ms is not None:
        parts.append(f"{record.duration_ms:.3f} ms")
    if event.verdict and event.verdict != "allow":
        rule = f" by rule {clean(event.rule)}" if event.rule else ""
        parts.append(("denied" if event.verdict == "deny" else "flagged") + rule)
    if event.operation and event.operation != "query":
        parts.append(f"via {clean(event.operation)}")
    return "  ".join(parts)


def _unrecorded_body(record: AuditRecord, *, mysql: bool) -> list[str]:
    event = record.event
    if event.verdict == "deny":
        message = clean(event.message or "statement denied")
        return [f"ERROR: {message}" if mysql else f"ERROR:  {message}"]
    if record.outcome is None:
        return ["(no result recorded)"]
    note = f"(result not recorded; outcome {record.outcome}"
    if record.sqlstate:
        note += f", SQLSTATE {record.sqlstate}"
    if record.rows is not None:
        note += f", {record.rows} rows"
    return [note + ")"]


def _chunk_json(chunk: RecordingChunk) -> dict[str, Any]:
    return {
        "seq": chunk.seq,
        "status": chunk.status,
        "started": None if chunk.started is None else format_time(chunk.started),
        "finished": format_time(chunk.finished),
        "row_count": chunk.row_count,
        **chunk.to_data(),
    }


def replay_json(store: AuditStore, session: str) -> str:
    """The session as one JSON document: its events, each with its recording.

    `result` is the step's recorded result (or null); `more_results` holds the
    further result sets of a MySQL CALL, when it answered several.
    """
    records = _session_records(store, session)
    steps: list[dict[str, Any]] = []
    for _, record, found in _steps(records, store.recording(session)):
        step: dict[str, Any] = record_to_json(record) if record is not None else {}
        step["result"] = _chunk_json(found[0]) if found else None
        if len(found) > 1:
            step["more_results"] = [_chunk_json(c) for c in found[1:]]
        steps.append(step)
    return json.dumps({"session": session, "steps": steps}, indent=1) + "\n"


# -- session list -------------------------------------------------------------------


_LIST_HEADERS = (
    "SESSION",
    "START",
    "END",
    "USER",
    "TARGET",
    "CLIENT",
    "STMTS",
    "DENIED",
    "RECORDED",
)


def format_session_list(summaries: Sequence[SessionSummary]) -> str:
    """Aligned columns, one session per line, as given (newest first)."""
    rows = [
        [
            s.session,
            format_time(s.first, timespec="seconds"),
            format_time(s.last, timespec="seconds") if s.ended else "(open)",
            s.user or "-",
            s.target or "-",
            s.client_addr or "-",
            str(s.statements),
            str(s.denied),
            str(s.recorded),
        ]
        for s in summaries
    ]
    table = [
        list(_LIST_HEADERS),
        *[[clean(v).replace("\n", " ") for v in r] for r in rows],
    ]
    widths = [
        max(display_width(row[i]) for row in table) for i in range(len(_LIST_HEADERS))
    ]
    lines = []
    for row in table:
        cells = [
            v + " " * (w - display_width(v)) for v, w in zip(row, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


# -- command line ---------------------------------------------------------------------


def _time(value: str) -> float:
    try:
        return parse_time(value)
    except PamwireError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_session_commands(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    common_parent: argparse.ArgumentParser,
) -> None:
    """Add `session list` and `session replay` to the top-level subparsers."""
    session = subparsers.add_parser("session", help="recorded sessions")
    sub = session.add_subparsers(title="session commands", metavar="ACTION")

    p = sub.add_parser(
        "list", parents=[common_parent], help="list sessions, newest first"
    )
    p.add_argument("--user", help="only sessions of this person")
    p.add_argument("--target", help="only sessions on this target")
    p.add_argument(
        "--since", type=_time, metavar="TIME", help="sessions active at or after TIME"
    )
    p.add_argument(
        "--until", type=_time, metavar="TIME", help="sessions active before TIME"
    )
    p.add_argument(
        "--limit", type=int, default=100, help="at most N sessions (default 100)"
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser(
        "replay", parents=[common_parent], help="show a session as the person saw it"
    )
    p.add_argument(
        "session", metavar="ID", help="session id, as `session list` shows it"
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_replay)


def open_store(args: argparse.Namespace) -> AuditStore:
    """The audit store named by the configuration of args.config, read-only."""
    from pamwire.config import default_config_path, load_config

    config = load_config(args.config or default_config_path())
    return AuditStore(config.resolve(config.audit.path), read_only=True)


def run_session_list(store: AuditStore, args: argparse.Namespace) -> str:
    if args.limit < 1:
        raise PamwireError(f"invalid limit {args.limit}: use a whole number >= 1")
    summaries = store.session_summaries(
        user=args.user,
        target=args.target,
        since=args.since,
        until=args.until,
        limit=args.limit,
    )
    return format_session_list(summaries)


def run_replay(store: AuditStore, args: argparse.Namespace) -> str:
    if args.format == "json":
        return replay_json(store, args.session)
    return replay_text(store, args.session)


def _cmd_list(args: argparse.Namespace, out: TextIO | None = None) -> int:
    store = open_store(args)
    try:
        text = run_session_list(store, args)
    finally:
        store.close()
    (out or sys.stdout).write(text)
    return 0


def _cmd_replay(args: argparse.Namespace, out: TextIO | None = None) -> int:
    store = open_store(args)
    try:
        text = run_replay(store, args)
    finally:
        store.close()
    (out or sys.stdout).write(text)
    return 0

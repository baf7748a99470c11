"""`pamwire log search`: the query, its command-line options and its output formats.

Table output is for people at a terminal, so every control character in a cell is
neutralised (a statement can carry escape sequences). JSON lines and CSV are for tools
and keep every field.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import re
import shutil
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from pamwire.audit.events import VERDICTS, AuditRecord
from pamwire.errors import PamwireError

if TYPE_CHECKING:
    from pamwire.audit.store import AuditStore

DEFAULT_LIMIT = 1000


@attrs.frozen(kw_only=True)
class SearchQuery:
    """Filters that must all match; None means any. The newest `limit` records win.

    `since` is inclusive and `until` exclusive (unix seconds). `text` is a
    case-insensitive substring of the statement, message or detail. `kind` is the
    statement kind; `table` matches a table read or written, with or without its
    schema.
    """

    user: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None
    verdict: str | None = None
    text: str | None = None
    session: str | None = None
    kind: str | None = None
    table: str | None = None
    rule: str | None = None
    grant: str | None = None
    limit: int = attrs.field(default=DEFAULT_LIMIT, validator=attrs.validators.ge(1))


_AGO = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TIME_FORMS = "ISO 8601 (2026-12-04, 2026-12-04T10:00:00Z) or an age (30s, 15m, 2h, 7d)"


def parse_time(value: str, *, now: float | None = None) -> float:
    """Unix seconds for an ISO 8601 date or time, or for an age such as "15m" ago.

    A date or time without an offset is taken as UTC. Raises PamwireError naming
    the value and the accepted forms.
    """
    text = value.strip()
    ago = _AGO.fullmatch(text)
    if ago is not None:
        if now is None:
            now = time.time()
        return now - int(ago.group(1)) * _UNIT_SECONDS[ago.group(2)]
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise PamwireError(f"invalid time {value!r}: use {_TIME_FORMS}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def format_time(seconds: float, *, timespec: str = "microseconds") -> str:
    """Unix seconds as ISO 8601 UTC ending in Z, e.g. 2026-12-04T10:00:00.123456Z."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


# Control characters (C0, DEL, C1) would let a statement move the cursor or recolour
# an auditor's terminal. Line breaks and tabs become spaces, the rest a visible escape.
_CLEAN = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
_CLEAN.update({ord("\n"): " ", ord("\r"): " ", ord("\t"): " "})
_CLEAN.update({0x2028: " ", 0x2029: " "})

_HEADERS = ("TIME", "SESSION", "USER", "TARGET", "VERDICT", "RULE", "STATEMENT")
# Widest a column other than the statement may grow; longer values are cut.
_MAX_WIDTHS = (24, 16, 24, 24, 7, 32)
_MIN_STATEMENT_WIDTH = 20
_GAP = "  "


def clean_text(value: str) -> str:
    """`value` safe for a terminal: line breaks and tabs become spaces, other
    control characters (C0, DEL, C1) visible escapes like `\\x1b`."""
    return value.translate(_CLEAN)


def _cell(value: str | None, width: int | None = None) -> str:
    if value is None:
        return "-"
    text = clean_text(value)
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def _what(record: AuditRecord) -> str | None:
    event = record.event
    if event.kind == "statement":
        return event.statement
    note = event.detail or event.message
    return f"[{event.kind}] {note}" if note else f"[{event.kind}]"


def format_table(records: Sequence[AuditRecord], *, width: int | None = None) -> str:
    """Aligned columns under a header; the statement is cut to fit `width`.

    `width` defaults to the terminal's width (120 when there is no terminal).
    """
    if width is None:
        width = shutil.get_terminal_size((120, 24)).columns
    rows = [
        [
            format_time(r.event.time, timespec="milliseconds"),
            *(
                _cell(value, limit)
                for value, limit in zip(
                    (r.event.session, r.event.user, r.event.target),
                    _MAX_WIDTHS[1:4],
                    strict=True,
                )
            ),
            _cell(r.event.verdict, _MAX_WIDTHS[4]),
            _cell(r.event.rule, _MAX_WIDTHS[5]),
            _cell(_what(r)),
        ]
        for r in records
    ]

    widths = [len(header) for header in _HEADERS[:-1]]
    for row in rows:
        for column, text in enumerate(row[:-1]):
            widths[column] = max(widths[column], len(text))
    used = sum(widths) + len(_GAP) * len(widths)
    statement_width = max(_MIN_STATEMENT_WIDTH, width - used)

    lines = []
    for row in [list(_HEADERS), *rows]:
        statement = row[-1]
        if len(statement) > statement_width:
            statement = statement[: statement_width - 1] + "…"
        cells = [text.ljust(w) for text, w in zip(row[:-1], widths, strict=True)]
        lines.append(_GAP.join([*cells, statement]).rstrip())
    return "\n".join(lines)


def record_to_json(record: AuditRecord) -> dict[str, object]:
    """One record as a JSON-ready dict: every event and completion field."""
    event = record.event
    result: dict[str, object] = {
        "time": format_time(event.time),
        "session": event.session,
        "user": event.user,
        "target": event.target,
        "statement": event.statement,
        "verdict": event.verdict,
        "rule": event.rule,
    }
    for field in attrs.fields(type(event)):
        if field.name not in result:
            value = getattr(event, field.name)
            result[field.name] = list(value) if isinstance(value, tuple) else value
    result["writer"] = record.writer
    result["seq"] = record.seq
    result["duration_ms"] = record.duration_ms
    result["outcome"] = record.outcome
    result["sqlstate"] = record.sqlstate
    result["rows"] = record.rows
    return result


def format_json_lines(records: Sequence[AuditRecord]) -> str:
    """One JSON object per record and line, ASCII only, with no trailing newline."""
    return "\n".join(json.dumps(record_to_json(r)) for r in records)


def format_csv(records: Sequence[AuditRecord]) -> str:
    """A header row and one row per record, with the JSON keys as columns.

    Lists are joined with spaces; absent values are empty cells. Cells starting
    with = + - @ get a leading apostrophe, so a spreadsheet shows them as text
    instead of running them as formulas.
    """
    out = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for record in records:
        row = record_to_json(record)
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
            writer.writeheader()
        writer.writerow({key: _csv_cell(value) for key, value in row.items()})
    if writer is None:
        return ",".join(_json_keys()) + "\n"
    return out.getvalue()


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join("" if v is None else str(v) for v in value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _json_keys() -> list[str]:
    from pamwire.audit.events import AuditEvent

    empty = AuditRecord(AuditEvent("", 0.0, "", "", None, None, None, None))
    return list(record_to_json(empty))


def _time_argument(value: str) -> float:
    try:
        return parse_time(value)
    except PamwireError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _limit_argument(value: str) -> int:
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise argparse.ArgumentTypeError(
            f"invalid limit {value!r}: use a whole number >= 1"
        )
    return limit


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `pamwire log search` to parser."""
    parser.add_argument("--user", help="only events of this person")
    parser.add_argument("--target", help="only events on this target")
    parser.add_argument(
        "--since",
        type=_time_argument,
        metavar="TIME",
        help=f"only events at or after TIME: {_TIME_FORMS}",
    )
    parser.add_argument(
        "--until",
        type=_time_argument,
        metavar="TIME",
        help="only events before TIME (same forms as --since)",
    )
    parser.add_argument("--verdict", choices=VERDICTS, help="only this verdict")
    parser.add_argument(
        "--text", help="only events whose statement or message contains TEXT (any case)"
    )
    parser.add_argument("--session", help="only events of this pamwire session id")
    parser.add_argument(
        "--kind", help="only statements of this kind (select, delete, drop, ...)"
    )
    parser.add_argument(
        "--table", help="only statements reading or writing this table (schema.name)"
    )
    parser.add_argument("--rule", help="only events decided by this rule")
    parser.add_argument("--grant", help="only events under this grant")
    parser.add_argument(
        "--limit",
        type=_limit_argument,
        default=DEFAULT_LIMIT,
        help=f"show the newest N matches, oldest first (default {DEFAULT_LIMIT})",
    )
    parser.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="aligned table (default), one JSON object per line, or CSV",
    )


def run_search(store: AuditStore, args: argparse.Namespace) -> str:
    """Run the search described by parsed arguments and return the formatted text.

    Raises PamwireError when --since is after --until, AuditError if the store
    cannot be read.
    """
    if args.since is not None and args.until is not None and args.since > args.until:
        since, until = format_time(args.since), format_time(args.until)
        raise PamwireError(f"--since {since} is after --until {until}")
    query = SearchQuery(
        user=args.user,
        target=args.target,
        since=args.since,
        until=args.until,
        verdict=args.verdict,
        text=args.text,
        session=args.session,
        kind=args.kind,
        table=args.table,
        rule=args.rule,
        grant=args.grant,
        limit=args.limit,
    )
    records = store.search(query)
    if args.format == "json":
        return format_json_lines(records)
    if args.format == "csv":
        return format_csv(records)
    return format_table(records)

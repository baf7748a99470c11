"""Recorded MySQL results laid out as the mysql and mariadb command-line clients
print them: bordered tables, "N rows in set", "Query OK", "ERROR n (state)".

Tables follow the clients' print_table_data: a column is as wide as its name, its
widest value and, when it may hold NULL, the four letters of NULL; numeric types
are right-aligned. The clients print a line break inside a value as it is, which
breaks the table's border; replay shows it as \\n instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from pamwire.audit.mysql_recording import column_flags, column_type, parse_tag
from pamwire.audit.recording import RecordingChunk, ReportFields
from pamwire.audit.terminal import clean, display_width
from pamwire.mysql.constants import ColumnFlag
from pamwire.mysql.constants import ColumnType as T

# The clients' IS_NUM: right-aligned column types.
_NUMERIC: Final = frozenset(
    {
        T.MYSQL_TYPE_DECIMAL,
        T.MYSQL_TYPE_TINY,
        T.MYSQL_TYPE_SHORT,
        T.MYSQL_TYPE_LONG,
        T.MYSQL_TYPE_FLOAT,
        T.MYSQL_TYPE_DOUBLE,
        T.MYSQL_TYPE_NULL,
        T.MYSQL_TYPE_LONGLONG,
        T.MYSQL_TYPE_INT24,
        T.MYSQL_TYPE_YEAR,
        T.MYSQL_TYPE_NEWDECIMAL,
    }
)
_NOT_NULL: Final = int(ColumnFlag.NOT_NULL_FLAG)
_TRUNCATION_REASONS: Final = {
    "rows": "row limit per statement",
    "bytes": "byte limit per session",
    "secret": "the statement carried a secret",
}


def _cell(value: str | None) -> str:
    return "NULL" if value is None else clean(value).replace("\n", "\\n")


def format_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str | None]],
    *,
    column_types: Sequence[int] = (),
) -> list[str]:
    """The lines of the clients' bordered table for a result, without the footer.

    `column_types` are recorded MySQL entries (type and flags); a column without
    one is taken as a nullable string.
    """
    count = len(columns)
    codes = [column_types[i] if i < len(column_types) else 0xFD for i in range(count)]
    header = [_cell(c) for c in columns]
    cells = [
        [_cell(row[i] if i < len(row) else None) for i in range(count)] for row in rows
    ]
    widths = []
    for i in range(count):
        width = max(display_width(text) for text in [header[i], *(r[i] for r in cells)])
        if width < 4 and not column_flags(codes[i]) & _NOT_NULL:
            width = 4
        widths.append(width)
    right = [column_type(code) in _NUMERIC for code in codes]

    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [border, _line(header, widths, [False] * count), border]
    lines += [_line(row, widths, right) for row in cells]
    lines.append(border)
    return lines


def _line(cells: list[str], widths: list[int], right: list[bool]) -> str:
    parts = []
    for text, width, align_right in zip(cells, widths, right, strict=True):
        pad = " " * (width - display_width(text))
        parts.append(f" {pad}{text} " if align_right else f" {text}{pad} ")
    return "|" + "|".join(parts) + "|"


def format_error(fields: ReportFields) -> str:
    """An ERR packet as the clients print it: ERROR 1146 (42S02): message."""
    values = dict(fields)
    number = clean(values.get("N", "?"))
    state = f" ({clean(values['C'])})" if "C" in values else ""
    return f"ERROR {number}{state}: {clean(values.get('M', ''))}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _seconds(chunk: RecordingChunk) -> str:
    if chunk.started is None:
        return ""
    return f" ({max(chunk.finished - chunk.started, 0.0):.3f} sec)"


def format_mysql_chunk(chunk: RecordingChunk) -> list[str]:
    """What the person saw for one recorded MySQL result."""
    tag = parse_tag(chunk.tag)
    warnings = int(tag.get("warnings", "0") or 0)
    warned = f", {_plural(warnings, 'warning')}" if warnings else ""
    lines: list[str] = []

    if chunk.error is not None:
        return [format_error(chunk.error)]
    if chunk.status == "skipped":
        return ["(not run: another statement of the same query failed or was denied)"]
    if chunk.status == "unfinished":
        return ["(no answer before the session ended)"]

    if chunk.columns is not None:
        if tag.get("cursor"):
            lines += format_table(chunk.columns, (), column_types=chunk.column_types)
            lines.append("(rows read later through a cursor are not recorded)")
            return lines
        if chunk.rows or chunk.row_count:
            lines += format_table(
                chunk.columns, chunk.rows, column_types=chunk.column_types
            )
        missing = chunk.rows_not_recorded
        if missing:
            reason = _TRUNCATION_REASONS.get(chunk.truncated or "", "not recorded")
            lines.append(f"… {missing} more rows not recorded ({reason})")
        if chunk.row_count:
            lines.append(
                f"{_plural(chunk.row_count, 'row')} in set{warned}{_seconds(chunk)}"
            )
        else:
            lines.append(f"Empty set{warned}{_seconds(chunk)}")
        return lines

    command = tag.get("command")
    if command == "init_db":
        return ["Database changed"]
    if command == "prepare":
        params = int(tag.get("params", "0") or 0)
        return [f"Statement prepared ({_plural(params, 'parameter')})"]
    affected = int(tag.get("affected_rows", "0") or 0)
    lines.append(
        f"Query OK, {_plural(affected, 'row')} affected{warned}{_seconds(chunk)}"
    )
    if tag.get("info"):
        lines.append(clean(tag["info"]))
    return lines

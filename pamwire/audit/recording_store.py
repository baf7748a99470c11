"""The SQL of session recordings and session summaries, used by AuditStore.

Recordings live in the table `recordings` of the audit store, one row per chunk:
the columns that searches need, and the rest (columns, rows, errors, notices) as
JSON. The table is added to a store in place the first time a pamwire that records
opens it for writing; a store without it simply has no recordings.

Recordings are sealed into the hash chain: every group of chunks stored together
yields, per session, a Seal (the chunks' sequence numbers and the sha256 of their
rows as stored, in sequence order), which the audit writer chains as a
`recording` mark. `pamwire log verify` recomputes each seal from the stored rows,
so an edited, deleted or added chunk shows.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import attrs

from pamwire.audit.recording import RecordingChunk

DDL = (
    """
    CREATE TABLE IF NOT EXISTS recordings (
        row_no INTEGER PRIMARY KEY,
        session TEXT NOT NULL,
        seq INTEGER NOT NULL,
        event_id TEXT,
        started REAL,
        finished REAL NOT NULL,
        status TEXT NOT NULL,
        row_count INTEGER NOT NULL,
        data TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS recordings_session ON recordings (session, seq)",
    "CREATE INDEX IF NOT EXISTS recordings_event ON recordings (event_id)",
)

_COLUMNS = (
    "session",
    "seq",
    "event_id",
    "started",
    "finished",
    "status",
    "row_count",
    "data",
)
INSERT = (
    f"INSERT INTO recordings ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
SELECT_SESSION = (
    f"SELECT {', '.join(_COLUMNS)} FROM recordings WHERE session = ? "
    "ORDER BY seq, row_no"
)


SELECT_SEQS = "SELECT session, seq FROM recordings ORDER BY session, seq"


class Seal(NamedTuple):
    """What a `recording` mark holds of the chunks of one session stored together."""

    session: str
    seqs: tuple[int, ...]
    digest: str

    def detail(self) -> str:
        """The mark's detail: "SESSION SEQS DIGEST", SEQS as ranges like 1-5,7."""
        return f"{self.session} {format_seqs(self.seqs)} {self.digest}"

    @classmethod
    def from_detail(cls, detail: str) -> Seal:
        """ValueError if detail is not a seal's."""
        session, seqs, digest = detail.split(" ")
        if len(digest) != 64:
            raise ValueError("seal digest is not a sha256")
        return cls(session, parse_seqs(seqs), digest)


def row_bytes(row: Sequence[object]) -> bytes:
    """The canonical bytes of a stored recording row (chunk_row's columns)."""
    return json.dumps(list(row), separators=(",", ":")).encode("ascii") + b"\n"


def digest_rows(rows: Iterable[Sequence[object]]) -> str:
    """sha256 of the rows' canonical bytes, in the order given."""
    hasher = hashlib.sha256()
    for row in rows:
        hasher.update(row_bytes(row))
    return hasher.hexdigest()


def seal_rows(rows: Sequence[Sequence[object]]) -> list[Seal]:
    """One seal per session of rows (chunk_row tuples), over its rows by seq."""
    by_session: dict[str, list[Sequence[object]]] = {}
    for row in rows:
        by_session.setdefault(str(row[0]), []).append(row)
    seals = []
    for session, group in by_session.items():
        group.sort(key=lambda row: int(row[1]))  # type: ignore[call-overload]
        seqs = tuple(int(row[1]) for row in group)  # type: ignore[call-overload]
        seals.append(Seal(session, seqs, digest_rows(group)))
    return seals


def format_seqs(seqs: Sequence[int]) -> str:
    """Sorted sequence numbers as comma-separated ranges: (1, 2, 3, 7) -> "1-3,7"."""
    parts = []
    for _, run in itertools.groupby(
        enumerate(sorted(seqs)), key=lambda pair: pair[1] - pair[0]
    ):
        numbers = [n for _, n in run]
        first, last = numbers[0], numbers[-1]
        parts.append(str(first) if first == last else f"{first}-{last}")
    return ",".join(parts)


def parse_seqs(text: str) -> tuple[int, ...]:
    """The inverse of format_seqs; ValueError on anything else."""
    seqs: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if high < low or high - low > 10_000_000:
            raise ValueError(f"bad sequence range {part!r}")
        seqs.extend(range(low, high + 1))
    return tuple(seqs)


def has_table(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?",
        ("recordings",),
    ).fetchone()
    return bool(row[0])


def ensure_table(conn: sqlite3.Connection) -> None:
    """Add the recordings table and its indexes if the store lacks them."""
    if has_table(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL:
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def chunk_row(chunk: RecordingChunk) -> tuple[object, ...]:
    # ASCII JSON: lone surrogates (undecodable bytes) survive as \udcXX escapes.
    data = json.dumps(chunk.to_data(), separators=(",", ":"))
    return (
        chunk.session,
        chunk.seq,
        chunk.event_id,
        chunk.started,
        chunk.finished,
        chunk.status,
        chunk.row_count,
        data,
    )


def chunk_from_row(row: Sequence[object]) -> RecordingChunk:
    session, seq, event_id, started, finished, status, row_count, data = row
    return RecordingChunk.from_data(
        json.loads(str(data)),
        session=str(session),
        seq=int(seq),  # type: ignore[call-overload]
        event_id=None if event_id is None else str(event_id),
        started=None if started is None else float(started),  # type: ignore[arg-type]
        finished=float(finished),  # type: ignore[arg-type]
        status=str(status),
        row_count=int(row_count),  # type: ignore[call-overload]
    )


@attrs.frozen
class SessionSummary:
    """One session as `pamwire session list` shows it."""

    session: str
    first: float
    last: float
    user: str | None
    target: str | None
    client_addr: str | None
    application: str | None
    db_account: str | None
    grant: str | None
    statements: int
    denied: int
    recorded: int
    ended: bool


def summary_query(
    *,
    user: str | None,
    target: str | None,
    since: float | None,
    until: float | None,
    limit: int,
    with_recordings: bool,
) -> tuple[str, list[object]]:
    """SQL and parameters listing sessions with an event in [since, until), the
    newest first; user and target must match the session's person and target."""
    where: list[str] = []
    params: list[object] = []
    if since is not None:
        where.append("time >= ?")
        params.append(since)
    if until is not None:
        where.append("time < ?")
        params.append(until)
    # Grant steps share the events table under a session of their own
    # ("grant-N"); only client sessions are listed.
    having: list[str] = ["max(kind IN ('session_start', 'statement')) = 1"]
    for column, value in (("user", user), ("target", target)):
        if value is not None:
            having.append(f'max("{column}") = ?')
            params.append(value)
    recorded = (
        "(SELECT count(*) FROM recordings r WHERE r.session = e.session)"
        if with_recordings
        else "0"
    )
    sql = (
        "SELECT session, min(time), max(time), max(user), max(target),"
        ' max(client_addr), max(application), max(db_account), max("grant"),'
        " sum(kind = 'statement'), sum(verdict = 'deny'),"
        f" {recorded}, max(kind = 'session_end')"
        " FROM events e"
    )
    if where:
        sql += (
            " WHERE session IN (SELECT session FROM events WHERE "
            + " AND ".join(where)
            + ")"
        )
    sql += " GROUP BY session"
    if having:
        sql += " HAVING " + " AND ".join(having)
    sql += " ORDER BY min(time) DESC LIMIT ?"
    params.append(limit)
    return sql, params


def summary_from_row(row: Sequence[object]) -> SessionSummary:
    values: list[object] = list(row)
    return SessionSummary(
        session=str(values[0]),
        first=float(values[1]),  # type: ignore[arg-type]
        last=float(values[2]),  # type: ignore[arg-type]
        user=_opt(values[3]),
        target=_opt(values[4]),
        client_addr=_opt(values[5]),
        application=_opt(values[6]),
        db_account=_opt(values[7]),
        grant=_opt(values[8]),
        statements=int(values[9] or 0),  # type: ignore[call-overload]
        denied=int(values[10] or 0),  # type: ignore[call-overload]
        recorded=int(values[11] or 0),  # type: ignore[call-overload]
        ended=bool(values[12]),
    )


def _opt(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)

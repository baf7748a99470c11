"""What the evidence bundle says, read from the grants file and the audit store.

Grants come from the grants file, opened read-only with sqlite3 (tables `grants`,
`approval` and `grant_event`, see pamwire/grants/store.py). Sessions, statements and
denials come from the audit store, streamed in time order: statements and denials are
handed to a sink one by one, so the period's size is bounded by the disk, not by
memory; only one summary per session is kept.
"""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Callable
from typing import Any

import attrs

from pamwire.audit.events import AuditRecord
from pamwire.audit.search import format_time
from pamwire.audit.store import AuditStore
from pamwire.errors import PamwireError

GRANT_FIELDS = (
    "id",
    "requester",
    "target",
    "role",
    "reason",
    "state",
    "requested_at",
    "approved_at",
    "expires_at",
    "ended_at",
    "ended_by",
    "account",
    "account_removed_at",
    "approvers",
    "request_to_approval_s",
    "end_to_removal_s",
)
SESSION_FIELDS = (
    "session",
    "user",
    "target",
    "start",
    "end",
    "client_addr",
    "application",
    "db_account",
    "grant",
    "statements",
    "denied",
)
STATEMENT_FIELDS = (
    "time",
    "event_id",
    "session",
    "user",
    "target",
    "grant",
    "db_account",
    "statement_kind",
    "statement",
    "tables_read",
    "tables_written",
    "verdict",
    "rule",
    "message",
    "outcome",
    "sqlstate",
    "rows",
    "duration_ms",
    "writer",
    "seq",
)

# How often the progress callback hears about events read.
PROGRESS_EVERY = 10_000


def _iso(value: float | None) -> str | None:
    return None if value is None else format_time(value)


def read_grants(
    path: pathlib.Path | None, start: float, end: float
) -> list[dict[str, Any]]:
    """Grants whose life overlaps [start, end): requested before `end`, and not
    ended (or expired, or their account removed) before `start`.

    A missing file means no grants. Raises PamwireError if the file cannot be read.
    """
    if path is None or not path.exists():
        return []
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise PamwireError(f"cannot open grants file {path}: {exc}") from exc
    try:
        return _grants(conn, start, end)
    except sqlite3.Error as exc:
        raise PamwireError(f"cannot read grants file {path}: {exc}") from exc
    finally:
        conn.close()


def _grants(conn: sqlite3.Connection, start: float, end: float) -> list[dict[str, Any]]:
    approvers: dict[int, list[str]] = {}
    for grant_id, approver, at in conn.execute(
        "SELECT grant_id, approver, at FROM approval ORDER BY at"
    ):
        approvers.setdefault(grant_id, []).append(f"{approver} at {format_time(at)}")
    removed: dict[int, float] = {}
    ended_by: dict[int, str] = {}
    for grant_id, at, actor, action in conn.execute(
        "SELECT grant_id, at, actor, action FROM grant_event ORDER BY id"
    ):
        if action == "account_removed":
            removed.setdefault(grant_id, at)
        elif action in ("denied", "expired", "revoked"):
            ended_by[grant_id] = actor

    out = []
    rows = conn.execute(
        "SELECT id, person, target, role, reason, state, requested_at, approved_at,"
        " expires_at, ended_at, account FROM grants WHERE requested_at < ?"
        " ORDER BY requested_at, id",
        (end,),
    )
    for row in rows:
        (gid, person, target, role, reason, state, requested, approved) = row[:8]
        expires, ended, account = row[8:]
        gone = removed.get(gid)
        last = max(v for v in (requested, approved, expires, ended, gone) if v)
        if state != "requested" and state != "approved" and last < start:
            continue
        # The moment access should have stopped: the deadline for an expired grant,
        # the decision for a revoked one.
        stop = expires if state == "expired" else ended
        out.append(
            {
                "id": gid,
                "requester": person,
                "target": target,
                "role": role,
                "reason": reason,
                "state": state,
                "requested_at": _iso(requested),
                "approved_at": _iso(approved),
                "expires_at": _iso(expires),
                "ended_at": _iso(ended),
                "ended_by": ended_by.get(gid),
                "account": account,
                "account_removed_at": _iso(gone),
                "approvers": approvers.get(gid, []),
                "request_to_approval_s": (
                    None if approved is None else round(approved - requested, 3)
                ),
                "end_to_removal_s": (
                    None
                    if gone is None or stop is None
                    else round(max(gone - stop, 0.0), 3)
                ),
            }
        )
    return out


def statement_row(record: AuditRecord) -> dict[str, Any]:
    """One statement event as a row of statements.csv and statements.json."""
    e = record.event
    return {
        "time": format_time(e.time),
        "event_id": e.event_id,
        "session": e.session,
        "user": e.user,
        "target": e.target,
        "grant": e.grant,
        "db_account": e.db_account,
        "statement_kind": e.statement_kind,
        "statement": e.statement,
        "tables_read": list(e.tables_read),
        "tables_written": list(e.tables_written),
        "verdict": e.verdict,
        "rule": e.rule,
        "message": e.message,
        "outcome": record.outcome,
        "sqlstate": record.sqlstate,
        "rows": record.rows,
        "duration_ms": record.duration_ms,
        "writer": record.writer,
        "seq": record.seq,
    }


@attrs.define
class Activity:
    """Sessions of the period and counts for the charts."""

    sessions: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    events: int = 0
    statements: int = 0
    denials: int = 0
    denials_by_rule: dict[str, int] = attrs.field(factory=dict)

    def sessions_per_person(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.sessions.values():
            person = s["user"] or "(unknown)"
            counts[person] = counts.get(person, 0) + 1
        return counts


def read_activity(
    store: AuditStore,
    start: float,
    end: float,
    *,
    on_statement: Callable[[dict[str, Any], bool], None],
    progress: Callable[[str], None],
) -> Activity:
    """Stream the period's events: each statement goes to on_statement(row, denied);
    sessions and counts are returned."""
    activity = Activity()
    for record in store.iter_records(since=start, until=end):
        activity.events += 1
        if activity.events % PROGRESS_EVERY == 0:
            progress(f"{activity.events} events read")
        e = record.event
        session = activity.sessions.get(e.session)
        if session is None:
            session = activity.sessions[e.session] = {
                "session": e.session,
                "user": None,
                "target": None,
                "start": format_time(e.time),
                "end": None,
                "client_addr": e.client_addr,
                "application": e.application,
                "db_account": None,
                "grant": None,
                "statements": 0,
                "denied": 0,
            }
        for key in ("user", "target", "db_account", "grant"):
            value = getattr(e, key)
            if value is not None:
                session[key] = value
        if e.kind == "session_end":
            session["end"] = format_time(e.time)
        if e.kind != "statement":
            continue
        denied = e.verdict == "deny"
        activity.statements += 1
        session["statements"] += 1
        if denied:
            activity.denials += 1
            session["denied"] += 1
            rule = e.rule or "(no rule)"
            activity.denials_by_rule[rule] = activity.denials_by_rule.get(rule, 0) + 1
        on_statement(statement_row(record), denied)
    return activity

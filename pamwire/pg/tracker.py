"""Pairs server replies with client requests, to give each statement its outcome.

Theory of operation: every frontend message that the server answers (Query, Parse,
Bind, Describe, Execute, Close, Sync, FunctionCall) pushes a slot on a FIFO in wire
order. Backend messages pop slots the way the server produces them: ParseComplete ends
a Parse, CommandComplete ends one statement of a Query or an Execute, ReadyForQuery
ends a Query, a FunctionCall or a Sync. An ErrorResponse in the extended protocol makes
the server discard everything up to the next Sync, so the slots up to that Sync are
popped as skipped. While the server is in copy-in mode it ignores Sync and Flush
(protocol docs, "COPY Operations"), so Syncs sent during copy-in are dropped from the
FIFO. The tracker only attributes outcomes; nothing about security depends on it.
"""

from __future__ import annotations

import collections
import enum
import time
from collections.abc import Callable, Sequence

import attrs

_ROW_COUNT_TAGS = frozenset(
    {"INSERT", "UPDATE", "DELETE", "SELECT", "MOVE", "FETCH", "COPY", "MERGE"}
)


QUERY_CANCELED = "57014"


class Op(enum.Enum):
    """Frontend messages the server answers, named as in the protocol."""

    QUERY = "Query"
    PARSE = "Parse"
    BIND = "Bind"
    DESCRIBE = "Describe"
    EXECUTE = "Execute"
    CLOSE = "Close"
    SYNC = "Sync"
    FUNCTION_CALL = "FunctionCall"
    COPY_END = "CopyDone"  # CopyDone or CopyFail: marks where copy-in ends


@attrs.define
class _Slot:
    op: Op
    events: collections.deque[str]
    started: float


@attrs.frozen
class Outcome:
    """How one audited statement ended on the server."""

    event_id: str
    outcome: str  # "ok" | "error" | "cancelled" | "skipped"
    duration_ms: float
    sqlstate: str | None = None
    rows: int | None = None


def rows_from_tag(tag: str) -> int | None:
    """The row count of a CommandComplete tag such as 'INSERT 0 3' or 'SELECT 5'."""
    parts = tag.split()
    if len(parts) >= 2 and parts[0] in _ROW_COUNT_TAGS and parts[-1].isdigit():
        return int(parts[-1])
    return None


class ExchangeTracker:
    """The FIFO of slots waiting for the server, for one session."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._slots: collections.deque[_Slot] = collections.deque()
        self._copy_in = False
        self.transaction_status = b"I"

    @property
    def in_copy(self) -> bool:
        """True while the server is in copy-in mode (it ignores Sync and Flush)."""
        return self._copy_in

    @property
    def busy(self) -> bool:
        """True while the server owes the client an answer."""
        return any(s.op is not Op.COPY_END for s in self._slots)

    def sent(self, op: Op, events: Sequence[str] = ()) -> None:
        """Record a frontend message forwarded to the server, in wire order."""
        if op is Op.SYNC and self._copy_in:
            return  # the server ignores Sync during copy-in
        if op is Op.COPY_END:
            self._copy_in = False
        self._slots.append(_Slot(op, collections.deque(events), self._clock()))

    # -- backend side ----------------------------------------------------------

    def command_complete(self, tag: str) -> list[Outcome]:
        """CommandComplete: one statement of a Query, or an Execute, finished."""
        return self._finish_one("ok", None, rows_from_tag(tag), end_execute=True)

    def empty_query(self) -> list[Outcome]:
        """EmptyQueryResponse ends a statement like CommandComplete does."""
        return self._finish_one("ok", None, None, end_execute=True)

    def portal_suspended(self) -> list[Outcome]:
        """PortalSuspended: an Execute stopped at its row limit."""
        return self._finish_one("ok", None, None, end_execute=True)

    def simple_reply(self, op: Op) -> None:
        """ParseComplete, BindComplete, CloseComplete, or the end of a Describe."""
        head = self._head()
        if head is not None and head.op is op:
            self._slots.popleft()

    def row_description(self) -> None:
        """RowDescription ends a Describe; in a Query or Execute it starts a result."""
        self.simple_reply(Op.DESCRIBE)

    def copy_in_response(self) -> None:
        """CopyInResponse: the server now ignores Syncs until CopyDone or CopyFail."""
        head = self._head()
        self._copy_in = True
        if head is None:
            return
        kept: list[_Slot] = []
        slots = list(self._slots)
        for i, slot in enumerate(slots[1:], start=1):
            if slot.op is Op.COPY_END:
                self._copy_in = False
                kept.extend(slots[i:])
                break
            if slot.op is not Op.SYNC:
                kept.append(slot)
        self._slots = collections.deque([slots[0], *kept])

    def error(self, sqlstate: str | None) -> list[Outcome]:
        """ErrorResponse: the current step failed; steps up to Sync are skipped."""
        head = self._head()
        if head is None:
            return []
        now = self._clock()
        out: list[Outcome] = []
        if head.op in (Op.QUERY, Op.FUNCTION_CALL):
            if head.events:
                eid = head.events.popleft()
                failed = _failure(sqlstate)
                out.append(Outcome(eid, failed, _ms(head.started, now), sqlstate))
            out.extend(self._skip(head, now))
            return out
        if head.op is Op.SYNC:
            return out
        # Extended protocol: the failing step and everything until Sync is discarded.
        # The error belongs to the first statement in that stretch (a failed Parse
        # or Bind is its Execute's failure); the others were skipped.
        first = True
        while self._slots and self._slots[0].op is not Op.SYNC:
            slot = self._slots.popleft()
            for eid in slot.events:
                if first:
                    failed = _failure(sqlstate)
                    out.append(Outcome(eid, failed, _ms(slot.started, now), sqlstate))
                    first = False
                else:
                    out.append(Outcome(eid, "skipped", _ms(slot.started, now)))
        return out

    def ready_for_query(self, status: bytes) -> list[Outcome]:
        """ReadyForQuery ends a Query, a FunctionCall or a Sync."""
        self.transaction_status = status
        self._copy_in = False
        head = self._head()
        out: list[Outcome] = []
        if head is None:
            return out
        now = self._clock()
        if head.op in (Op.QUERY, Op.SYNC, Op.FUNCTION_CALL):
            self._slots.popleft()
            out.extend(self._skip(head, now))
        return out

    # -- internals ---------------------------------------------------------------

    def _head(self) -> _Slot | None:
        while self._slots and self._slots[0].op is Op.COPY_END:
            self._slots.popleft()
        return self._slots[0] if self._slots else None

    def _finish_one(
        self, outcome: str, sqlstate: str | None, rows: int | None, *, end_execute: bool
    ) -> list[Outcome]:
        head = self._head()
        if head is None:
            return []
        now = self._clock()
        result: list[Outcome] = []
        if head.events:
            eid = head.events.popleft()
            result.append(Outcome(eid, outcome, _ms(head.started, now), sqlstate, rows))
        if head.op is Op.QUERY:
            head.started = now  # the next statement of the Query starts now
        elif head.op is Op.EXECUTE and end_execute:
            self._slots.popleft()
        return result

    @staticmethod
    def _skip(slot: _Slot, now: float) -> list[Outcome]:
        out = [Outcome(eid, "skipped", _ms(slot.started, now)) for eid in slot.events]
        slot.events.clear()
        return out


def _failure(sqlstate: str | None) -> str:
    # 57014 query_canceled: a cancel request or statement_timeout stopped it.
    return "cancelled" if sqlstate == QUERY_CANCELED else "error"


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000.0, 3)

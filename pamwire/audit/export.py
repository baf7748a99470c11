"""`pamwire log export`: the audit trail as JSON lines for a SIEM, once or following.

Every event and every completion becomes one JSON object per line, with its place
in the hash chain (`writer`, `seq`, `hash`), so the receiving side can keep its own
copy checkable. Lines come in chain order: by writer in the order the writers
started, then by sequence number. With --follow the store is polled for records
inserted since the last poll; nothing is printed twice and nothing is skipped,
because the cursor is the store's insert order.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time
from collections.abc import Callable
from typing import TextIO

from pamwire.audit.chain import Mark
from pamwire.audit.events import AuditRecord
from pamwire.audit.search import format_time, parse_time, record_to_json
from pamwire.audit.store import AuditStore
from pamwire.errors import PamwireError

# Records read per query: large enough that a catch-up is a few hundred queries per
# million events, small enough that a batch's memory stays a few megabytes.
BATCH = 2000
DEFAULT_INTERVAL = 0.5


def event_line(record: AuditRecord, digest: str | None) -> dict[str, object]:
    """One event as an export object: "record": "event", the search JSON fields,
    and its chain hash."""
    return {"record": "event", **record_to_json(record), "hash": digest}


def completion_line(mark: Mark) -> dict[str, object]:
    """One completion mark as an export object: "record": "completion"."""
    return {
        "record": "completion",
        "time": format_time(mark.time),
        "event_id": mark.event_id,
        "duration_ms": mark.duration_ms,
        "outcome": mark.outcome,
        "sqlstate": mark.sqlstate,
        "rows": mark.rows,
        "writer": mark.writer,
        "seq": mark.seq,
        "hash": mark.hash,
    }


def _time(value: str) -> float:
    try:
        return parse_time(value)
    except PamwireError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `pamwire log export` to parser."""
    parser.add_argument(
        "--format", choices=("jsonl",), default="jsonl", help="one JSON object a line"
    )
    parser.add_argument(
        "--since", type=_time, metavar="TIME", help="only records at or after TIME"
    )
    parser.add_argument(
        "--until", type=_time, metavar="TIME", help="only records before TIME"
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="keep watching the store and print new records until interrupted",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"seconds between polls with --follow (default {DEFAULT_INTERVAL})",
    )
    # For tests: stop following after this many polls.
    parser.add_argument("--max-polls", type=int, default=None, help=argparse.SUPPRESS)


def run_export(
    args: argparse.Namespace,
    store_path: pathlib.Path,
    out: TextIO,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the trail in store_path to out; returns the exit status (0).

    Raises AuditError when the store cannot be opened or read, PamwireError for
    --since after --until or a non-positive --interval. A closed pipe ends the
    export quietly.
    """
    since = -math.inf if args.since is None else args.since
    until = math.inf if args.until is None else args.until
    if since > until:
        raise PamwireError(f"--since {format_time(since)} is after --until")
    if args.interval <= 0:
        raise PamwireError(f"invalid interval {args.interval}: use seconds > 0")
    store = AuditStore(store_path, read_only=True)
    try:
        _export(store, args, since, until, out, sleep)
    except BrokenPipeError:
        pass
    finally:
        store.close()
    return 0


# TODO(export-resume): a SIEM that restarts the exporter starts from the beginning;
# printing the cursor (event and mark row numbers) and accepting it back would let it
# resume.
def _export(
    store: AuditStore,
    args: argparse.Namespace,
    since: float,
    until: float,
    out: TextIO,
    sleep: Callable[[float], None],
) -> None:
    event_row = mark_row = 0
    polls = 0
    events_behind = False
    while True:
        # Completions are read before events: a completion's event was committed
        # no later than the completion, so it is in the events read that follows.
        skipped_marks = events_behind
        marks = [] if skipped_marks else store.completions_after(mark_row, BATCH)
        events = store.events_after(event_row, BATCH)
        events_behind = len(events) == BATCH
        if events_behind:
            marks = []  # read again once the events have caught up
            skipped_marks = True
        order = store.writer_order()
        lines: list[tuple[tuple[float, str, int], dict[str, object]]] = []
        for row, record, digest in events:
            event_row = row
            if since <= record.event.time < until:
                key = _place(order, record.writer or "", record.seq or 0)
                lines.append((key, event_line(record, digest)))
        for row, mark in marks:
            mark_row = row
            if since <= mark.time < until:
                lines.append(
                    (_place(order, mark.writer, mark.seq), completion_line(mark))
                )
        lines.sort(key=lambda item: item[0])
        for _, line in lines:
            out.write(json.dumps(line) + "\n")
        out.flush()

        if skipped_marks or len(marks) == BATCH:
            continue  # more is waiting: no pause
        if not args.follow:
            return
        polls += 1
        if args.max_polls is not None and polls >= args.max_polls:
            return
        sleep(args.interval)


def _place(order: dict[str, int], writer: str, seq: int) -> tuple[float, str, int]:
    # A writer without a start mark (never expected) sorts after the known ones.
    return (order.get(writer, math.inf), writer, seq)

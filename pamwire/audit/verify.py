"""`pamwire log verify`: check the audit trail's hash chains, links and head file.

It recomputes every record's hash from its stored columns, and reports each
problem with the writer, sequence number and record it concerns. Records that are
still only in journal segments beside the store (a running pamwire copies them in
the background; a stopped one after a store failure copies them at its next start)
are read from there, checked the same way, and counted in the summary, so a store
that lags its journal is not mistaken for one with deleted records.
"""

from __future__ import annotations

import argparse
import heapq
import pathlib
from collections.abc import Iterator

from pamwire.audit import chain, journal
from pamwire.audit.chain import Chains, StoredRecord
from pamwire.audit.recording_store import Seal, digest_rows, format_seqs
from pamwire.audit.store import AuditError, AuditStore, UnreadableRow


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `pamwire log verify` to parser."""
    parser.add_argument(
        "--quiet", action="store_true", help="print only problems, not the summary"
    )


def run_verify(store_path: pathlib.Path) -> tuple[bool, list[str]]:
    """Verify the trail in the store at store_path: (ok, report lines).

    Never writes. A store that cannot be opened or read is reported as a problem
    (not ok) rather than raised.
    """
    try:
        store = AuditStore(store_path, read_only=True)
    except AuditError as exc:
        return False, [f"problem: {exc}"]
    try:
        problems, summary = verify_store(store)
    except AuditError as exc:
        return False, [f"problem: {exc}"]
    finally:
        store.close()
    lines = [f"problem: {p}" for p in problems] + summary
    lines.append("trail verified: no problems" if not problems else "trail FAILED")
    return not problems, lines


def verify_store(store: AuditStore) -> tuple[list[str], list[str]]:
    """Problems and summary lines for an open store."""
    # TODO(verify-memory): every record's hash and every event's completion columns
    # stay in memory (about 200 bytes a record); a trail of hundreds of millions of
    # events needs a check per writer that streams and keeps only the links it needs.
    completions: dict[str, chain.Mark] = {}
    seals: list[chain.Mark] = []
    links: list[tuple[str, str]] = []
    copies: dict[str, tuple[object, ...]] = {}
    counts = {"events": 0, "marks": 0}

    unreadable: list[str] = []

    def events() -> Iterator[StoredRecord]:
        for item, completion in store.chained_event_rows():
            counts["events"] += 1
            if isinstance(item, UnreadableRow):
                unreadable.append(item.describe())
                yield _placeholder(item)
                continue
            copies[item.event.event_id] = completion
            yield StoredRecord(
                item.writer,
                item.seq,
                chain.event_bytes(item.event, item.writer, item.seq),
                item.hash,
                f"event {item.event.event_id}",
            )

    def marks() -> Iterator[StoredRecord]:
        for mark in store.mark_rows():
            counts["marks"] += 1
            if isinstance(mark, UnreadableRow):
                unreadable.append(mark.describe())
                yield _placeholder(mark)
                continue
            label = f"{mark.kind} mark"
            if mark.kind == "completion" and mark.event_id:
                label += f" of event {mark.event_id}"
                completions[mark.event_id] = mark
            if mark.kind == "recording":
                seals.append(mark)
            if mark.kind == "start" and mark.detail:
                where = f"start of writer {mark.writer}"
                links.extend(
                    (w, where) for w in mark.detail.split() if w.count(":") == 2
                )
            yield StoredRecord(
                mark.writer, mark.seq, chain.mark_bytes(mark), mark.hash, label
            )

    pending, pending_completions = _journal_records(store.path)
    for mark in pending_completions:
        completions.setdefault(str(mark.event_id), mark)
    from_journal = [0]
    records = _unique(
        heapq.merge(events(), marks(), pending, key=lambda r: (r.writer, r.seq)),
        from_journal,
    )
    problems, chains = chain.check_chains(records)
    problems = unreadable + problems
    problems += _check_starts(chains)
    for link, where in links:
        problems += chain.check_link(chains, link, where)
    problems += _check_head(store.path, chains, counts["events"] + counts["marks"])
    # A completion only the journal holds reaches its event's row when it is
    # copied; until then the row's empty columns are not an edit.
    journal_only = {id(mark) for mark in pending_completions}
    for event_id, mark in completions.items():
        if id(mark) in journal_only:
            copies.pop(event_id, None)
    problems += _check_copies(copies, completions)
    sealed, unsealed, recording_problems = _check_recordings(store, seals)
    problems += recording_problems

    summary = [
        f"{counts['events']} events and {counts['marks']} marks "
        f"in {len(chains)} writer chains"
    ]
    if from_journal[0]:
        summary.append(
            f"{from_journal[0]} records read from journal segments, not yet in the "
            "store (pamwire copies them in the background or at its next start)"
        )
    if sealed or unsealed:
        summary.append(f"{sealed} recording chunks sealed in the chain")
    for session, count in sorted(unsealed.items()):
        summary.append(
            f"note: {count} recording chunks of session {session} carry no seal "
            "(stored just before pamwire stopped, or added to the store since)"
        )
    head = chain.read_head(store.path)
    if head:
        summary.append(f"head file checkpoint: {head}")
    return problems, summary


def _journal_records(
    store_path: pathlib.Path,
) -> tuple[list[StoredRecord], list[chain.Mark]]:
    """Every record of the journal segments beside the store, sorted by writer and
    seq, and their completion marks; unreadable segments are skipped (a running
    pamwire may delete one while it is read)."""
    records: list[StoredRecord] = []
    completions: list[chain.Mark] = []
    for _, path in journal.journal_segments(store_path):
        try:
            events, marks = journal.read_journal(path)
        except AuditError:
            continue
        for item in events:
            body = chain.event_bytes(item.event, item.writer, item.seq)
            label = f"event {item.event.event_id} (journal)"
            records.append(StoredRecord(item.writer, item.seq, body, item.hash, label))
        for mark in marks:
            label = f"{mark.kind} mark (journal)"
            body = chain.mark_bytes(mark)
            records.append(StoredRecord(mark.writer, mark.seq, body, mark.hash, label))
            if mark.kind == "completion" and mark.event_id:
                completions.append(mark)
    records.sort(key=lambda r: (r.writer, r.seq))
    return records, completions


def _unique(
    records: Iterator[StoredRecord], from_journal: list[int]
) -> Iterator[StoredRecord]:
    """Drop a journal record when the store has the same one (both are checked
    against the same hash chain, so the store's copy stands for both); counts
    the journal records kept in from_journal[0]."""
    last: tuple[str, int] | None = None
    for record in records:
        key = (record.writer, record.seq)
        journaled = record.label.endswith("(journal)")
        if key == last and journaled:
            continue
        last = key
        from_journal[0] += journaled
        yield record


def _placeholder(row: UnreadableRow) -> StoredRecord:
    """An unreadable row in its chain's place, so the records after it are still
    checked; its body is empty, so its own hash check fails too."""
    return StoredRecord(row.writer, row.seq, b"", row.hash, row.label)


def _check_starts(chains: Chains) -> list[str]:
    problems = []
    for writer, seen in sorted(chains.items()):
        first = seen.get(1)
        if first is not None and first.label != "start mark":
            problems.append(
                f"writer {writer} seq 1 ({first.label}) is not a start mark: "
                "the chain's first records were replaced"
            )
    return problems


def _check_head(path: pathlib.Path, chains: Chains, records: int) -> list[str]:
    try:
        head = chain.read_head(path)
    except OSError as exc:
        return [f"cannot read the head file: {exc}"]
    if head is None:
        if records:
            return [
                f"head file {chain.head_path(path).name} is missing: a truncation "
                "of the newest records cannot be ruled out"
            ]
        return []
    return chain.check_link(chains, head, "the head file")


def _check_copies(
    copies: dict[str, tuple[object, ...]], completions: dict[str, chain.Mark]
) -> list[str]:
    """Each event's completion columns must equal its last chained completion."""
    problems = []
    for event_id, columns in copies.items():
        mark = completions.get(event_id)
        expected = (
            (None, None, None, None)
            if mark is None
            else (mark.duration_ms, mark.outcome, mark.sqlstate, mark.rows)
        )
        if tuple(columns) != expected:
            where = "no completion mark" if mark is None else f"seq {mark.seq}"
            problems.append(
                f"event {event_id}: completion columns {tuple(columns)} differ from "
                f"its chained completion ({where}): edited"
            )
    return problems


def _check_recordings(
    store: AuditStore, seals: list[chain.Mark]
) -> tuple[int, dict[str, int], list[str]]:
    """Recompute every `recording` mark's seal from the stored chunks.

    Returns how many chunks the seals cover, the chunks per session no seal covers,
    and the problems: a chunk edited, deleted, or stored twice under one seq.
    """
    problems: list[str] = []
    covered: set[tuple[str, int]] = set()
    by_session: dict[str, list[tuple[chain.Mark, Seal]]] = {}
    for mark in seals:
        try:
            seal = Seal.from_detail(mark.detail or "")
        except ValueError:
            problems.append(f"writer {mark.writer} seq {mark.seq}: unreadable seal")
            continue
        by_session.setdefault(seal.session, []).append((mark, seal))
    for session, marked in sorted(by_session.items()):
        rows: dict[int, list[tuple[object, ...]]] = {}
        for row in store.recording_rows(session):
            rows.setdefault(int(row[1]), []).append(row)  # type: ignore[call-overload]
        for mark, seal in marked:
            where = (
                f"recording of session {session} "
                f"(seal at writer {mark.writer} seq {mark.seq})"
            )
            missing = [n for n in seal.seqs if n not in rows]
            doubled = [n for n in seal.seqs if len(rows.get(n, ())) > 1]
            if missing:
                problems.append(f"{where}: chunks {format_seqs(missing)} deleted")
            elif doubled:
                problems.append(f"{where}: chunks {format_seqs(doubled)} stored twice")
            elif digest_rows(rows[n][0] for n in seal.seqs) != seal.digest:
                problems.append(f"{where}: chunks {format_seqs(seal.seqs)} edited")
            covered.update((session, n) for n in seal.seqs)
    unsealed: dict[str, int] = {}
    for stored_session, seq in store.recording_seqs():
        name = str(stored_session)
        if (name, int(seq)) not in covered:  # type: ignore[call-overload]
            unsealed[name] = unsealed.get(name, 0) + 1
    return len(covered), unsealed, problems


def verify_command(store_path: pathlib.Path, *, quiet: bool = False) -> tuple[int, str]:
    """The exit status (0 verified, 1 not) and the report text to print."""
    ok, lines = run_verify(store_path)
    if quiet:
        lines = [line for line in lines if line.startswith("problem")]
    return (0 if ok else 1), "".join(line + "\n" for line in lines)

"""Tests of `log verify`: a clean trail passes, and each kind of tampering is named."""

from __future__ import annotations

import pathlib
import sqlite3
import threading
from typing import Any

import pytest
import trio

from pamwire.audit import chain, journal
from pamwire.audit.events import Completion
from pamwire.audit.search import SearchQuery
from pamwire.audit.store import AuditStore
from pamwire.audit.verify import run_verify, verify_command
from pamwire.server.audit_writer import AuditWriter
from pamwire.server.store_copier import StoreCopier
from tests.audit import make_event


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "audit.db"


async def _run_writer(path: pathlib.Path, statements: list[str]) -> list[str]:
    """A writer with a journal writes statements and completes each; event ids."""
    store = AuditStore(path)
    journal.recover(path, store)
    event_journal = journal.Journal(path, fsync_interval=None)
    writer = AuditWriter(store, journal=event_journal, completion_delay=0.001)
    ids: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for text in statements:
            event = make_event(statement=text, tables_read=["public.t"])
            await writer.write(event)
            writer.complete(Completion(event.event_id, 1.5, "ok", None, 1))
            ids.append(event.event_id)
        await writer.aclose()
    event_journal.close(discard=not writer.store_behind)
    store.close()
    return ids


def _db(path: pathlib.Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _problems(path: pathlib.Path) -> list[str]:
    ok, lines = run_verify(path)
    problems = [line for line in lines if line.startswith("problem")]
    assert ok == (not problems)
    return problems


async def test_verify_clean_trail_passes(path: pathlib.Path) -> None:
    await _run_writer(path, ["SELECT 1", "SELECT 2"])
    await _run_writer(path, ["SELECT 3"])
    ok, lines = run_verify(path)
    assert ok, lines
    assert lines[-1] == "trail verified: no problems"
    assert "3 events" in lines[0]
    assert verify_command(path)[0] == 0


async def test_verify_names_an_edited_event(path: pathlib.Path) -> None:
    ids = await _run_writer(path, ["SELECT 1", "SELECT 2", "SELECT 3"])
    with _db(path) as db:
        db.execute(
            "UPDATE events SET statement = 'SELECT 0' WHERE event_id = ?", (ids[1],)
        )
        (seq,) = db.execute(
            "SELECT seq FROM events WHERE event_id = ?", (ids[1],)
        ).fetchone()
    problems = _problems(path)
    assert len(problems) == 1
    assert f"seq {seq} (event {ids[1]})" in problems[0]
    assert "does not match its hash" in problems[0]
    assert verify_command(path, quiet=True) == (1, problems[0] + "\n")


async def test_verify_names_an_edit_whose_hash_was_recomputed(
    path: pathlib.Path,
) -> None:
    ids = await _run_writer(path, ["SELECT 1", "SELECT 2"])
    with _db(path) as db:
        db.execute("UPDATE events SET hash = ? WHERE event_id = ?", ("0" * 64, ids[0]))
    problems = _problems(path)
    # The edited record itself, and the next one, whose previous hash changed.
    assert any(f"event {ids[0]}" in p for p in problems)
    assert len(problems) == 2


async def test_verify_names_a_deleted_event(path: pathlib.Path) -> None:
    ids = await _run_writer(path, ["SELECT 1", "SELECT 2", "SELECT 3"])
    with _db(path) as db:
        (seq,) = db.execute(
            "SELECT seq FROM events WHERE event_id = ?", (ids[1],)
        ).fetchone()
        db.execute("DELETE FROM events WHERE event_id = ?", (ids[1],))
    (problem,) = _problems(path)
    assert f"seq {seq} missing" in problem
    assert "records deleted" in problem


async def test_verify_names_swapped_contents(path: pathlib.Path) -> None:
    ids = await _run_writer(path, ["SELECT 1", "SELECT 2"])
    with _db(path) as db:
        db.execute(
            "UPDATE events SET statement = CASE event_id WHEN ? THEN 'SELECT 2' "
            "ELSE 'SELECT 1' END WHERE event_id IN (?, ?)",
            (ids[0], *ids),
        )
    problems = _problems(path)
    assert len(problems) == 2
    assert all(any(i in p for p in problems) for i in ids)


async def test_verify_names_reordered_events(path: pathlib.Path) -> None:
    ids = await _run_writer(path, ["SELECT 1", "SELECT 2"])
    with _db(path) as db:
        seqs = [
            db.execute("SELECT seq FROM events WHERE event_id = ?", (i,)).fetchone()[0]
            for i in ids
        ]
        db.execute("UPDATE events SET seq = -seq WHERE event_id IN (?, ?)", ids)
        db.execute("UPDATE events SET seq = ? WHERE event_id = ?", (seqs[1], ids[0]))
        db.execute("UPDATE events SET seq = ? WHERE event_id = ?", (seqs[0], ids[1]))
    problems = _problems(path)
    assert problems
    assert any(ids[0] in p for p in problems) and any(ids[1] in p for p in problems)


async def test_verify_names_an_edited_completion(path: pathlib.Path) -> None:
    ids = await _run_writer(path, ["SELECT 1"])
    with _db(path) as db:
        db.execute("UPDATE events SET outcome = 'error' WHERE event_id = ?", ids)
    (problem,) = _problems(path)
    assert f"event {ids[0]}: completion columns" in problem


async def test_verify_notices_a_truncated_tail_through_the_head_file(
    path: pathlib.Path,
) -> None:
    await _run_writer(path, ["SELECT 1", "SELECT 2", "SELECT 3"])
    with _db(path) as db:
        (writer, newest) = db.execute(
            "SELECT writer, max(seq) FROM marks"
            " GROUP BY writer ORDER BY max(row_no) DESC"
        ).fetchone()
        cut = newest - 4
        db.execute("DELETE FROM events WHERE writer = ? AND seq > ?", (writer, cut))
        db.execute("DELETE FROM marks WHERE writer = ? AND seq > ?", (writer, cut))
    problems = _problems(path)
    head = f"problem: the head file names writer {writer} seq {newest}"
    (problem,) = [p for p in problems if p.startswith(head)]
    assert f"ends at seq {cut}" in problem


async def test_verify_notices_a_truncation_made_while_pamwire_was_down(
    path: pathlib.Path,
) -> None:
    await _run_writer(path, ["SELECT 1", "SELECT 2"])
    with _db(path) as db:
        (writer, newest) = db.execute(
            "SELECT writer, max(seq) FROM marks GROUP BY writer"
        ).fetchone()
        db.execute("DELETE FROM marks WHERE writer = ? AND seq = ?", (writer, newest))
    # The next start finds the head file ahead of the store and keeps that in its
    # start mark, so the next head file does not hide the cut.
    await _run_writer(path, ["SELECT 3"])
    problems = _problems(path)
    assert any(f"names writer {writer} seq {newest}" in p for p in problems)


async def test_verify_notices_a_deleted_older_chain(path: pathlib.Path) -> None:
    await _run_writer(path, ["SELECT 1"])
    with _db(path) as db:
        (writer,) = db.execute("SELECT writer FROM marks LIMIT 1").fetchone()
    await _run_writer(path, ["SELECT 2"])
    with _db(path) as db:
        db.execute("DELETE FROM events WHERE writer = ?", (writer,))
        db.execute("DELETE FROM marks WHERE writer = ?", (writer,))
    problems = _problems(path)
    assert any("start of writer" in p and writer in p for p in problems)


async def test_verify_notices_a_missing_head_file(path: pathlib.Path) -> None:
    await _run_writer(path, ["SELECT 1"])
    chain.head_path(path).unlink()
    (problem,) = _problems(path)
    assert "head file" in problem and "missing" in problem


async def test_verify_after_a_crash_and_recovery_passes(path: pathlib.Path) -> None:
    # A writer whose copy to the store never ran (as after kill -9): its records
    # are only in the journal, the last line torn in the middle of a write.
    store = AuditStore(path)
    event_journal = journal.Journal(path, fsync_interval=None)
    writer = AuditWriter(store, journal=event_journal)
    for text in ["SELECT 1", "SELECT 2"]:
        await writer.write(make_event(statement=text))
    event_journal.append(b'0123 ["event", "torn')
    event_journal.close()
    store.close()

    await _run_writer(path, ["SELECT 3"])
    ok, lines = run_verify(path)
    assert ok, lines
    assert "3 events" in lines[0]


def test_verify_reports_a_missing_store(tmp_path: pathlib.Path) -> None:
    ok, lines = run_verify(tmp_path / "none.db")
    assert not ok
    assert lines[0].startswith("problem: cannot open audit store")


def test_verify_of_a_store_used_directly_passes(path: pathlib.Path) -> None:
    store = AuditStore(path)
    events = [make_event(), make_event()]
    store.append(events)
    store.complete([Completion(events[0].event_id, 2.0, "ok", None, 3)])
    store.close()
    ok, lines = run_verify(path)
    assert ok, lines


def test_verify_of_a_migrated_version_1_store_passes(path: pathlib.Path) -> None:
    _make_version_1(path)
    store = AuditStore(path)
    (first, second) = store.search(SearchQuery())
    store.close()
    assert (first.event.statement, first.outcome, first.rows) == ("SELECT 1", "ok", 1)
    assert (first.event.schema, first.event.tables_read) == (1, ())
    assert (second.event.detail, second.seq) == ("bye", 4)  # 3: a completion
    ok, lines = run_verify(path)
    assert ok, lines
    assert "2 events" in lines[0]


def _make_version_1(path: pathlib.Path) -> None:
    with _db(path) as db:
        db.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY,"
            " event_id TEXT NOT NULL UNIQUE,"
            " time REAL NOT NULL, kind TEXT NOT NULL, session TEXT NOT NULL, user TEXT,"
            " target TEXT, client_addr TEXT, application TEXT, statement TEXT,"
            " verdict TEXT, rule TEXT, message TEXT, statement_kind TEXT,"
            " fingerprint TEXT, operation TEXT, detail TEXT, duration_ms REAL,"
            " outcome TEXT, sqlstate TEXT, rows INTEGER)"
        )
        db.execute("CREATE INDEX events_time ON events (time)")
        db.execute(
            "INSERT INTO events (event_id, time, kind, session, statement, verdict,"
            " duration_ms, outcome, rows) VALUES ('a1', 1796378400, 'statement', 's',"
            " 'SELECT 1', 'allow', 1.0, 'ok', 1)"
        )
        db.execute(
            "INSERT INTO events (event_id, time, kind, session, detail) VALUES"
            " ('a2', 1796378401.5, 'session_end', 's', 'bye')"
        )
        db.execute("PRAGMA user_version = 1")


@pytest.mark.parametrize("table", ["events", "marks"])
async def test_verify_time_edited_to_text_is_a_problem(
    path: pathlib.Path, table: str
) -> None:
    ids = await _run_writer(path, ["SELECT 1", "SELECT 2"])
    db = _db(path)
    try:
        if table == "events":
            db.execute("UPDATE events SET time = 'noon' WHERE event_id = ?", (ids[0],))
        else:
            db.execute("UPDATE marks SET time = 'noon' WHERE kind = 'completion'")
    finally:
        db.close()
    status, text = verify_command(path)
    assert status == 1
    assert "Traceback" not in text
    unreadable = [line for line in text.splitlines() if "unreadable row" in line]
    assert unreadable, text
    assert "seq" in unreadable[0] and "writer" in unreadable[0]
    if table == "events":
        assert f"event {ids[0]}" in unreadable[0]
    assert "trail FAILED" in text


def test_write_head_from_many_threads_at_once_leaves_one_whole_head(
    tmp_path: pathlib.Path,
) -> None:
    # The proxy's store copier and CLI commands write the head concurrently.
    store_path = tmp_path / "audit.db"
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(50):
                chain.write_head(store_path, f"w{n}", i, "ab" * 32)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    head = chain.read_head(store_path)
    assert head is not None and chain.parse_link(head)[2] == "ab" * 32
    assert [p.name for p in tmp_path.iterdir()] == ["audit.db.head"]


def _chunk(session: str, seq: int, rows: tuple[tuple[str | None, ...], ...]) -> Any:
    from pamwire.audit.recording import RecordingChunk

    return RecordingChunk(
        session=session,
        seq=seq,
        event_id=f"{session}-{seq}",
        statement=f"SELECT {seq}",
        started=1.25 * seq,
        finished=1.5 * seq,
        status="ok",
        columns=("v",),
        column_types=(25,),
        rows=rows,
        row_count=len(rows),
        tag=f"SELECT {len(rows)}",
    )


@pytest.mark.parametrize("with_copier", [False, True], ids=["thread", "copier"])
async def test_verify_recordings_are_sealed_in_the_chain(
    path: pathlib.Path, with_copier: bool
) -> None:
    store = AuditStore(path)
    event_journal = journal.Journal(path, fsync_interval=None)
    copier = StoreCopier(path) if with_copier else None
    writer = AuditWriter(
        store, journal=event_journal, copier=copier, completion_delay=0.001
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for seq in (1, 2, 3):
            await writer.write(make_event(session="sa"))
            writer.record([_chunk("sa", seq, (("secret-row",),))])
            writer.record([_chunk("sb", seq, (("other",),))])
            await trio.sleep(0.1)
        await writer.aclose()
    if copier is not None:
        await copier.aclose()
    event_journal.close(discard=not writer.store_behind)
    store.close()
    ok, lines = run_verify(path)
    assert ok, lines
    assert "6 recording chunks sealed in the chain" in lines
    assert not [line for line in lines if line.startswith("note")]


async def _sealed_store(path: pathlib.Path) -> None:
    store = AuditStore(path)
    event_journal = journal.Journal(path, fsync_interval=None)
    writer = AuditWriter(store, journal=event_journal)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.write(make_event(session="sa"))
        writer.record([_chunk("sa", n, (("row",),)) for n in (1, 2, 3)])
        await trio.sleep(0.1)
        await writer.aclose()
    event_journal.close(discard=True)
    store.close()


async def test_verify_names_an_edited_recording(path: pathlib.Path) -> None:
    await _sealed_store(path)
    with _db(path) as db:
        db.execute(
            "UPDATE recordings SET data = replace(data, 'row', 'forged') WHERE seq = 2"
        )
    (problem,) = _problems(path)
    assert "recording of session sa" in problem and "chunks 1-3 edited" in problem


async def test_verify_names_a_deleted_recording_chunk(path: pathlib.Path) -> None:
    await _sealed_store(path)
    with _db(path) as db:
        db.execute("DELETE FROM recordings WHERE seq = 3")
    (problem,) = _problems(path)
    assert "chunks 3 deleted" in problem


async def test_verify_notes_a_recording_chunk_added_later(path: pathlib.Path) -> None:
    await _sealed_store(path)
    with _db(path) as db:
        db.execute(
            "INSERT INTO recordings (session, seq, event_id, started, finished, "
            "status, row_count, data) SELECT session, 4, event_id, started, "
            "finished, status, row_count, data FROM recordings WHERE seq = 1"
        )
    ok, lines = run_verify(path)
    assert ok
    assert any(
        line.startswith("note: 1 recording chunks of session sa carry no seal")
        for line in lines
    )


async def test_verify_names_a_duplicated_recording_chunk(path: pathlib.Path) -> None:
    await _sealed_store(path)
    with _db(path) as db:
        db.execute(
            "INSERT INTO recordings (session, seq, event_id, started, finished, "
            "status, row_count, data) SELECT session, seq, event_id, started, "
            "finished, status, row_count, data FROM recordings WHERE seq = 2"
        )
    (problem,) = _problems(path)
    assert "chunks 2 stored twice" in problem


def test_recording_seqs_format_and_parse_round_trip() -> None:
    from pamwire.audit.recording_store import Seal, format_seqs, parse_seqs

    assert format_seqs((7, 1, 2, 3, 9, 10)) == "1-3,7,9-10"
    assert parse_seqs("1-3,7,9-10") == (1, 2, 3, 7, 9, 10)
    seal = Seal("s", (1, 2, 5), "ab" * 32)
    assert Seal.from_detail(seal.detail()) == seal
    for bad in ("x", "3-1", "1-99999999999"):
        with pytest.raises(ValueError):
            parse_seqs(bad)


async def test_verify_reads_records_still_in_the_journal(path: pathlib.Path) -> None:
    # The store failed behind its journal (a dead copier): nothing is deleted.
    from pamwire.audit.chain import Chain

    chain_ = Chain("w1")
    store = AuditStore(path)
    start_line, start = chain_.add_mark("start", 1.0)
    early = make_event()
    early_data, early_chained = chain_.add_events([early])
    store.append_records(early_chained, [start])
    late_data, _ = chain_.add_events([make_event()])
    done_data, _ = chain_.add_completions(
        [Completion(early.event_id, 1.0, "ok", None, 1)], 2.0
    )
    checkpoint_line, checkpoint = chain_.add_mark("checkpoint", 3.0)
    journal.segment_path(path, 1).write_bytes(
        start_line + early_data + late_data + done_data + checkpoint_line
    )
    chain.write_head(path, "w1", checkpoint.seq, checkpoint.hash)
    store.close()
    ok, lines = run_verify(path)
    assert ok, lines
    assert any("3 records read from journal segments" in line for line in lines)
    # Once recovered, the same trail verifies from the store alone.
    store = AuditStore(path)
    journal.recover(path, store)
    store.close()
    ok, lines = run_verify(path)
    assert ok and not any("journal segments" in line for line in lines), lines

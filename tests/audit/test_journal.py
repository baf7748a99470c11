"""Tests of the audit journal: chained lines, grouped fsync, strict mode, recovery."""

from __future__ import annotations

import os
import pathlib

import pytest
import trio

from pamwire.audit import journal
from pamwire.audit.chain import Chain, ChainedEvent, Mark
from pamwire.audit.events import Completion
from pamwire.audit.search import SearchQuery
from pamwire.audit.store import AuditStore, AuditWriteError
from pamwire.server.audit_writer import AuditWriter
from tests.audit import make_event


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "audit.db"


async def test_journal_lines_read_back_as_chained_records(path: pathlib.Path) -> None:
    store = AuditStore(path)
    event_journal = journal.Journal(path, fsync_interval=None)
    writer = AuditWriter(store, journal=event_journal, writer_id="w1")
    event = make_event(tables_written=["b", "a"], params=["1", None])
    await writer.write(event)
    event_journal.close()
    store.close()

    ((_, segment),) = journal.journal_segments(path)
    events, marks = journal.read_journal(segment)
    assert [m.kind for m in marks] == ["start", "checkpoint"]
    assert events == [ChainedEvent(event, "w1", 3, events[0].hash)]
    assert events[0].event.tables_written == ("a", "b")
    assert all(isinstance(m, Mark) and m.writer == "w1" for m in marks)


async def test_journal_default_write_does_not_wait_for_fsync(
    path: pathlib.Path,
) -> None:
    store = AuditStore(path)
    event_journal = journal.Journal(path, fsync_interval=60)
    writer = AuditWriter(store, journal=event_journal)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.write(make_event())
        assert event_journal.synced < event_journal.position
        await writer.aclose()
    event_journal.close()  # the last fsync happens on close
    assert event_journal.synced == event_journal.position
    store.close()


async def test_journal_strict_write_returns_after_its_fsync(path: pathlib.Path) -> None:
    store = AuditStore(path)
    event_journal = journal.Journal(path, fsync_interval=60)
    writer = AuditWriter(store, journal=event_journal, strict=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        with trio.fail_after(5):
            await writer.write(make_event())
            position = event_journal.position
            await writer.write_all([make_event(), make_event()])
        assert event_journal.synced >= position
        await writer.aclose()
    event_journal.close()
    store.close()


async def test_journal_strict_write_fails_when_fsync_fails(
    path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AuditStore(path)
    event_journal = journal.Journal(path, fsync_interval=60)
    writer = AuditWriter(store, journal=event_journal, strict=True)

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        monkeypatch.setattr(os, "fsync", broken_fsync)
        with trio.fail_after(5), pytest.raises(AuditWriteError, match="fsync"):
            await writer.write(make_event())
        monkeypatch.undo()
        await writer.aclose()
    event_journal.close()
    store.close()


def test_journal_strict_needs_a_journal(path: pathlib.Path) -> None:
    store = AuditStore(path)
    with pytest.raises(ValueError, match="strict"):
        AuditWriter(store, strict=True)
    store.close()


async def test_journal_recovery_is_idempotent(path: pathlib.Path) -> None:
    store = AuditStore(path)
    event_journal = journal.Journal(path, fsync_interval=None)
    writer = AuditWriter(store, journal=event_journal)
    events = [make_event(), make_event()]
    await writer.write_all(events)
    event_journal.close()
    # Copy part of it by hand first, as a batch would have before the crash.
    ((_, segment),) = journal.journal_segments(path)
    chained, marks = journal.read_journal(segment)
    store.append_records(chained[:1], marks[:1])

    assert journal.recover(path, store) == 2  # of two events and two marks
    assert journal.journal_segments(path) == []
    found = [r.event for r in store.search(SearchQuery())]
    assert found == events
    store.close()


def test_journal_refuses_a_corrupt_middle_line(path: pathlib.Path) -> None:
    segment = journal.segment_path(path, 1)
    segment.write_bytes(b"not a record\n" + b"x" * 70 + b"\n")
    store = AuditStore(path)
    with pytest.raises(Exception, match="bad audit journal line"):
        journal.recover(path, store)
    store.close()


def test_recovery_completes_an_event_the_store_already_had(
    tmp_path: pathlib.Path,
) -> None:
    # The event's group reached the store, the group with its completion did not;
    # the journal holds both, and recovery must still fill the event's row.
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    chain = Chain("w1")
    event = make_event()
    _, chained = chain.add_events([event])
    store.append_records(chained, [])
    _, marks = chain.add_completions(
        [Completion(event.event_id, 2.5, "ok", None, 3)], 1.0
    )
    assert store.append_missing(chained, marks) >= 1
    (record,) = store.search(SearchQuery())
    assert (record.duration_ms, record.outcome, record.rows) == (2.5, "ok", 3)
    store.close()


async def test_journal_failure_leaves_no_gap_in_the_chain(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk: appends fail for a while, then work again. Whatever was not
    # journaled must not hold a sequence number, or `log verify` sees deletions.
    from pamwire.audit.verify import run_verify

    path = tmp_path / "audit.db"
    store = AuditStore(path)
    event_journal = journal.Journal(path, fsync_interval=None)
    writer = AuditWriter(store, journal=event_journal, completion_delay=0.01)
    real_append = event_journal.append
    failing = {"on": False}

    def append(data: bytes, *, urgent: bool = False) -> int:
        if failing["on"]:
            raise AuditWriteError("no space left on device")
        return real_append(data, urgent=urgent)

    real_records = store.append_records

    def append_records(events: list[ChainedEvent], marks: list[Mark]) -> None:
        if failing["on"]:  # the store is on the same full disk
            raise AuditWriteError("database or disk is full")
        real_records(events, marks)

    monkeypatch.setattr(event_journal, "append", append)
    monkeypatch.setattr(store, "append_records", append_records)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        first = make_event()
        await writer.write(first)
        failing["on"] = True
        writer.complete(Completion(first.event_id, 1.0, "ok", None, 1))
        with pytest.raises(AuditWriteError):
            await writer.write(make_event())
        writer.write_nowait(make_event(kind="session_end", statement=None))
        await trio.sleep(0.3)  # groups are taken and fail to journal
        failing["on"] = False
        await writer.write(make_event())
        await trio.sleep(0.3)
        await writer.aclose()
    event_journal.close(discard=writer.all_in_store)
    journal.recover(path, store)
    store.close()
    ok, lines = run_verify(path)
    assert ok, lines
    records = AuditStore(path, read_only=True).search(SearchQuery())
    assert {r.event.kind for r in records} == {"statement", "session_end"}
    assert [r.outcome for r in records if r.event.event_id == first.event_id] == ["ok"]


async def test_journal_failures_are_reported_sparingly(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A full disk fails every group; the operational log must not flood.
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    event_journal = journal.Journal(path, fsync_interval=None)
    writer = AuditWriter(store, journal=event_journal, completion_delay=0.01)
    real_append = event_journal.append
    failing = {"on": False}

    def append(data: bytes, *, urgent: bool = False) -> int:
        if failing["on"]:
            raise AuditWriteError("no space left on device")
        return real_append(data, urgent=urgent)

    monkeypatch.setattr(event_journal, "append", append)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        event = make_event()
        await writer.write(event)
        failing["on"] = True
        writer.complete(Completion(event.event_id, 1.0, "ok", None, 1))
        await trio.sleep(0.5)  # dozens of retries
        failing["on"] = False
        await writer.aclose()
    event_journal.close(discard=writer.all_in_store)
    store.close()
    reports = [r for r in caplog.records if "not journaled" in r.getMessage()]
    assert len(reports) == 1

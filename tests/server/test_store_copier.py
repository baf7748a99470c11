"""Tests of the proxy's end of the store copier, with a real child process."""

from __future__ import annotations

import os
import pathlib
import signal

import pytest
import trio

from pamwire.audit import journal
from pamwire.audit.chain import Chain
from pamwire.audit.events import Completion
from pamwire.audit.search import SearchQuery
from pamwire.audit.store import AuditStore, AuditWriteError
from pamwire.audit.verify import run_verify
from pamwire.server.audit_writer import AuditWriter
from pamwire.server.store_copier import StoreCopier
from tests.audit import make_event


def _count(path: pathlib.Path) -> int:
    store = AuditStore(path, read_only=True)
    try:
        return len(store.search(SearchQuery()))
    finally:
        store.close()


async def test_store_copier_commits_in_the_child(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "audit.db"
    AuditStore(path).close()
    copier = StoreCopier(path)
    data, _ = Chain("w1").add_events([make_event(), make_event()])
    await copier.copy_records(data)
    assert copier.pid is not None and copier.pid != os.getpid()
    assert _count(path) == 2
    await copier.aclose()
    assert copier.pid is None


async def test_store_copier_reports_a_refused_frame(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "audit.db"
    AuditStore(path).close()
    copier = StoreCopier(path)
    with pytest.raises(AuditWriteError, match="bad record line 1"):
        await copier.copy_records(b"garbage\n")
    data, _ = Chain("w1").add_events([make_event()])
    await copier.copy_records(data)
    assert _count(path) == 1
    await copier.aclose()


async def test_store_copier_replaces_a_dead_child(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "audit.db"
    AuditStore(path).close()
    copier = StoreCopier(path)
    await copier.start()
    first = copier.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    chain = Chain("w1")
    data, _ = chain.add_events([make_event()])
    with pytest.raises(AuditWriteError, match="copier exited"):
        await copier.copy_records(data)
    assert copier.pid is None
    await copier.copy_records(data)
    assert copier.pid not in (None, first)
    assert _count(path) == 1
    await copier.aclose()


async def test_store_copier_child_outlives_sigint_until_input_closes(
    tmp_path: pathlib.Path,
) -> None:
    # Ctrl+C reaches the whole process group; the last batch still gets copied.
    path = tmp_path / "audit.db"
    AuditStore(path).close()
    copier = StoreCopier(path)
    await copier.start()
    assert copier.pid is not None
    await trio.sleep(0.5)  # the child has set its signal handling by now
    os.kill(copier.pid, signal.SIGINT)
    data, _ = Chain("w1").add_events([make_event()])
    await copier.copy_records(data)
    assert _count(path) == 1
    await copier.aclose()


async def test_writer_with_copier_keeps_the_journal_when_the_child_fails(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    copier = StoreCopier(path)
    event_journal = journal.Journal(path, fsync_interval=None)
    writer = AuditWriter(store, journal=event_journal, copier=copier)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.write(make_event())
        with trio.fail_after(20):
            while _count(path) != 1:
                await trio.sleep(0.05)
        assert writer.all_in_store
        assert copier.pid is not None
        os.kill(copier.pid, signal.SIGKILL)
        await trio.sleep(0.1)
        await writer.write(make_event(statement="SELECT 2"))
        await writer.write(make_event(statement="SELECT 3"))
        await writer.aclose()
    await copier.aclose()
    # The batch the dead child did not take stays in the journal for recovery.
    assert not writer.all_in_store
    event_journal.close(discard=False)
    assert journal.recover(path, store) >= 2
    assert _count(path) == 3
    store.close()


async def test_writer_with_copier_keeps_the_journal_for_lost_completions(
    tmp_path: pathlib.Path,
) -> None:
    # A group of completions alone that the child fails to take is in the journal
    # only: the journal must be kept for recovery, or `log verify` sees a gap.
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    copier = StoreCopier(path)
    event_journal = journal.Journal(path, fsync_interval=None)
    writer = AuditWriter(
        store, journal=event_journal, copier=copier, completion_delay=0.05
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        event = make_event()
        await writer.write(event)
        with trio.fail_after(20):
            while _count(path) != 1:
                await trio.sleep(0.05)
        assert copier.pid is not None
        os.kill(copier.pid, signal.SIGKILL)
        await trio.sleep(0.2)
        writer.complete(Completion(event.event_id, 1.0, "ok", None, 1))
        with trio.fail_after(20):
            while not writer.store_behind:
                await trio.sleep(0.05)
        await writer.aclose()
    await copier.aclose()
    event_journal.close(discard=writer.all_in_store)
    journal.recover(path, store)
    store.close()
    ok, lines = run_verify(path)
    assert ok, lines

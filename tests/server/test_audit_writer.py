"""Tests of the trio audit writer: grouping, cancellation, failures and closing."""

from __future__ import annotations

import pathlib
import threading
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
import trio
import trio.testing

from pamwire.audit.chain import ChainedEvent, Mark
from pamwire.audit.events import AuditEvent, Completion
from pamwire.audit.search import SearchQuery
from pamwire.audit.store import AuditStore, AuditWriteError
from pamwire.server.audit_writer import AuditWriter
from tests.audit import make_event


class CountingStore(AuditStore):
    """The real store, noting the size of every group it is asked to commit.

    With hold() the next commits wait in their worker thread until release(), so a
    test can act while a batch is in flight. With fail(True) writes really fail:
    the connection is switched to query_only, and SQLite refuses them.
    """

    def __init__(self, path: pathlib.Path) -> None:
        super().__init__(path)
        self.batches: list[tuple[int, int]] = []
        self.entered = threading.Event()
        self._gate = threading.Event()
        self._gate.set()

    def append_records(
        self, events: Sequence[ChainedEvent], marks: Sequence[Mark] = ()
    ) -> None:
        completions = sum(mark.kind == "completion" for mark in marks)
        self.batches.append((len(events), completions))
        self.entered.set()
        assert self._gate.wait(timeout=10), "test never released the store"
        super().append_records(events, marks)

    def hold(self) -> None:
        self.entered.clear()
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def wait_entered(self) -> None:
        await trio.to_thread.run_sync(self.entered.wait, 10)

    def fail(self, failing: bool) -> None:
        assert self._conn is not None
        self._conn.execute(f"PRAGMA query_only = {int(failing)}")

    def event_ids(self) -> list[str]:
        return [record.event.event_id for record in self.search(SearchQuery())]


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[CountingStore]:
    store = CountingStore(tmp_path / "audit.db")
    yield store
    store.release()
    store.close()


@pytest.fixture
async def writer(store: CountingStore) -> AsyncIterator[AuditWriter]:
    writer = AuditWriter(store, completion_delay=0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        yield writer
        await writer.aclose()


async def test_writer_write_returns_after_commit(
    writer: AuditWriter, store: CountingStore
) -> None:
    event = make_event()
    await writer.write(event)
    assert store.event_ids() == [event.event_id]


async def test_writer_groups_concurrent_writes(
    writer: AuditWriter, store: CountingStore
) -> None:
    events = [make_event() for _ in range(300)]
    async with trio.open_nursery() as nursery:
        for event in events:
            nursery.start_soon(writer.write, event)

    assert sorted(store.event_ids()) == sorted(e.event_id for e in events)
    assert sum(size for size, _ in store.batches) == 300
    assert len(store.batches) <= 3


async def test_writer_gathers_the_next_batch_while_one_is_in_flight(
    writer: AuditWriter, store: CountingStore
) -> None:
    store.hold()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.write, make_event())
        await store.wait_entered()
        for _ in range(50):
            nursery.start_soon(writer.write, make_event())
        await trio.testing.wait_all_tasks_blocked()
        store.release()

    assert store.batches == [(1, 0), (50, 0)]


async def test_writer_write_all_commits_together(
    writer: AuditWriter, store: CountingStore
) -> None:
    events = [make_event() for _ in range(5)]
    await writer.write_all(events)
    await writer.write_all([])

    assert store.batches == [(5, 0)]
    assert store.event_ids() == [e.event_id for e in events]


async def test_writer_write_all_spanning_batches(store: CountingStore) -> None:
    writer = AuditWriter(store, max_batch=2)
    events = [make_event() for _ in range(5)]
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.write_all(events)
        assert store.event_ids() == [e.event_id for e in events]
        await writer.aclose()
    # The last group is the closing checkpoint.
    assert store.batches == [(2, 0), (2, 0), (1, 0), (0, 0)]


async def test_writer_write_all_raises_when_its_batch_fails(
    writer: AuditWriter, store: CountingStore
) -> None:
    store.fail(True)
    with pytest.raises(AuditWriteError, match="readonly database"):
        await writer.write_all([make_event(), make_event()])


async def test_writer_splits_batches_at_max_batch(store: CountingStore) -> None:
    writer = AuditWriter(store, max_batch=10)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        async with trio.open_nursery() as writers:
            for _ in range(45):
                writers.start_soon(writer.write, make_event())
        await writer.aclose()

    assert max(size for size, _ in store.batches) <= 10
    assert len(store.event_ids()) == 45


async def test_writer_cancelled_waiter_loses_no_events(
    writer: AuditWriter, store: CountingStore
) -> None:
    store.hold()
    events = [make_event() for _ in range(20)]
    cancelled = events[7].event_id
    scopes = {event.event_id: trio.CancelScope() for event in events}
    results: dict[str, str] = {}

    async def write(event: AuditEvent) -> None:
        with scopes[event.event_id]:
            await writer.write(event)
            results[event.event_id] = "written"
            return
        results[event.event_id] = "cancelled"

    async with trio.open_nursery() as nursery:
        for event in events:
            nursery.start_soon(write, event)
        await store.wait_entered()  # the batch of all 20 is in flight
        scopes[cancelled].cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert results == {cancelled: "cancelled"}
        store.release()

    assert store.batches == [(20, 0)]
    assert list(results.values()).count("written") == 19
    assert sorted(store.event_ids()) == sorted(e.event_id for e in events)


async def test_writer_failed_batch_fails_every_waiter_then_recovers(
    writer: AuditWriter, store: CountingStore
) -> None:
    store.fail(True)
    errors: list[str] = []

    async def write(event: AuditEvent) -> None:
        try:
            await writer.write(event)
        except AuditWriteError as exc:
            errors.append(str(exc))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(write, make_event())

    assert len(errors) == 5
    assert "readonly database" in errors[0]
    assert store.event_ids() == []

    with pytest.raises(AuditWriteError):
        await writer.write(make_event())

    store.fail(False)
    event = make_event()
    await writer.write(event)
    assert store.event_ids() == [event.event_id]


async def test_writer_completion_rides_with_the_next_batch(
    writer: AuditWriter, store: CountingStore
) -> None:
    first, second = make_event(), make_event()
    await writer.write(first)
    writer.complete(Completion(first.event_id, 0.7, "ok", None, 1))
    await writer.write(second)

    assert store.batches == [(1, 0), (1, 1)]
    record = store.search(SearchQuery())[0]
    assert (record.event, record.outcome, record.rows) == (first, "ok", 1)


async def test_writer_completion_alone_is_written_after_the_delay(
    writer: AuditWriter, store: CountingStore
) -> None:
    event = make_event()
    await writer.write(event)
    writer.complete(Completion(event.event_id, 0.7, "cancelled", "57014", None))

    with trio.fail_after(5):
        while len(store.batches) < 2:
            await trio.sleep(0.005)
    assert store.batches[1] == (0, 1)
    assert store.search(SearchQuery())[0].sqlstate == "57014"


async def test_writer_aclose_flushes_queued_events_and_completions(
    store: CountingStore,
) -> None:
    writer = AuditWriter(store, completion_delay=60)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        done = make_event()
        await writer.write(done)
        writer.complete(Completion(done.event_id, 1.0, "ok", None, 0))
        ended = make_event(kind="session_end", statement=None, verdict=None)
        writer.write_nowait(ended)
        await writer.aclose()

    records = store.search(SearchQuery())
    assert [r.event for r in records] == [done, ended]
    assert records[0].outcome == "ok"


async def test_writer_aclose_without_run_still_flushes(store: CountingStore) -> None:
    writer = AuditWriter(store)
    event = make_event()
    writer.write_nowait(event)
    await writer.aclose()
    assert store.event_ids() == [event.event_id]


async def test_writer_refuses_writes_after_close(
    writer: AuditWriter, store: CountingStore
) -> None:
    await writer.aclose()
    with pytest.raises(AuditWriteError, match="closed"):
        await writer.write(make_event())
    with pytest.raises(AuditWriteError, match="closed"):
        writer.write_nowait(make_event())
    writer.complete(Completion("0" * 32, 1.0, "ok", None, 0))  # dropped, no error
    # Only the writer's start mark and first checkpoint were written.
    assert store.batches == [(0, 0)]


async def test_writer_cancelled_run_fails_the_waiting_batch(
    store: CountingStore,
) -> None:
    writer = AuditWriter(store)
    store.hold()
    outcomes: list[str] = []

    async def write(event: AuditEvent) -> None:
        try:
            await writer.write(event)
            outcomes.append("written")
        except AuditWriteError as exc:
            outcomes.append(str(exc))

    async with trio.open_nursery() as outer:
        outer.start_soon(write, make_event())
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await store.wait_entered()
            outer.start_soon(write, make_event())
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
            store.release()

    # The batch in flight finishes; the one still waiting is refused, not lost.
    assert outcomes == ["written", "audit writer stopped before the event was written"]
    assert len(store.event_ids()) == 1
    with pytest.raises(AuditWriteError, match="closed"):
        await writer.write(make_event())


def test_writer_rejects_a_max_batch_below_one(tmp_path: pathlib.Path) -> None:
    store = AuditStore(tmp_path / "audit.db")
    try:
        with pytest.raises(ValueError, match="max_batch"):
            AuditWriter(store, max_batch=0)
    finally:
        store.close()


async def test_writer_checkpoints_an_idle_chain_after_the_interval(
    store: CountingStore,
) -> None:
    from pamwire.audit import chain

    writer = AuditWriter(store, checkpoint_interval=0.05, completion_delay=0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.write(make_event())
        with trio.fail_after(5):
            # start 1, checkpoint 2, the event 3, then the idle checkpoint 4
            while chain.read_head(store.path) != chain.format_link(
                writer.writer_id, 4, writer.chain.head.hex()
            ):
                await trio.sleep(0.01)
        await writer.aclose()
    kinds = [mark.kind for mark in store.marks()]
    assert kinds == ["start", "checkpoint", "checkpoint"]


async def test_writer_checkpoints_after_checkpoint_every_records(
    store: CountingStore,
) -> None:
    writer = AuditWriter(store, checkpoint_every=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for _ in range(4):
            await writer.write(make_event())
        await writer.aclose()
    seqs = [mark.seq for mark in store.marks() if mark.kind == "checkpoint"]
    assert seqs == [2, 5, 8]

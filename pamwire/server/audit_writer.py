"""Commits audit events of all sessions in grouped SQLite transactions, off the loop.

Theory of operation: write() puts its event in the open batch and waits on that
batch's one trio.Event. The background task run() takes the open batch (a new one
opens at once), commits it in a worker thread with trio.to_thread.run_sync, notes the
result on the batch and sets its Event, which wakes all its waiters together. While a
commit is in flight, arriving events gather in the next batch, so under load one
thread hop and one commit serve many statements, and at rest a lone statement pays
one of each. A batch holds at most max_batch events; the rest start another.

With a journal (pamwire/audit/journal.py), durability comes from the journal: write()
appends the events to it on the event loop and returns at once, and the batches copy
them into the store in the background, with no one waiting. After each committed
batch, journal segments older than every event still queued are deleted. If a batch
fails, the journal is kept whole until recovery at the next start.

Completions never wake the writer by themselves: they ride with the next batch of
events, or go alone after completion_delay seconds of quiet. A waiter that is
cancelled stops waiting, but its event stays in the batch and is still committed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

import trio

from pamwire.audit.events import AuditEvent, Completion
from pamwire.audit.journal import Journal
from pamwire.audit.store import AuditStore, AuditWriteError

log = logging.getLogger("pamwire.audit")


class _Batch:
    """Events committed together, and the one Event their writers wait on."""

    __slots__ = ("done", "error", "events", "first_segment")

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.done = trio.Event()
        self.error: str | None = None
        self.first_segment: int | None = None


class AuditWriter:
    """The trio front of an AuditStore: many concurrent writers, few commits.

    Start run() in a nursery, then call write() before forwarding each statement.
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        journal: Journal | None = None,
        journal_delay: float = 0.05,
        max_batch: int = 512,
        completion_delay: float = 0.2,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._store = store
        self._journal = journal
        self._journal_delay = journal_delay
        self._closing_or_full = trio.Event()
        self._store_behind = False
        self._max_batch = max_batch
        self._completion_delay = completion_delay
        self._open = _Batch()
        self._full: deque[_Batch] = deque()
        self._completions: list[Completion] = []
        self._wakeup = trio.Event()
        self._closing = False
        self._idle = False
        self._started = False
        self._finished = trio.Event()

    @property
    def store_behind(self) -> bool:
        """True when a batch failed and the journal holds events the store lacks."""
        return self._store_behind

    async def write(self, event: AuditEvent) -> None:
        """Return once event is committed; AuditWriteError if its batch failed.

        Also raises AuditWriteError at once when the writer is closed. With a
        journal, "committed" means appended to the journal.
        """
        if self._journal is not None:
            self._journaled([event])
            return
        batch = self._enqueue(event)
        await batch.done.wait()
        if batch.error is not None:
            raise AuditWriteError(batch.error)

    async def write_all(self, events: Sequence[AuditEvent]) -> None:
        """Like write() for several events, with one wait: all are committed on return.

        They go in the same batch unless it fills. AuditWriteError if any failed.
        """
        if not events:
            await trio.lowlevel.checkpoint()
            return
        if self._journal is not None:
            self._journaled(events)
            return
        batches = {id(batch): batch for batch in map(self._enqueue, events)}
        for batch in batches.values():
            await batch.done.wait()
        for batch in batches.values():
            if batch.error is not None:
                raise AuditWriteError(batch.error)

    def write_nowait(self, event: AuditEvent) -> None:
        """Queue event without waiting; a failure to commit it is only logged.

        Raises AuditWriteError when the writer is closed.
        """
        if self._journal is not None:
            try:
                self._journaled([event])
            except AuditWriteError as exc:
                if self._closing:
                    raise
                log.error("audit event %s not journaled: %s", event.event_id, exc)
                self._enqueue(event)
            return
        self._enqueue(event)

    def complete(self, completion: Completion) -> None:
        """Queue a completion for the next commit; dropped with a warning if closed."""
        if self._finished.is_set():
            log.warning(
                "audit writer closed, completion of %s dropped", completion.event_id
            )
            return
        self._completions.append(completion)
        if self._idle:
            self._wakeup.set()

    def _journaled(self, events: Sequence[AuditEvent]) -> None:
        """Append to the journal (durable from here on), then queue for the store."""
        assert self._journal is not None
        if self._closing:
            raise AuditWriteError("audit writer is closed")
        segment = self._journal.append(events)
        for event in events:
            self._enqueue(event, segment)

    def _enqueue(self, event: AuditEvent, segment: int | None = None) -> _Batch:
        if self._closing:
            raise AuditWriteError("audit writer is closed")
        batch = self._open
        if batch.first_segment is None:
            batch.first_segment = segment
        batch.events.append(event)
        if len(batch.events) >= self._max_batch:
            self._full.append(batch)
            self._open = _Batch()
            self._closing_or_full.set()
        self._wakeup.set()
        return batch

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Commit batches until aclose() or cancellation; then fail any left waiting."""
        if self._started:
            raise RuntimeError("audit writer is already running")
        self._started = True
        task_status.started()
        await self._main()

    async def aclose(self) -> None:
        """Refuse new events, commit everything queued, and wait until run() ends."""
        self._closing = True
        self._wakeup.set()
        self._closing_or_full.set()
        if self._started:
            await self._finished.wait()
        else:
            # Never started: do the final flush here, in the caller's task.
            self._started = True
            await self._main()

    async def _main(self) -> None:
        try:
            await self._serve()
        finally:
            self._closing = True
            self._fail_pending("audit writer stopped before the event was written")
            self._finished.set()

    async def _serve(self) -> None:
        while True:
            if not (self._full or self._open.events):
                if self._closing:
                    break
                self._wakeup = trio.Event()
                if not self._completions:
                    # Idle: the first completion wakes us to start its timer.
                    self._idle = True
                    try:
                        await self._wakeup.wait()
                    finally:
                        self._idle = False
                    continue
                with trio.move_on_after(self._completion_delay):
                    await self._wakeup.wait()
            elif self._journal is not None and not self._full and not self._closing:
                # Journaled events are already durable: let the copy to the store
                # gather a larger group instead of one thread hop per statement.
                if self._closing_or_full.is_set():
                    self._closing_or_full = trio.Event()
                with trio.move_on_after(self._journal_delay):
                    await self._closing_or_full.wait()
            await self._flush_next()
        if self._completions:
            await self._flush_next()

    async def _flush_next(self) -> None:
        # Completions go only with the open batch, which holds the newest events:
        # a completion never reaches the store before its own event.
        if self._full:
            batch = self._full.popleft()
            completions: list[Completion] = []
        else:
            batch, self._open = self._open, _Batch()
            completions, self._completions = self._completions, []

        # TODO(latency): a lone statement pays a thread hop (about 50 us on the test
        # machines) on top of its commit; a long-lived writer thread that wakes the
        # loop through its trio token would cost less per batch.
        committed = False
        try:
            await trio.to_thread.run_sync(
                self._store.append_and_complete, batch.events, completions
            )
            committed = True
            self._release_journal()
        except AuditWriteError as exc:
            batch.error = str(exc)
            log.error(
                "audit batch of %d events and %d completions failed: %s",
                len(batch.events),
                len(completions),
                exc,
            )
        except Exception as exc:
            batch.error = f"audit write failed: {exc!r}"
            log.exception("audit batch of %d events failed", len(batch.events))
        finally:
            if not committed and batch.error is None:
                batch.error = "audit writer stopped before the event was written"
            if not committed and self._journal is not None and batch.events:
                # The events are safe in the journal; keep all of it for recovery.
                self._store_behind = True
                log.error("audit store is behind its journal until the next start")
            batch.done.set()

    def _release_journal(self) -> None:
        """Delete journal segments whose events are all in the store now."""
        if self._journal is None or self._store_behind:
            return
        pending = [*self._full, self._open]
        oldest = next(
            (b.first_segment for b in pending if b.first_segment is not None),
            self._journal.segment,
        )
        self._journal.release_before(oldest)

    def _fail_pending(self, reason: str) -> None:
        pending = [*self._full, self._open]
        self._full.clear()
        self._open = _Batch()
        lost = sum(len(batch.events) for batch in pending)
        if lost:
            log.error("audit writer stopped with %d events unwritten", lost)
        if self._completions:
            log.warning(
                "audit writer stopped with %d completions unwritten",
                len(self._completions),
            )
            self._completions = []
        for batch in pending:
            batch.error = reason
            batch.done.set()

"""Commits audit events of all sessions in grouped SQLite transactions, off the loop.

Theory of operation: write() puts its event in the open batch and waits on that
batch's one trio.Event. The background task run() takes the open batch (a new one
opens at once), commits it in a worker thread with trio.to_thread.run_sync, notes the
result on the batch and sets its Event, which wakes all its waiters together. While a
commit is in flight, arriving events gather in the next batch, so under load one
thread hop and one commit serve many statements, and at rest a lone statement pays
one of each. A batch holds at most max_batch events; the rest start another.

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
from pamwire.audit.store import AuditStore, AuditWriteError

log = logging.getLogger("pamwire.audit")


class _Batch:
    """Events committed together, and the one Event their writers wait on."""

    __slots__ = ("done", "error", "events")

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.done = trio.Event()
        self.error: str | None = None


class AuditWriter:
    """The trio front of an AuditStore: many concurrent writers, few commits.

    Start run() in a nursery, then call write() before forwarding each statement.
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        max_batch: int = 512,
        completion_delay: float = 0.2,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._store = store
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

    async def write(self, event: AuditEvent) -> None:
        """Return once event is committed; AuditWriteError if its batch failed.

        Also raises AuditWriteError at once when the writer is closed.
        """
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

    def _enqueue(self, event: AuditEvent) -> _Batch:
        if self._closing:
            raise AuditWriteError("audit writer is closed")
        batch = self._open
        batch.events.append(event)
        if len(batch.events) >= self._max_batch:
            self._full.append(batch)
            self._open = _Batch()
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
            batch.done.set()

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

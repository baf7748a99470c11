"""Commits audit events of all sessions in grouped SQLite transactions, off the loop.

Theory of operation: write() puts its event in the open batch and waits on that
batch's one trio.Event. The background task run() takes the open batch (a new one
opens at once), commits it in a worker thread with trio.to_thread.run_sync, notes the
result on the batch and sets its Event, which wakes all its waiters together. While a
commit is in flight, arriving events gather in the next batch, so under load one
thread hop and one commit serve many statements, and at rest a lone statement pays
one of each. A batch holds at most max_batch events; the rest start another.

Every record is hash-chained (pamwire/audit/chain.py) under this writer's id: a
`start` mark when the writer is made, then events, completions and `checkpoint`
marks, each checkpoint also written to the head file once the store holds it.

With a journal (pamwire/audit/journal.py), durability comes from the journal: write()
chains the events and appends them to it on the event loop, and returns at once, or
in strict mode once the journal's sync thread has fsynced them; the batches copy them
into the store in the background, with no one waiting. Completions and checkpoints
are chained and journaled when their batch is taken. After each committed batch,
journal segments older than every event still queued are deleted. If a batch fails,
the journal is kept whole until recovery at the next start. Without a journal,
records are chained when their batch is taken, and a batch that fails is unchained
again, so that the chain has no gap.

Completions never wake the writer by themselves: they ride with the next batch of
events, or go alone after completion_delay seconds of quiet. A waiter that is
cancelled stops waiting, but its event stays in the batch and is still committed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

import trio

from pamwire.audit import chain, copier
from pamwire.audit.chain import Chain, ChainedEvent, Mark
from pamwire.audit.events import AuditEvent, Completion
from pamwire.audit.journal import Journal
from pamwire.audit.literals import LiteralRedactor, scrub_chunk
from pamwire.audit.recording import RecordingChunk
from pamwire.audit.recording_store import Seal
from pamwire.audit.store import AuditStore, AuditWriteError
from pamwire.server.store_copier import StoreCopier

log = logging.getLogger("pamwire.audit")

# Seconds between two reports of the journal refusing records (a full disk).
_QUIET = 10.0


class _Batch:
    """Events committed together, and the one Event their writers wait on.

    `events` are not chained yet (they are chained when the batch is taken);
    `chained` were chained and journaled by write().
    """

    __slots__ = (
        "chained",
        "copied",
        "done",
        "error",
        "events",
        "first_segment",
        "lines",
    )

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.chained: list[ChainedEvent] = []
        # With a store copier: the journal lines of `copied` events, sent as they are.
        self.lines: list[bytes] = []
        self.copied = 0
        self.done = trio.Event()
        self.error: str | None = None
        self.first_segment: int | None = None

    def __len__(self) -> int:
        return len(self.events) + len(self.chained) + self.copied


class AuditWriter:
    """The trio front of an AuditStore: many concurrent writers, few commits.

    Start run() in a nursery, then call write() before forwarding each statement.
    Making the writer chains its `start` mark (and journals it): AuditWriteError
    if the journal cannot take it, AuditError if the store cannot be read.
    A checkpoint is written after checkpoint_every records, or checkpoint_interval
    seconds after the first record since the last one, and when the writer closes.
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        journal: Journal | None = None,
        copier: StoreCopier | None = None,
        literals: LiteralRedactor | None = None,
        journal_delay: float = 0.05,
        max_batch: int = 512,
        completion_delay: float = 0.2,
        writer_id: str | None = None,
        strict: bool = False,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        if checkpoint_every < 1:
            raise ValueError(
                f"checkpoint_every must be at least 1, not {checkpoint_every}"
            )
        if strict and journal is None:
            raise ValueError("strict mode needs a journal")
        if copier is not None and journal is None:
            raise ValueError("a store copier needs a journal")
        self._copier = copier
        # Classes of values replaced in recordings (audit.redact_literals).
        self.literals = literals or LiteralRedactor()
        self._store = store
        self._journal = journal
        self._journal_delay = journal_delay
        self._closing_or_full = trio.Event()
        self._store_behind = False
        self._max_batch = max_batch
        self._completion_delay = completion_delay
        self._strict = strict
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval
        self._clock = clock
        self._open = _Batch()
        self._full: deque[_Batch] = deque()
        self._completions: list[Completion] = []
        self._recordings: list[RecordingChunk] = []
        self._marks: list[Mark] = []
        self._mark_lines = b""
        self._journal_logged = -_QUIET
        self._journal_failures = 0
        self._since_checkpoint = 0
        self._first_since_checkpoint = 0.0
        self._sync_waiters: list[tuple[int, trio.Event]] = []
        self._token: trio.lowlevel.TrioToken | None = None
        self._wakeup = trio.Event()
        self._closing = False
        self._idle = False
        self._started = False
        self._finished = trio.Event()
        self.chain = Chain(writer_id or chain.new_writer_id())
        self._start_chain()

    @property
    def writer_id(self) -> str:
        return self.chain.writer

    @property
    def all_in_store(self) -> bool:
        """True when every journaled record reached the store: the journal may go."""
        return not self._store_behind and not getattr(self, "_lost", False)

    @property
    def store_behind(self) -> bool:
        """True when a batch failed and the journal holds events the store lacks."""
        return self._store_behind

    def _start_chain(self) -> None:
        # The start mark names the heads this writer found, so that `log verify`
        # notices if they go missing later: the newest record of the writer before
        # this one, and the head file's checkpoint.
        links = [self._store.newest_link(), chain.read_head(self._store.path)]
        found = list(dict.fromkeys(link for link in links if link))
        now = self._clock()
        line, start = self.chain.add_mark("start", now, detail=" ".join(found) or None)
        checkpoint_line, checkpoint = self.chain.add_mark("checkpoint", now)
        if self._journal is not None:
            self._journal.append(line + checkpoint_line)
        self._marks += [start, checkpoint]
        self._mark_lines += line + checkpoint_line

    async def write(self, event: AuditEvent) -> None:
        """Return once event is committed; AuditWriteError if its batch failed.

        Also raises AuditWriteError at once when the writer is closed. With a
        journal, "committed" means appended to the journal (and in strict mode
        fsynced).
        """
        if self._journal is not None:
            position = self._journaled([event])
            if self._strict:
                await self._wait_synced(position)
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
            position = self._journaled(events)
            if self._strict:
                await self._wait_synced(position)
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

    def record(self, chunks: Sequence[RecordingChunk]) -> None:
        """Queue session recording chunks for the store (replay); never blocks.

        Recordings do not go through the journal: a crash loses the chunks still
        queued, and a store failure is logged, not passed to the statement. Once
        stored, they are sealed into the chain by `recording` marks.
        """
        if chunks and not self._finished.is_set():
            if self.literals:
                chunks = [scrub_chunk(chunk, self.literals) for chunk in chunks]
            self._recordings.extend(chunks)

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

    def _journaled(self, events: Sequence[AuditEvent]) -> int:
        """Chain, append to the journal (durable from here on), queue for the store.

        Returns the journal position a strict writer waits to see fsynced.
        """
        assert self._journal is not None
        if self._closing:
            raise AuditWriteError("audit writer is closed")
        state = self.chain.state()
        data, chained = self.chain.add_events(events)
        try:
            segment = self._journal.append(data, urgent=self._strict)
        except AuditWriteError:
            self.chain.rewind(state)
            raise
        self._counted(len(chained))
        if self._copier is not None:
            self._enqueue_lines(data, len(chained), segment)
        else:
            for item in chained:
                self._enqueue_to(item, segment)
        return self._journal.position

    async def _wait_synced(self, position: int) -> None:
        assert self._journal is not None
        if self._journal.synced < position:
            woken = trio.Event()
            self._sync_waiters.append((position, woken))
            await woken.wait()
        if self._journal.synced < position:
            raise AuditWriteError(
                self._journal.sync_error or "audit journal was not flushed to disk"
            )

    def _on_synced(self, position: int) -> None:
        # Called in the journal's sync thread.
        if self._token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._wake_synced)

    def _wake_synced(self) -> None:
        assert self._journal is not None
        synced, failed = self._journal.synced, self._journal.sync_error is not None
        waiting = []
        for position, woken in self._sync_waiters:
            if failed or position <= synced:
                woken.set()
            else:
                waiting.append((position, woken))
        self._sync_waiters = waiting

    def _counted(self, records: int) -> None:
        if records and not self._since_checkpoint:
            self._first_since_checkpoint = self._clock()
        self._since_checkpoint += records

    def _enqueue_lines(self, data: bytes, count: int, segment: int) -> None:
        # The store copier takes the journal lines themselves: no objects to keep.
        if self._closing:
            raise AuditWriteError("audit writer is closed")
        batch = self._open
        if batch.first_segment is None:
            batch.first_segment = segment
        batch.lines.append(data)
        batch.copied += count
        if len(batch) >= self._max_batch:
            self._full.append(batch)
            self._open = _Batch()
            self._closing_or_full.set()
        self._wakeup.set()

    def _enqueue(self, event: AuditEvent) -> _Batch:
        return self._enqueue_to(event, None)

    def _enqueue_to(
        self, item: AuditEvent | ChainedEvent, segment: int | None
    ) -> _Batch:
        if self._closing:
            raise AuditWriteError("audit writer is closed")
        batch = self._open
        if batch.first_segment is None:
            batch.first_segment = segment
        if isinstance(item, ChainedEvent):
            batch.chained.append(item)
        else:
            batch.events.append(item)
        if len(batch) >= self._max_batch:
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
        self._attach_journal()
        task_status.started()
        await self._main()

    def _attach_journal(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        if self._journal is not None:
            self._journal.on_synced = self._on_synced

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
            self._attach_journal()
            await self._main()

    async def _main(self) -> None:
        try:
            await self._serve()
        finally:
            self._closing = True
            self._fail_pending("audit writer stopped before the event was written")
            if self._journal is not None:
                self._journal.on_synced = None
            for _, woken in self._sync_waiters:
                woken.set()
            self._sync_waiters = []
            self._finished.set()

    def _checkpoint_wait(self) -> float:
        due = self._first_since_checkpoint + self._checkpoint_interval
        return max(0.0, due - self._clock())

    async def _serve(self) -> None:
        while True:
            if not (self._full or self._open):
                if self._closing:
                    break
                self._wakeup = trio.Event()
                if not (self._completions or self._marks):
                    # Idle: the first completion wakes us to start its timer, and
                    # records since the last checkpoint get one in time.
                    self._idle = True
                    try:
                        timeout = (
                            self._checkpoint_wait()
                            if self._since_checkpoint
                            else float("inf")
                        )
                        with trio.move_on_after(timeout) as scope:
                            await self._wakeup.wait()
                    finally:
                        self._idle = False
                    if not scope.cancelled_caught:
                        continue
                else:
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
        if self._completions or self._marks or self._since_checkpoint:
            await self._flush_next()

    def _checkpoint_due(self) -> bool:
        if not self._since_checkpoint:
            return False
        return (
            self._closing
            or self._since_checkpoint >= self._checkpoint_every
            or self._checkpoint_wait() <= 0
        )

    async def _flush_next(self) -> None:
        # Completions go only with the open batch, which holds the newest events:
        # a completion never reaches the store before its own event.
        if self._full:
            batch = self._full.popleft()
            completions: list[Completion] = []
            ready: list[Mark] = []
            ready_lines = b""
        else:
            batch, self._open = self._open, _Batch()
            completions, self._completions = self._completions, []
            ready, self._marks = self._marks, []
            ready_lines, self._mark_lines = self._mark_lines, b""

        state = self.chain.state()
        counted = (self._since_checkpoint, self._first_since_checkpoint)
        marks, lines = self._chain_batch(batch, completions, ready)
        # TODO(latency): a lone statement pays a thread hop (about 50 us on the test
        # machines) on top of its commit; a long-lived writer thread that wakes the
        # loop through its trio token would cost less per batch.
        committed = False
        try:
            if self._copier is not None:
                await self._copier.copy_records(
                    b"".join([ready_lines, *batch.lines, lines])
                )
            else:
                await trio.to_thread.run_sync(
                    self._store.append_records, batch.chained, marks
                )
            committed = True
            self._release_journal()
        except AuditWriteError as exc:
            batch.error = str(exc)
            log.error(
                "audit batch of %d events and %d completions failed: %s",
                len(batch),
                len(completions),
                exc,
            )
        except Exception as exc:
            batch.error = f"audit write failed: {exc!r}"
            log.exception("audit batch of %d events failed", len(batch))
        finally:
            if not committed:
                self._uncommitted(batch, state, counted, ready, bool(lines))
            batch.done.set()
        if committed and self._recordings:
            await self._store_recordings()

    async def _store_recordings(self) -> None:
        chunks, self._recordings = self._recordings, []
        try:
            if self._copier is not None:
                body = copier.recordings_body(chunks)
                seals = await self._copier.copy_recordings(body)
            else:
                seals = await trio.to_thread.run_sync(
                    self._store.append_recording, chunks
                )
        except Exception:
            # Replay loses these results; the statements themselves are in the trail.
            log.exception("session recording of %d results not stored", len(chunks))
        else:
            self._seal(seals)

    def _seal(self, seals: Sequence[Seal]) -> None:
        """Chain a `recording` mark per seal; they go with the next batch."""
        if not seals:
            return
        now = self._clock()
        state = self.chain.state()
        lines = []
        for seal in seals:
            line, mark = self.chain.add_mark(
                "recording", now, detail=seal.detail(), rows=len(seal.seqs)
            )
            lines.append(line)
            self._marks.append(mark)
        data = b"".join(lines)
        if self._journal is not None:
            try:
                self._journal.append(data)
            except AuditWriteError as exc:
                # Unsealed rather than a gap in the chain: `log verify` notes them.
                self._journal_failed("recording seals", exc)
                self.chain.rewind(state)
                del self._marks[len(self._marks) - len(seals) :]
                return
        self._counted(len(seals))
        self._mark_lines += data

    def _chain_batch(
        self, batch: _Batch, completions: list[Completion], ready: list[Mark]
    ) -> tuple[list[Mark], bytes]:
        """Chain what the batch brings that is not chained yet; journal it.

        Returns the marks to store and the journal lines of all it chained.
        """
        now = self._clock()
        state = self.chain.state()
        counted = (self._since_checkpoint, self._first_since_checkpoint)
        unchained, had = batch.events, len(batch.chained)
        parts: list[bytes] = []
        if batch.events:
            data, chained = self.chain.add_events(batch.events)
            batch.chained += chained
            batch.events = []
            parts.append(data)
            self._counted(len(chained))
        marks: list[Mark] = []
        if self._copier is not None:
            # The copier takes the journal lines: no Mark objects are needed.
            parts.append(self.chain.completion_lines(completions, now))
        else:
            data, marks = self.chain.add_completions(completions, now)
            parts.append(data)
        self._counted(len(completions))
        if self._checkpoint_due():
            line, checkpoint = self.chain.add_mark("checkpoint", now)
            parts.append(line)
            marks.append(checkpoint)
            self._since_checkpoint = 0
        data = b"".join(parts)
        if self._journal is not None and data:
            try:
                self._journal.append(data)
            except AuditWriteError as exc:
                # Not durable, so not chained either: the chain keeps no gap, and
                # the completions and events wait for the next group.
                self._journal_failed("audit completions and checkpoint", exc)
                self.chain.rewind(state)
                self._since_checkpoint, self._first_since_checkpoint = counted
                self._completions[:0] = completions
                self._open.events[:0] = unchained
                del batch.chained[had:]
                return ready, b""
        return ready + marks, data

    def _journal_failed(self, what: str, exc: Exception) -> None:
        """Log that the journal refused records, at most every _QUIET seconds:
        a full disk makes every group fail until space is freed."""
        now = time.monotonic()
        self._journal_failures += 1
        if now - self._journal_logged >= _QUIET:
            log.error(
                "%s not journaled (%d failures since the last report): %s",
                what,
                self._journal_failures,
                exc,
            )
            self._journal_logged, self._journal_failures = now, 0

    def _uncommitted(
        self,
        batch: _Batch,
        state: tuple[int, bytes],
        counted: tuple[int, float],
        ready: list[Mark],
        chained: bool = False,
    ) -> None:
        """A batch failed; chained says it chained records of its own (completions,
        a checkpoint), which are in the journal only."""
        if batch.error is None:
            batch.error = "audit writer stopped before the event was written"
        now = self._clock()
        if self._journal is None:
            # Nothing else was chained meanwhile (without a journal only this task
            # chains), so the records of this batch leave the chain again; marks
            # chained before it wait for the next batch.
            self.chain.rewind(state)
            # The checkpoint timer restarts, so a broken store is not retried in a
            # tight loop by an idle writer.
            self._since_checkpoint, self._first_since_checkpoint = counted[0], now
            self._marks = ready + self._marks
        elif len(batch) or ready or chained:
            # The records are safe in the journal; keep all of it for recovery.
            self._store_behind = True
            log.error("audit store is behind its journal until the next start")

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
        lost = sum(len(batch) for batch in pending)
        if lost:
            self._lost = True
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

"""The proxy's end of the store copier process (pamwire/audit/copier.py).

The audit writer hands each batch of journal lines, and each group of recording
rows, to copy(); it returns once the child has committed them, or raises
AuditWriteError. One frame is in flight at a time (the writer commits its batches
one after the other). A child that dies, or that a cancelled send leaves with half a
frame, is killed and replaced by a new one at the next frame; what it had not
committed is still in the journal, which the writer then keeps for recovery.
"""

from __future__ import annotations

import logging
import pathlib
import subprocess
import sys

import trio

from pamwire.audit import copier
from pamwire.audit.recording_store import Seal
from pamwire.audit.store import AuditWriteError

log = logging.getLogger("pamwire.audit")

# Seconds the child gets to finish and exit after its input closes at shutdown.
# Every frame has been answered by then, so it only closes the store.
_EXIT_TIMEOUT = 10.0


class StoreCopier:
    """Starts the copier child on first use and talks to it."""

    def __init__(self, store_path: pathlib.Path, *, full_sync: bool = False) -> None:
        self._command = [sys.executable, "-m", "pamwire.audit.copier", str(store_path)]
        if full_sync:
            self._command.append("--full-sync")
        self._process: trio.Process | None = None
        self._buffer = bytearray()
        self._lock = trio.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the child now rather than at the first frame."""
        async with self._lock:
            await self._running()

    async def copy_records(self, lines: bytes) -> None:
        """Commit journal lines in the store; AuditWriteError if they are not."""
        await self._send(copier.RECORDS, lines)

    async def copy_recordings(self, body: bytes) -> list[Seal]:
        """Commit recording chunks (copier.recordings_body) and return their seals;
        AuditWriteError if they are not committed."""
        answer = await self._send(copier.RECORDINGS, body)
        try:
            return copier.decode_seals(answer)
        except (ValueError, TypeError) as exc:
            raise AuditWriteError(f"audit store copier gave bad seals: {exc}") from None

    async def _running(self) -> trio.Process:
        if self._process is None:
            self._buffer.clear()
            self._process = await trio.lowlevel.open_process(
                self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            log.debug("audit store copier started, pid %d", self._process.pid)
        return self._process

    async def _send(self, kind: bytes, body: bytes) -> bytes:
        """Send one frame; the child's answer after its `+`."""
        async with self._lock:
            process = await self._running()
            assert process.stdin is not None
            done = False
            try:
                await process.stdin.send_all(copier.encode_frame(kind, body))
                answer = await self._answer(process)
                done = True
            except (trio.BrokenResourceError, trio.ClosedResourceError, EOFError):
                raise AuditWriteError(
                    f"audit store copier exited ({self._exit_status(process)})"
                ) from None
            finally:
                if not done:
                    self._discard(process)
        if not answer.startswith(b"+"):
            raise AuditWriteError(answer[1:].decode("utf-8", "replace"))
        return answer[1:]

    async def _answer(self, process: trio.Process) -> bytes:
        assert process.stdout is not None
        while (end := self._buffer.find(b"\n")) < 0:
            data = await process.stdout.receive_some(4096)
            if not data:
                raise EOFError
            self._buffer += data
        answer = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return answer

    @staticmethod
    def _exit_status(process: trio.Process) -> str:
        code = process.poll()
        return "still running" if code is None else f"exit status {code}"

    def _discard(self, process: trio.Process) -> None:
        # Half a frame may be in the pipe: this child cannot be trusted any more.
        if process.poll() is None:
            process.kill()
        log.error("audit store copier %d discarded; a new one starts", process.pid)
        self._process = None

    async def aclose(self) -> None:
        """Close the child's input and wait for it to exit (killed if it hangs)."""
        async with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            assert process.stdin is not None
            await process.stdin.aclose()
            with trio.move_on_after(_EXIT_TIMEOUT):
                await process.wait()
            if process.poll() is None:
                log.error("audit store copier did not exit; killed")
                process.kill()
                await process.wait()
            elif process.returncode:
                log.error(
                    "audit store copier exited with status %d", process.returncode
                )

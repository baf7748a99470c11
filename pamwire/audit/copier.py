"""The store copier: a child process that copies journaled records into SQLite.

Theory of operation: `pamwire serve` makes every event durable in the journal
(pamwire/audit/journal.py) on its event loop; copying the records into the SQLite
store is bulk work that, in a thread of the proxy, competes with the event loop for
the interpreter lock. So the proxy starts this module as a process of its own
(`python -m pamwire.audit.copier STORE`) and hands it, over the child's standard
input, the very journal lines it already wrote, in frames. The child answers every
frame with one line on its standard output, in order: `+` when the frame's records
are committed (for recordings, `+` and the JSON list of their seals, which the
proxy chains), `-REASON` when they are not (the proxy then keeps the journal for
recovery at the next start). End of input ends the child.

A frame is one kind byte, a 4-byte big-endian body length and the body:

- `R`: journal lines (chained events and marks), inserted in one transaction;
- `C`: session recording chunks as tuples of their field values, encoded with
  `marshal` (the pipe is private to the two processes, and marshal builds only
  plain values).
"""

from __future__ import annotations

import argparse
import json
import logging
import marshal
import operator
import pathlib
import signal
import struct
import sys
from collections.abc import Sequence
from typing import BinaryIO

import attrs

from pamwire.audit.chain import ChainedEvent, Mark, decode_line
from pamwire.audit.recording import RecordingChunk
from pamwire.audit.recording_store import Seal
from pamwire.audit.store import AuditError, AuditStore

log = logging.getLogger("pamwire.audit.copier")

RECORDS = b"R"
RECORDINGS = b"C"
_HEADER = struct.Struct(">cI")
_CHUNK_FIELDS = tuple(field.name for field in attrs.fields(RecordingChunk))
_chunk_values = operator.attrgetter(*_CHUNK_FIELDS)

# The largest frame the child accepts: a batch of 512 events of a few KiB each,
# or recordings of many statements, stays far below it.
MAX_FRAME = 1 << 30


def encode_frame(kind: bytes, body: bytes) -> bytes:
    """One frame for the child; ValueError if body is too large."""
    if len(body) > MAX_FRAME:
        raise ValueError(f"copier frame of {len(body)} bytes is too large")
    return _HEADER.pack(kind, len(body)) + body


def recordings_body(chunks: Sequence[RecordingChunk]) -> bytes:
    """The body of a RECORDINGS frame: each chunk's field values, in field order."""
    return marshal.dumps([_chunk_values(chunk) for chunk in chunks])


def decode_records(body: bytes) -> tuple[list[ChainedEvent], list[Mark]]:
    """The records of a RECORDS frame; ValueError naming the bad line."""
    events: list[ChainedEvent] = []
    marks: list[Mark] = []
    for number, line in enumerate(body.splitlines(), start=1):
        try:
            record = decode_line(line)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bad record line {number}: {exc}") from None
        if isinstance(record, Mark):
            marks.append(record)
        else:
            events.append(record)
    return events, marks


def decode_recordings(body: bytes) -> list[RecordingChunk]:
    """The chunks of a RECORDINGS frame; ValueError if it holds something else."""
    values = marshal.loads(body)
    if not isinstance(values, list):
        raise ValueError("recording frame is not a list")
    return [RecordingChunk(**dict(zip(_CHUNK_FIELDS, v, strict=True))) for v in values]


def decode_seals(answer: bytes) -> list[Seal]:
    """The seals in a RECORDINGS frame's answer (after its `+`); ValueError if bad."""
    items = json.loads(answer) if answer else []
    return [Seal(str(s), tuple(int(n) for n in q), str(d)) for s, q, d in items]


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def serve(store: AuditStore, source: BinaryIO, answers: BinaryIO) -> int:
    """Copy frames from source into store until end of input; returns the exit code.

    A frame that cannot be committed is answered `-REASON` and the next is tried;
    a broken frame stream (a short or unknown frame) ends the child with 1.
    """
    while True:
        header = _read_exact(source, _HEADER.size)
        if header is None:
            return 0
        kind, size = _HEADER.unpack(header)
        body = _read_exact(source, size) if size <= MAX_FRAME else None
        if body is None or kind not in (RECORDS, RECORDINGS):
            log.error("audit store copier: broken frame stream, stopping")
            return 1
        answer = b"+"
        try:
            if kind == RECORDS:
                events, marks = decode_records(body)
                store.append_records(events, marks)
            else:
                seals = store.append_recording(decode_recordings(body))
                answer += json.dumps([list(seal) for seal in seals]).encode("ascii")
        except (AuditError, ValueError, TypeError, EOFError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            answers.write(b"-" + reason.encode("utf-8", "replace") + b"\n")
        else:
            answers.write(answer + b"\n")
        answers.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pamwire.audit.copier")
    parser.add_argument("store", type=pathlib.Path)
    parser.add_argument("--full-sync", action="store_true")
    args = parser.parse_args(argv)
    # Ctrl+C or a service manager's SIGTERM reach the whole process group; the
    # proxy copies its last batch on the way out, so the child stays until its
    # input closes (also when the proxy is killed outright).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        store = AuditStore(args.store, full_sync=args.full_sync)
    except AuditError as exc:
        log.error("audit store copier: %s", exc)
        return 2
    try:
        return serve(store, sys.stdin.buffer, sys.stdout.buffer)
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())

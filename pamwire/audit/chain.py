"""The hash chain of the audit trail: canonical record bytes, hashes and checks.

Theory of operation: every record a writer (one running pamwire) puts in the trail
gets the next sequence number of that writer and the hash
sha256(previous record's hash || canonical bytes), the first record hashing over 32
zero bytes. Canonical bytes are the compact JSON array that is also the record's
journal line, so the writer hashes what it already encoded, once. Records are events,
and marks: `start` opens a writer's chain and names the heads it found (the previous
writer's last record and the head file), `completion` says how a statement ended,
`checkpoint` records a head that is also written to the head file beside the store,
`recording` seals a group of one session's stored recording chunks
(pamwire/audit/recording_store.py).
check_chains() recomputes every hash and reports edits, gaps, broken links and a head
file the trail does not reach.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import operator
import os
import pathlib
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import attrs

from pamwire.audit.events import AuditEvent, Completion

GENESIS = bytes(32)
MARK_KINDS = ("start", "completion", "checkpoint", "recording")

EVENT_FIELDS = tuple(field.name for field in attrs.fields(AuditEvent))
_event_values = operator.attrgetter(*EVENT_FIELDS)
_ENCODER = json.JSONEncoder(separators=(",", ":"))
# The C encoder that JSONEncoder.encode() makes anew on every call, made once:
# compact separators, ASCII only, no circular check (records hold plain values).
# The output is the same; tests/audit/test_chain.py compares the two.
_make_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODER = (
    None
    if _make_c_encoder is None
    else _make_c_encoder(
        None,
        _ENCODER.default,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        False,
        False,
        True,
    )
)


def _encode(value: object) -> str:
    """The compact JSON of value, ASCII only: a record's canonical text."""
    if _C_ENCODER is None:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODER(value, 0))


def new_writer_id() -> str:
    """A fresh writer id: 16 lowercase hex digits."""
    return uuid.uuid4().hex[:16]


class ChainedEvent(NamedTuple):
    """An event with its place in a writer's chain."""

    event: AuditEvent
    writer: str
    seq: int
    hash: str


@attrs.frozen
class Mark:
    """A chained record that is not an event: start, completion or checkpoint."""

    kind: str
    writer: str
    seq: int
    time: float = attrs.field(converter=float)
    event_id: str | None = None
    duration_ms: float | None = None
    outcome: str | None = None
    sqlstate: str | None = None
    rows: int | None = None
    detail: str | None = None
    hash: str = ""


MARK_FIELDS = tuple(field.name for field in attrs.fields(Mark))
_mark_values = operator.attrgetter(*MARK_FIELDS[3:-1])


def event_bytes(event: AuditEvent, writer: str, seq: int) -> bytes:
    """The canonical bytes of an event: a JSON array, ASCII only."""
    # ensure_ascii (the default) keeps lone surrogates from undecodable client
    # bytes as \\udcXX escapes, which decode back to the same text.
    return _encode(["event", writer, seq, *_event_values(event)]).encode("ascii")


def mark_bytes(mark: Mark) -> bytes:
    """The canonical bytes of a mark: a JSON array, ASCII only."""
    return _encode([mark.kind, mark.writer, mark.seq, *_mark_values(mark)]).encode(
        "ascii"
    )


def next_hash(previous: bytes, body: bytes) -> bytes:
    return hashlib.sha256(previous + body).digest()


class Chain:
    """One writer's chain head; not thread-safe (the writer uses it on the loop)."""

    def __init__(self, writer: str, *, seq: int = 0, head: bytes = GENESIS) -> None:
        self.writer = writer
        self.seq = seq
        self.head = head

    def state(self) -> tuple[int, bytes]:
        return self.seq, self.head

    def rewind(self, state: tuple[int, bytes]) -> None:
        """Undo the records added since state() (they never reached the trail)."""
        self.seq, self.head = state

    def add_events(
        self, events: Sequence[AuditEvent]
    ) -> tuple[bytes, list[ChainedEvent]]:
        """Chain events; returns their journal lines and the chained events."""
        lines: list[bytes] = []
        chained: list[ChainedEvent] = []
        writer, seq, head = self.writer, self.seq, self.head
        for event in events:
            seq += 1
            body = event_bytes(event, writer, seq)
            head = hashlib.sha256(head + body).digest()
            digest = head.hex()
            lines.append(b"%s %s\n" % (digest.encode("ascii"), body))
            chained.append(ChainedEvent(event, writer, seq, digest))
        self.seq, self.head = seq, head
        return b"".join(lines), chained

    def add_mark(
        self,
        kind: str,
        time: float,
        *,
        event_id: str | None = None,
        duration_ms: float | None = None,
        outcome: str | None = None,
        sqlstate: str | None = None,
        rows: int | None = None,
        detail: str | None = None,
    ) -> tuple[bytes, Mark]:
        """Chain a mark; returns its journal line and the mark with its hash."""
        time = float(time)
        line, digest = self._chain_mark(
            kind, time, event_id, duration_ms, outcome, sqlstate, rows, detail
        )
        mark = Mark(
            kind,
            self.writer,
            self.seq,
            time,
            event_id,
            duration_ms,
            outcome,
            sqlstate,
            rows,
            detail,
            digest,
        )
        return line, mark

    def _chain_mark(
        self,
        kind: str,
        time: float,
        event_id: str | None,
        duration_ms: float | None,
        outcome: str | None,
        sqlstate: str | None,
        rows: int | None,
        detail: str | None,
    ) -> tuple[bytes, str]:
        # The values in MARK_FIELDS order, as mark_bytes() encodes them: the hot
        # path (a completion per statement) builds the bytes without a Mark.
        seq = self.seq + 1
        body = _encode(
            [
                kind,
                self.writer,
                seq,
                time,
                event_id,
                duration_ms,
                outcome,
                sqlstate,
                rows,
                detail,
            ]
        ).encode("ascii")
        head = hashlib.sha256(self.head + body).digest()
        digest = head.hex()
        self.seq, self.head = seq, head
        return b"%s %s\n" % (digest.encode("ascii"), body), digest

    def add_completions(
        self, completions: Sequence[Completion], time: float
    ) -> tuple[bytes, list[Mark]]:
        """Chain a completion mark per completion; their journal lines and marks."""
        lines: list[bytes] = []
        marks: list[Mark] = []
        for c in completions:
            line, mark = self.add_mark(
                "completion",
                time,
                event_id=c.event_id,
                duration_ms=c.duration_ms,
                outcome=c.outcome,
                sqlstate=c.sqlstate,
                rows=c.rows,
            )
            lines.append(line)
            marks.append(mark)
        return b"".join(lines), marks

    def completion_lines(self, completions: Sequence[Completion], time: float) -> bytes:
        """Like add_completions, for a caller that needs only the journal lines."""
        time = float(time)
        chain_mark = self._chain_mark
        return b"".join(
            [
                chain_mark(
                    "completion",
                    time,
                    c.event_id,
                    c.duration_ms,
                    c.outcome,
                    c.sqlstate,
                    c.rows,
                    None,
                )[0]
                for c in completions
            ]
        )


def decode_line(line: bytes) -> ChainedEvent | Mark:
    """A journal line back to its record; ValueError if it is not one."""
    digest, _, body = line.partition(b" ")
    if len(digest) != 64:
        raise ValueError("no record hash")
    values = json.loads(body)
    if not isinstance(values, list) or len(values) < 3:
        raise ValueError("not a record")
    kind, writer, seq, *rest = values
    if kind == "event":
        if len(rest) != len(EVENT_FIELDS):
            raise ValueError("wrong number of event fields")
        event = AuditEvent(**dict(zip(EVENT_FIELDS, rest, strict=True)))
        return ChainedEvent(event, writer, seq, digest.decode("ascii"))
    if kind in MARK_KINDS:
        if len(rest) != len(MARK_FIELDS) - 4:
            raise ValueError("wrong number of mark fields")
        values = dict(zip(MARK_FIELDS[:-1], [kind, writer, seq, *rest], strict=True))
        return Mark(**values, hash=digest.decode("ascii"))
    raise ValueError(f"unknown record kind {kind!r}")


# -- the head file --


def head_path(store_path: pathlib.Path) -> pathlib.Path:
    return store_path.with_name(store_path.name + ".head")


def format_link(writer: str, seq: int, digest: str) -> str:
    return f"{writer}:{seq}:{digest}"


def parse_link(text: str) -> tuple[str, int, str]:
    writer, seq, digest = text.split(":")
    return writer, int(seq), digest


def write_head(store_path: pathlib.Path, writer: str, seq: int, digest: str) -> None:
    """Replace the head file atomically with this checkpoint; OSError on failure."""
    path = head_path(store_path)
    # A name of its own per call: the proxy's store copier and a CLI command may
    # write the head at the same moment, and the last rename wins whole.
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    data = format_link(writer, seq, digest).encode("ascii") + b"\n"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_head(store_path: pathlib.Path) -> str | None:
    """The checkpoint link in the head file, or None if there is no head file."""
    try:
        return head_path(store_path).read_text("ascii").strip()
    except FileNotFoundError:
        return None


# -- checking --


class StoredRecord(NamedTuple):
    """A record as read back from the store, re-encoded to its canonical bytes."""

    writer: str
    seq: int
    body: bytes
    hash: str
    label: str  # how a report names it: "event <id>" or "completion mark"


class Seen(NamedTuple):
    """What check_chains keeps of a record: enough to check links and name it."""

    hash: str
    label: str


Chains = dict[str, dict[int, Seen]]


def check_chains(records: Iterable[StoredRecord]) -> tuple[list[str], Chains]:
    """Problems found in the records' chains, and what was seen, by writer and seq.

    `records` must come sorted by writer, then seq. Each problem names the writer,
    the sequence number and the record.
    """
    problems: list[str] = []
    chains: Chains = {}
    last: dict[str, int] = {}
    for record in records:
        writer, seq = record.writer, record.seq
        chain = chains.setdefault(writer, {})
        if seq in chain:
            problems.append(
                f"writer {writer} seq {seq}: two records "
                f"({chain[seq].label}, {record.label})"
            )
            continue
        expected = last.get(writer, 0) + 1
        if seq != expected:
            problems.append(_gap(writer, chain, expected, seq, record.label))
        previous = GENESIS if seq == 1 else chain.get(seq - 1)
        if previous is not None:
            before = (
                previous
                if isinstance(previous, bytes)
                else bytes.fromhex(previous.hash)
            )
            if next_hash(before, record.body).hex() != record.hash:
                problems.append(
                    f"writer {writer} seq {seq} ({record.label}): content does not "
                    "match its hash (edited, or moved from another place)"
                )
        chain[seq] = Seen(record.hash, record.label)
        last[writer] = seq
    return problems, chains


def _gap(
    writer: str, chain: dict[int, Seen], first: int, found: int, label: str
) -> str:
    missing = str(first) if found - first == 1 else f"{first}-{found - 1}"
    after = chain.get(first - 1)
    where = f" after seq {first - 1} ({after.label})" if after else " at the start"
    return (
        f"writer {writer} seq {missing} missing{where}, before seq {found} "
        f"({label}): records deleted"
    )


def check_link(chains: Chains, link: str, source: str) -> list[str]:
    """Problems with a link ("writer:seq:hash") found in `source`."""
    try:
        writer, seq, digest = parse_link(link)
    except ValueError:
        return [f"{source}: unreadable link {link!r}"]
    seen = chains.get(writer, {}).get(seq)
    if seen is None:
        newest = max(chains.get(writer, {}), default=0)
        return [
            f"{source} names writer {writer} seq {seq}, but that chain ends at seq "
            f"{newest}: newest records truncated"
        ]
    if seen.hash != digest:
        return [
            f"{source} names writer {writer} seq {seq} ({seen.label}) with "
            "another hash: records replaced"
        ]
    return []

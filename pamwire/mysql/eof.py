"""Translates one command's reply between legs that disagree on CLIENT_DEPRECATE_EOF.

Theory of operation. Without CLIENT_DEPRECATE_EOF a server ends column and
parameter definitions with an EOF packet and ends rows with another; with it
the first kind is left out and rows end with an OK packet whose header is
0xFE. When the client leg and the server leg negotiated it differently, an
EofTranslator follows the server's reply with a ReplyTracker made for the
server leg and, for each server packet, gives the bytes the client expects:

    server without, client with     EOF after definitions   dropped
                                    EOF ending rows         OK (0xFE)
    server with, client without     end of definitions      EOF inserted
                                    OK (0xFE) ending rows   EOF

Everything else (rows, definitions, OK, ERR, LOCAL INFILE requests) passes
as it came, renumbered: each dropped or inserted packet shifts the sequence
ids of the packets after it, and `delta` says by how much (client id minus
server id). Packets the client sends inside a reply (LOCAL INFILE data) are
shifted back with to_server().

An inserted EOF carries no warnings and the latest server status this reply
(or the session, before the reply's first OK or EOF) showed; clients read
only the status of the EOF ending the rows. An OK turned into an EOF keeps
its warnings and status; its affected rows, info and session-state changes
have no place in an EOF and are dropped (pamwire's tracker still sees them),
and so is the SERVER_SESSION_STATE_CHANGED flag. An EOF turned into an OK has
zero affected rows and no info.

A COM_STMT_EXECUTE that opens a cursor answers with definitions and one EOF
(OK under DEPRECATE_EOF) carrying SERVER_STATUS_CURSOR_EXISTS and no rows; so
for an execute the EOF after definitions is held until the next packet shows
which shape this is. COM_SET_OPTION answers with an EOF (OK 0xFE under
DEPRECATE_EOF), which is translated too.
"""

from __future__ import annotations

from typing import Final

from pamwire.errors import ServerProtocolError
from pamwire.mysql import codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Command, ServerStatus
from pamwire.mysql.packets import MAX_CHUNK, Packet, PacketReader, frame, payload
from pamwire.mysql.results import Outcome, Phase, ReplyTracker, Step

__all__ = ["EofTranslator", "legs_differ", "renumber", "translate_reply"]

_CURSOR_EXISTS: Final = int(ServerStatus.SERVER_STATUS_CURSOR_EXISTS)
_STATE_CHANGED: Final = int(ServerStatus.SERVER_SESSION_STATE_CHANGED)
# Phases a result's definitions end from (FIRST: cached metadata, none sent).
_DEFINITION_PHASES: Final = frozenset({Phase.FIRST, Phase.COLUMN_DEFINITIONS})


def legs_differ(client_caps: int, server_caps: int) -> bool:
    """Whether replies need translating between legs with these capabilities."""
    return bool((client_caps ^ server_caps) & codec.DEPRECATE_EOF)


def renumber(block: bytes, packet: Packet, sequence_id: int) -> bytes:
    """The wire bytes of packet starting at sequence_id instead of its own."""
    if packet.sequence_id == sequence_id:
        return block[packet.start : packet.end]
    if packet.length < MAX_CHUNK:
        start = packet.start
        return (
            block[start : start + 3]
            + bytes((sequence_id,))
            + block[start + 4 : packet.end]
        )
    return frame(payload(block, packet), sequence_id)


class EofTranslator:
    """Follows one reply on the server leg and lays it out for the client leg.

    Made per command with both legs' capabilities, which must differ in
    CLIENT_DEPRECATE_EOF. feed_packet() raises ServerProtocolError (from the
    tracker) for a packet that cannot stand where it came.
    """

    def __init__(
        self,
        command: int,
        server_caps: int,
        client_caps: int,
        *,
        status_flags: int = 0,
        sequence_id: int = 1,
    ) -> None:
        if not legs_differ(client_caps, server_caps):
            raise ValueError("legs agree on CLIENT_DEPRECATE_EOF: nothing to translate")
        self.tracker = ReplyTracker(command, server_caps)
        self.tracker.next_sequence_id = sequence_id
        self.command = command
        self.server_caps = server_caps
        self.client_caps = client_caps
        # True: the server leaves EOFs out and the client wants them inserted.
        self.inserting = bool(server_caps & codec.DEPRECATE_EOF)
        self.delta = 0
        self._status = status_flags
        self._held = False  # an inserted EOF waiting for the next packet

    @property
    def done(self) -> bool:
        return self.tracker.done

    @property
    def outcome(self) -> Outcome | None:
        return self.tracker.outcome

    def client_sequence_id(self, server_sequence_id: int) -> int:
        return (server_sequence_id + self.delta) & 0xFF

    def to_server(self, block: bytes, packet: Packet) -> bytes:
        """A client packet sent inside the reply, renumbered for the server leg."""
        return renumber(block, packet, (packet.sequence_id - self.delta) & 0xFF)

    def feed_packet(self, block: bytes, packet: Packet) -> tuple[Step, bytes]:
        """Take one server packet; returns its step and the bytes for the client."""
        before = self.tracker.phase
        step = self.tracker.feed_packet(block, packet)
        if self.inserting:
            out = self._insert(before, step, block, packet)
        else:
            out = self._remove(before, step, block, packet)
        if step in (Step.OK, Step.EOF, Step.RESULT_END):
            self._status = self.tracker.status_flags
        return step, out

    # -- server with DEPRECATE_EOF, client without ----------------------------------

    def _insert(self, before: Phase, step: Step, block: bytes, packet: Packet) -> bytes:
        out: list[bytes] = []
        if self._held:
            self._held = False
            if step is Step.RESULT_END and self._opens_cursor():
                # Definitions then one EOF: the cursor's rows come with FETCH.
                return self._eof(
                    packet.sequence_id, self.tracker.warnings, self.tracker.status_flags
                )
            out.append(self._inserted_eof(packet.sequence_id))
        if step is Step.RESULT_END or (
            before is Phase.SINGLE and packet.first_byte == m.EOF_HEADER
        ):
            out.append(
                self._eof(
                    packet.sequence_id, self.tracker.warnings, self.tracker.status_flags
                )
            )
        else:
            out.append(
                renumber(block, packet, self.client_sequence_id(packet.sequence_id))
            )
        after = self.tracker.phase
        if before in _DEFINITION_PHASES and after is Phase.ROWS:
            if self.command == Command.COM_STMT_EXECUTE:
                self._held = True
            else:
                out.append(self._inserted_eof(packet.last_sequence_id + 1))
        elif before in (Phase.PARAM_DEFINITIONS, Phase.PREPARE_COLUMNS) and (
            after is not before
        ):
            out.append(self._inserted_eof(packet.last_sequence_id + 1))
        return b"".join(out)

    def _opens_cursor(self) -> bool:
        return (
            self.command == Command.COM_STMT_EXECUTE
            and self.tracker.rows == 0
            and bool(self.tracker.status_flags & _CURSOR_EXISTS)
        )

    def _inserted_eof(self, server_sequence_id: int) -> bytes:
        """An EOF standing where the server sent nothing; shifts later ids by one."""
        data = self._eof_bytes(
            0, self._status, self.client_sequence_id(server_sequence_id)
        )
        self.delta += 1
        return data

    def _eof(self, server_sequence_id: int, warnings: int, status: int) -> bytes:
        return self._eof_bytes(
            warnings, status, self.client_sequence_id(server_sequence_id)
        )

    def _eof_bytes(self, warnings: int, status: int, sequence_id: int) -> bytes:
        eof = m.EofPacket(warnings=warnings, status_flags=status & ~_STATE_CHANGED)
        return codec.encode(eof, self.client_caps, sequence_id)

    # -- server without DEPRECATE_EOF, client with ----------------------------------

    def _remove(self, before: Phase, step: Step, block: bytes, packet: Packet) -> bytes:
        after = self.tracker.phase
        if step is Step.EOF and before is Phase.COLUMNS_EOF and after is Phase.DONE:
            return self._ok_end(packet)  # the EOF of an opened cursor
        if step is Step.EOF and before is Phase.SINGLE:
            return self._ok_end(packet)  # COM_SET_OPTION's answer
        if step is Step.EOF:
            self.delta -= 1
            return b""
        if step is Step.RESULT_END:
            return self._ok_end(packet)
        return renumber(block, packet, self.client_sequence_id(packet.sequence_id))

    def _ok_end(self, packet: Packet) -> bytes:
        status = self.tracker.status_flags & ~_STATE_CHANGED
        ok = m.OkPacket(
            status_flags=status,
            warnings=self.tracker.warnings,
            header=m.EOF_HEADER,
            info="",
        )
        return codec.encode(
            ok, self.client_caps, self.client_sequence_id(packet.sequence_id)
        )


def translate_reply(
    command: int,
    data: bytes,
    *,
    server_caps: int,
    client_caps: int,
    status_flags: int = 0,
) -> bytes:
    """The whole reply data (wire bytes, from sequence id 1) laid out for the client.

    A pure helper over EofTranslator. Raises ServerProtocolError for bytes
    that are not one complete reply.
    """
    translator = EofTranslator(
        command, server_caps, client_caps, status_flags=status_flags
    )
    reader = PacketReader()
    reader.feed(data)
    block, packets = reader.read_packets()
    out: list[bytes] = []
    for packet in packets:
        if translator.done:
            raise ServerProtocolError("bytes after the end of the reply")
        out.append(translator.feed_packet(block, packet)[1])
    if not translator.done or reader.buffered:
        raise ServerProtocolError("reply is incomplete")
    return b"".join(out)

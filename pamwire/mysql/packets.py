"""Sans-IO framing of MySQL packets: a 3-byte length and a sequence id per packet.

Theory of operation: a payload of 0xFFFFFF bytes or more travels as several
physical packets of 0xFFFFFF bytes each, then one shorter packet (possibly
empty), with consecutive sequence ids. A PacketReader is fed raw bytes and hands
back the bytes of every complete logical packet in one block, with the offsets,
sequence ids, payload length and first payload byte of each. The proxy can
forward a block unchanged, route on the first byte and length alone, and join a
payload (payload()) only for the packets it must decode.
"""

from __future__ import annotations

from typing import Final

import attrs

from pamwire.errors import MessageTooLarge, ProtocolError

__all__ = [
    "DEFAULT_MAX_PACKET_SIZE",
    "HEADER_SIZE",
    "MAX_CHUNK",
    "Packet",
    "PacketReader",
    "frame",
    "next_sequence_id",
    "payload",
]

# Largest payload of one physical packet; a payload this long is continued.
MAX_CHUNK: Final = 0xFFFFFF
HEADER_SIZE: Final = 4

# The largest max_allowed_packet MySQL and MariaDB accept is 1 GiB, so no valid
# conversation has a longer logical packet.
DEFAULT_MAX_PACKET_SIZE: Final = 1 << 30


@attrs.frozen(slots=True)
class Packet:
    """One logical packet inside a block.

    start and end span its wire bytes in the block, headers included. length is
    the joined payload length and first_byte its first byte (-1 when empty).
    sequence_id is that of the first physical packet, last_sequence_id that of
    the last one, so the next packet of the exchange has last_sequence_id + 1.
    """

    sequence_id: int
    last_sequence_id: int
    start: int
    end: int
    length: int
    first_byte: int

    @property
    def is_split(self) -> bool:
        return self.length >= MAX_CHUNK


def payload(block: bytes, packet: Packet) -> bytes | memoryview:
    """The payload of packet: a view into block, or joined bytes if it was split."""
    if packet.length < MAX_CHUNK:
        return memoryview(block)[packet.start + HEADER_SIZE : packet.end]
    parts = []
    pos = packet.start
    while pos < packet.end:
        size = int.from_bytes(block[pos : pos + 3], "little")
        parts.append(block[pos + HEADER_SIZE : pos + HEADER_SIZE + size])
        pos += HEADER_SIZE + size
    return b"".join(parts)


def next_sequence_id(sequence_id: int, payload_length: int) -> int:
    """The sequence id after a payload of payload_length sent from sequence_id."""
    return (sequence_id + payload_length // MAX_CHUNK + 1) & 0xFF


def frame(data: bytes | bytearray | memoryview, sequence_id: int) -> bytes:
    """The wire bytes of payload data starting at sequence_id, split as needed.

    A payload whose length is a multiple of 0xFFFFFF (including exactly
    0xFFFFFF) ends with an empty packet, as the protocol requires.
    """
    if not 0 <= sequence_id <= 0xFF:
        raise ProtocolError(f"sequence id {sequence_id} outside 0..255")
    size = len(data)
    if size < MAX_CHUNK:
        return size.to_bytes(3, "little") + bytes((sequence_id,)) + data
    view = memoryview(data)
    parts: list[bytes | memoryview] = []
    seq = sequence_id
    pos = 0
    while True:
        chunk = view[pos : pos + MAX_CHUNK]
        parts.append(len(chunk).to_bytes(3, "little") + bytes((seq,)))
        parts.append(chunk)
        seq = (seq + 1) & 0xFF
        pos += len(chunk)
        if len(chunk) < MAX_CHUNK:
            return b"".join(parts)


class PacketReader:
    """Splits a byte stream into logical packets; see the module docstring.

    The reader checks that the physical packets of one split payload have
    consecutive sequence ids; sequence ids between logical packets are the
    caller's business (they restart at 0 with every command).
    """

    def __init__(self, *, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> None:
        self.max_packet_size = max_packet_size
        self._buf = bytearray()
        # Bytes that must be buffered before another scan can complete a packet;
        # keeps a large packet that arrives in many reads from being rescanned.
        self._wanted = HEADER_SIZE

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned by read_packets."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def read_packets(self) -> tuple[bytes, list[Packet]]:
        """Take every complete logical packet now buffered: (raw bytes, packets).

        Raises MessageTooLarge as soon as the headers seen announce a payload
        above max_packet_size, and ProtocolError when the physical packets of
        a split payload do not have consecutive sequence ids.
        """
        buf = self._buf
        size = len(buf)
        if size < self._wanted:
            return b"", []
        packets: list[Packet] = []
        pos = 0
        while True:
            packet = self._scan_one(buf, pos, size)
            if packet is None:
                break
            packets.append(packet)
            pos = packet.end

        if pos == 0:
            return b"", packets
        if pos == size:
            block = bytes(buf)
            buf.clear()
        else:
            with memoryview(buf) as view:
                block = bytes(view[:pos])
            del buf[:pos]
        self._wanted -= pos
        return block, packets

    def _scan_one(self, buf: bytearray, start: int, size: int) -> Packet | None:
        """The packet starting at start, or None (and _wanted set) if incomplete."""
        limit = self.max_packet_size
        pos = start
        total = 0
        first_seq = seq = -1
        while True:
            if size - pos < HEADER_SIZE:
                self._wanted = pos + HEADER_SIZE
                return None
            length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
            chunk_seq = buf[pos + 3]
            if first_seq < 0:
                first_seq = chunk_seq
            elif chunk_seq != (seq + 1) & 0xFF:
                raise ProtocolError(
                    f"continuation packet has sequence id {chunk_seq}, "
                    f"expected {(seq + 1) & 0xFF}"
                )
            seq = chunk_seq
            total += length
            if total > limit:
                raise MessageTooLarge(total, limit)
            end = pos + HEADER_SIZE + length
            if end > size:
                self._wanted = end
                return None
            if length < MAX_CHUNK:
                break
            pos = end
        first_byte = buf[start + HEADER_SIZE] if total else -1
        self._wanted = end + HEADER_SIZE
        return Packet(first_seq, seq, start, end, total, first_byte)

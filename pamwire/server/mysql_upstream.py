"""Opening an authenticated MySQL/MariaDB connection to a target, as a client would.

pamwire reads the server's handshake, answers it with the target's credential
through auth.ClientLogin (which follows auth switches and caching_sha2's RSA
exchange), and keeps the handshake: its connection id is what a KILL must name
upstream, its version picks the SQL dialect. The capabilities requested are the
client's, so both legs frame packets alike. With the target's tls set and
CLIENT_SSL in the server's greeting, an SSL request goes first and the login
continues inside TLS, where caching_sha2's full authentication sends the
password as it is instead of RSA-encrypting it.
"""

from __future__ import annotations

import collections
import contextlib
import logging

import attrs
import trio

from pamwire.errors import AuthenticationError, ProtocolError
from pamwire.mysql import codec
from pamwire.mysql import messages as m
from pamwire.mysql.auth import DEFAULT_CHARACTER_SET, ClientLogin, LoginRefused
from pamwire.mysql.constants import Command
from pamwire.mysql.packets import Packet, PacketReader, frame, payload
from pamwire.mysql.results import ReplyTracker, Step
from pamwire.server import tls as tls_
from pamwire.server.credentials import UpstreamCredential

log = logging.getLogger("pamwire.mysql.upstream")

_RECEIVE_SIZE = 1 << 16


class UpstreamUnavailable(Exception):
    """The target could not be reached or did not speak the protocol."""


class UpstreamRefused(Exception):
    """The server refused the login; `error` is its ERR packet, to forward."""

    def __init__(self, error: m.ErrPacket) -> None:
        super().__init__(error.error_message)
        self.error = error


class PacketStream:
    """Logical packets read from a stream one at a time, with their raw block.

    Several packets of one read share a block; next() hands out (block, packet)
    pairs in order, so a caller can forward a packet's wire bytes untouched.
    """

    def __init__(self, stream: trio.abc.Stream, reader: PacketReader) -> None:
        self.stream = stream
        self.reader = reader
        self.pending: collections.deque[tuple[bytes, Packet]] = collections.deque()

    async def next(self) -> tuple[bytes, Packet] | None:
        """The next packet, or None at end of stream. ProtocolError from the reader."""
        while not self.pending:
            block, packets = self.reader.read_packets()
            if packets:
                self.pending.extend((block, packet) for packet in packets)
                break
            data = await self.stream.receive_some(_RECEIVE_SIZE)
            if not data:
                return None
            self.reader.feed(data)
        return self.pending.popleft()

    @property
    def has_pending(self) -> bool:
        return bool(self.pending) or self.reader.buffered > 0


@attrs.define
class UpstreamConnection:
    """A logged-in upstream connection and what the server said while logging in."""

    packets: PacketStream
    handshake: m.HandshakeV10
    capabilities: int
    ok: m.OkPacket

    @property
    def stream(self) -> trio.abc.Stream:
        return self.packets.stream

    @property
    def connection_id(self) -> int:
        return self.handshake.connection_id

    @property
    def server_version(self) -> str:
        return self.handshake.server_version


async def connect(
    host: str,
    port: int,
    *,
    database: str | None,
    credential: UpstreamCredential,
    capabilities: int,
    character_set: int,
    max_packet_size: int,
    connect_attrs: tuple[tuple[str, str], ...] | None,
    timeout: float,
    tls: tls_.UpstreamTls = tls_.NO_TLS,
) -> UpstreamConnection:
    """Connect (over TLS as `tls` says) and log in; raises UpstreamUnavailable
    (also for a TLS failure or a server without TLS when it is required) or
    UpstreamRefused."""
    with trio.move_on_after(timeout) as scope:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UpstreamUnavailable(
                f"cannot connect to {host}:{port}: {reason}"
            ) from None
        login = ClientLogin(
            username=credential.user,
            password=credential.password,
            database=database,
            capabilities=capabilities,
            character_set=character_set,
            max_packet_size=max_packet_size,
            connect_attrs=connect_attrs,
        )
        packets = PacketStream(stream, PacketReader())
        try:
            return await _login(packets, login, tls, host)
        except BaseException:
            await trio.aclose_forcefully(packets.stream)
            raise
    assert scope.cancelled_caught
    raise UpstreamUnavailable(f"no answer from {host}:{port} within {timeout:g} s")


async def _login(
    packets: PacketStream, login: ClientLogin, tls: tls_.UpstreamTls, host: str
) -> UpstreamConnection:
    """Log in on `packets`; on TLS, packets.stream becomes the TLS stream."""
    try:
        block, packet = await _next(packets)
        greeting = codec.decode_handshake(payload(block, packet))
        if isinstance(greeting, m.ErrPacket):
            raise UpstreamRefused(greeting)
        response = login.handshake_response(greeting)
        seq = 1
        if tls.wanted and greeting.capabilities & codec.SSL:
            if packets.has_pending:
                raise UpstreamUnavailable("server sent data before the ssl request")
            response = attrs.evolve(
                response, capability_flags=response.capability_flags | codec.SSL
            )
            await _start_tls(packets, response, tls, host)
            login.secure_transport = True
            seq = 2
        elif tls.required:
            raise UpstreamUnavailable(
                f"server does not offer tls (tls is {tls.mode!r})"
            )
        stream = packets.stream
        await stream.send_all(codec.encode(response, login.capabilities, seq))
        while not login.done:
            block, packet = await _next(packets)
            answer = login.on_server_packet(payload(block, packet))
            if answer is not None:
                await stream.send_all(
                    frame(answer, (packet.last_sequence_id + 1) & 0xFF)
                )
    except LoginRefused as exc:
        raise UpstreamRefused(exc.err) from None
    except (AuthenticationError, ProtocolError) as exc:
        raise UpstreamUnavailable(f"login failed: {exc}") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise UpstreamUnavailable(f"connection lost during login: {exc}") from None
    assert login.ok is not None
    return UpstreamConnection(packets, greeting, login.capabilities, login.ok)


async def _start_tls(
    packets: PacketStream,
    response: m.HandshakeResponse41,
    tls: tls_.UpstreamTls,
    host: str,
) -> None:
    """Send the SSL request (the response's first 32 bytes) and run TLS."""
    request = m.SSLRequest(
        response.capability_flags,
        response.max_packet_size,
        response.character_set,
        response.reserved,
        response.extended_capabilities,
    )
    await packets.stream.send_all(codec.encode(request, response.capability_flags, 1))
    try:
        packets.stream = await tls_.connect(packets.stream, tls, host)
    except tls_.TlsHandshakeError as exc:
        raise UpstreamUnavailable(str(exc)) from None


async def _next(packets: PacketStream) -> tuple[bytes, Packet]:
    got = await packets.next()
    if got is None:
        raise UpstreamUnavailable("server closed the connection during login")
    return got


async def close_with_quit(conn: UpstreamConnection, caps: int) -> None:
    """Say COM_QUIT to the server (for a second at most) and close the connection."""
    with trio.move_on_after(1):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await conn.stream.send_all(codec.encode(m.ComQuit(), caps, 0))
    await trio.aclose_forcefully(conn.stream)


async def probe_version(host: str, port: int, *, timeout: float) -> str | None:
    """The server version a server greets with, without logging in; None if silent.

    The server sends its handshake as soon as the connection opens, so this
    costs one round trip; the connection is then closed.
    """
    with trio.move_on_after(timeout):
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError:
            return None
        try:
            packets = PacketStream(stream, PacketReader(max_packet_size=1 << 16))
            got = await packets.next()
            if got is None:
                return None
            greeting = codec.decode_handshake(payload(*got))
            if isinstance(greeting, m.HandshakeV10):
                return greeting.server_version
        except (ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        finally:
            await trio.aclose_forcefully(stream)
    return None


async def query_rows(
    conn: UpstreamConnection, sql: str
) -> tuple[list[tuple[bytes | None, ...]], m.ErrPacket | None, int]:
    """Run one statement of pamwire's own: (text rows, ERR or None, final status).

    For short internal queries only (the rows are decoded and kept). Raises
    ServerProtocolError for a reply that breaks the protocol.
    """
    caps = conn.capabilities
    await conn.stream.send_all(codec.encode(m.ComQuery(sql), caps, 0))
    tracker = ReplyTracker(Command.COM_QUERY, caps)
    rows: list[tuple[bytes | None, ...]] = []
    while not tracker.done:
        got = await conn.packets.next()
        if got is None:
            raise UpstreamUnavailable("server closed the connection")
        block, packet = got
        step = tracker.feed_packet(block, packet)
        if step is Step.ROW:
            row = codec.decode_text_row(payload(block, packet), tracker.column_count)
            rows.append(row.values)
    assert tracker.outcome is not None
    return rows, tracker.outcome.error, tracker.outcome.status_flags


async def kill(
    host: str,
    port: int,
    credential: UpstreamCredential,
    connection_id: int,
    *,
    query_only: bool,
    timeout: float,
    tls: tls_.UpstreamTls = tls_.NO_TLS,
) -> m.ErrPacket | None:
    """KILL [QUERY] an upstream connection over a connection of its own account.

    Returns the server's ERR if it refused, None on success; raises
    UpstreamUnavailable or UpstreamRefused when the side connection fails.
    """
    conn = await connect(
        host,
        port,
        database=None,
        credential=credential,
        capabilities=codec.SUPPORTED_CAPABILITIES & ~codec.CONNECT_WITH_DB,
        character_set=DEFAULT_CHARACTER_SET,
        max_packet_size=1 << 24,
        connect_attrs=None,
        timeout=timeout,
        tls=tls,
    )
    try:
        with trio.fail_after(timeout):
            what = "QUERY " if query_only else "CONNECTION "
            _, error, _ = await query_rows(conn, f"KILL {what}{int(connection_id)}")
            return error
    except trio.TooSlowError:
        raise UpstreamUnavailable("kill did not complete in time") from None
    finally:
        with trio.move_on_after(1):
            with contextlib.suppress(
                trio.BrokenResourceError, trio.ClosedResourceError
            ):
                await conn.stream.send_all(codec.encode(m.ComQuit(), 0, 0))
        await trio.aclose_forcefully(conn.stream)

"""Opening an authenticated PostgreSQL connection to a target, as a client would.

pamwire answers whatever authentication the server asks for (SCRAM-SHA-256, MD5,
cleartext) with the credential it holds for the target, then collects the startup
messages (ParameterStatus, BackendKeyData) up to the first ReadyForQuery. With the
target's tls set, an SSLRequest comes first; the one-byte answer is read alone, so
bytes a server (or someone on the path) sends after its 'S' can only reach the TLS
handshake, never the protocol (CVE-2021-23222).
"""

from __future__ import annotations

import logging

import attrs
import trio

from pamwire.errors import AuthenticationError, ProtocolError
from pamwire.pg import auth
from pamwire.pg.codec import Frame, FrameReader, decode_backend, encode, payload
from pamwire.pg.messages import (
    AuthenticationCleartextPassword,
    AuthenticationMD5Password,
    AuthenticationOk,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    BackendKeyData,
    BackendMessage,
    CancelRequest,
    ErrorResponse,
    NegotiateProtocolVersion,
    NoticeResponse,
    ParameterStatus,
    PasswordMessage,
    ReadyForQuery,
    SASLInitialResponse,
    SASLResponse,
    SSLRequest,
    StartupMessage,
)
from pamwire.server import tls as tls_
from pamwire.server.credentials import UpstreamCredential

log = logging.getLogger("pamwire.pg.upstream")

# Startup parameters that pamwire sets itself, or never passes on.
_RESERVED_PARAMS = frozenset({"user", "database", "replication"})


class UpstreamUnavailable(Exception):
    """The target could not be reached or did not speak the protocol."""


class UpstreamRefused(Exception):
    """The server refused the login; `raw` is its ErrorResponse, to forward as is."""

    def __init__(self, error: ErrorResponse, raw: bytes) -> None:
        super().__init__(error.message)
        self.error = error
        self.raw = raw


@attrs.define
class UpstreamConnection:
    """A logged-in upstream connection and what the server said during startup."""

    stream: trio.abc.Stream
    reader: FrameReader
    process_id: int
    secret_key: bytes
    startup_messages: list[bytes]  # ParameterStatus and NoticeResponse, raw
    parameters: dict[str, str]
    status: bytes
    leftover: bytes  # frames the server sent right after ReadyForQuery


async def connect(
    host: str,
    port: int,
    database: str,
    credential: UpstreamCredential,
    client_params: dict[str, str],
    *,
    timeout: float,
    tls: tls_.UpstreamTls = tls_.NO_TLS,
) -> UpstreamConnection:
    """Connect (over TLS as `tls` says) and log in; raises UpstreamUnavailable
    (also for a TLS failure or a server without TLS when it is required) or
    UpstreamRefused."""
    with trio.move_on_after(timeout) as scope:
        try:
            socket_stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise UpstreamUnavailable(
                f"cannot connect to {host}:{port}: {reason}"
            ) from None
        stream: trio.abc.Stream = socket_stream
        try:
            if tls.wanted:
                stream = await _start_tls(socket_stream, tls, host)
            return await _login(stream, database, credential, client_params)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
    assert scope.cancelled_caught
    raise UpstreamUnavailable(f"no answer from {host}:{port} within {timeout:g} s")


async def _start_tls(
    stream: trio.SocketStream, tls: tls_.UpstreamTls, host: str
) -> trio.abc.Stream:
    """Ask for TLS with an SSLRequest; the TLS stream, or the plain one when
    the server declines and tls is prefer."""
    try:
        await stream.send_all(encode(SSLRequest()))
        answer = await stream.receive_some(1)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise UpstreamUnavailable(f"connection lost asking for tls: {exc}") from None
    if answer == b"S":
        try:
            return await tls_.connect(stream, tls, host)
        except tls_.TlsHandshakeError as exc:
            raise UpstreamUnavailable(str(exc)) from None
    if answer == b"N" and not tls.required:
        log.debug("server %s declined tls; tls is prefer, going on in plaintext", host)
        return stream
    if answer == b"N":
        raise UpstreamUnavailable(f"server does not accept tls (tls is {tls.mode!r})")
    raise UpstreamUnavailable(f"server answered the ssl request with {answer!r}")


async def _login(
    stream: trio.abc.Stream,
    database: str,
    credential: UpstreamCredential,
    client_params: dict[str, str],
) -> UpstreamConnection:
    params = {k: v for k, v in client_params.items() if k not in _RESERVED_PARAMS}
    params = {"user": credential.user, "database": database, **params}
    await stream.send_all(
        encode(
            StartupMessage(protocol_version=196608, parameters=tuple(params.items()))
        )
    )
    reader = FrameReader()
    messages = _Messages(stream, reader)
    scram: auth.ScramClient | None = None
    startup: list[bytes] = []
    parameters: dict[str, str] = {}
    pid, key = 0, b""
    while True:
        message, raw = await messages.next()
        if isinstance(message, ErrorResponse):
            raise UpstreamRefused(message, raw)
        if isinstance(message, AuthenticationOk):
            continue
        if isinstance(message, AuthenticationCleartextPassword):
            token = auth.cleartext_password_response(credential.password)
            await stream.send_all(encode(PasswordMessage(data=token + b"\0")))
        elif isinstance(message, AuthenticationMD5Password):
            token = auth.md5_password_response(
                credential.user, credential.password, message.salt
            )
            await stream.send_all(encode(PasswordMessage(data=token + b"\0")))
        elif isinstance(message, AuthenticationSASL):
            if "SCRAM-SHA-256" not in message.mechanisms:
                raise UpstreamUnavailable(
                    "server offers no supported SASL mechanism: "
                    + ", ".join(message.mechanisms)
                )
            scram = auth.ScramClient(credential.user, credential.password)
            first = SASLInitialResponse(
                mechanism=scram.mechanism, data=scram.client_first()
            )
            await stream.send_all(encode(first))
        elif isinstance(message, AuthenticationSASLContinue) and scram is not None:
            # The salted password hash takes milliseconds: keep it off the event loop.
            final = await trio.to_thread.run_sync(scram.server_first, message.data)
            await stream.send_all(encode(SASLResponse(data=final)))
        elif isinstance(message, AuthenticationSASLFinal) and scram is not None:
            try:
                scram.server_final(message.data)
            except AuthenticationError:
                raise UpstreamUnavailable("server failed SCRAM verification") from None
        elif isinstance(message, BackendKeyData):
            pid, key = message.process_id, message.secret_key
        elif isinstance(message, ParameterStatus):
            parameters[message.name] = message.value
            startup.append(raw)
        elif isinstance(message, NoticeResponse | NegotiateProtocolVersion):
            if isinstance(message, NoticeResponse):
                startup.append(raw)
        elif isinstance(message, ReadyForQuery):
            return UpstreamConnection(
                stream,
                reader,
                pid,
                key,
                startup,
                parameters,
                message.status,
                messages.leftover(),
            )
        else:
            name = type(message).__name__
            raise UpstreamUnavailable(
                f"server asked for unsupported authentication: {name}"
            )


class _Messages:
    """Decoded startup-phase messages, one at a time, from a frame reader."""

    def __init__(self, stream: trio.abc.Stream, reader: FrameReader) -> None:
        self._stream = stream
        self._reader = reader
        self._block = b""
        self._frames: list[Frame] = []

    def leftover(self) -> bytes:
        """Raw bytes of frames read but not yet consumed (sent after ReadyForQuery)."""
        if not self._frames:
            return b""
        return self._block[self._frames[0].start - 5 :]

    async def next(self) -> tuple[BackendMessage, bytes]:
        while not self._frames:
            data = await self._stream.receive_some(65536)
            if not data:
                raise UpstreamUnavailable("server closed the connection during login")
            self._reader.feed(data)
            try:
                self._block, self._frames = self._reader.read_frames()
            except ProtocolError as exc:
                raise UpstreamUnavailable(
                    f"server sent an invalid message: {exc}"
                ) from None
        frame = self._frames.pop(0)
        raw = self._block[frame.start - 5 : frame.end]
        try:
            return decode_backend(frame.type, payload(self._block, frame)), raw
        except ProtocolError as exc:
            raise UpstreamUnavailable(
                f"server sent an invalid message: {exc}"
            ) from None


async def send_cancel(host: str, port: int, process_id: int, secret_key: bytes) -> None:
    """Send a CancelRequest for an upstream backend; failures are logged, not raised."""
    try:
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                request = CancelRequest(process_id=process_id, secret_key=secret_key)
                await stream.send_all(encode(request))
                # The server closes the connection without answering.
                await stream.receive_some(1)
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        log.warning("cancel request to %s:%s failed: %s", host, port, exc)

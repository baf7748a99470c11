"""A small raw PostgreSQL protocol client for tests, built on pamwire's own codec.

It sends exactly the bytes a test builds (message builders Q, P, B, D, E, S, H, C,
startup packets) over a plain blocking socket and reads decoded backend messages
with a deadline, so a proxy that hangs fails the test instead of blocking it.
SCRAM-SHA-256 login uses pamwire.pg.auth.ScramClient, so the same helper logs in
to pamwire and directly to PostgreSQL.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterable, Sequence

import attrs

from pamwire.pg import messages as m
from pamwire.pg.auth import ScramClient
from pamwire.pg.codec import FrameReader, decode_backend, encode, payload

HOST = "127.0.0.1"

# No test waits longer than this for one reply; the brief caps socket waits at 10 s.
DEFAULT_TIMEOUT = 10.0

SSLREQ = encode(m.SSLRequest())
GSSREQ = encode(m.GSSENCRequest())


class WireError(AssertionError):
    """The peer did not answer as expected in time; carries what did arrive."""

    def __init__(self, reason: str, received: Sequence[m.BackendMessage]) -> None:
        super().__init__(f"{reason}; received {types(received)!r}: {received!r}")
        self.received = list(received)


class WireTimeout(WireError):
    """Nothing (or not enough) arrived before the deadline."""


class WireClosed(WireError):
    """The peer closed the connection."""


class LoginFailed(AssertionError):
    """The server answered the login with an ErrorResponse."""

    def __init__(self, error: m.ErrorResponse, received: list[m.BackendMessage]):
        super().__init__(f"login failed: {error.code} {error.message}")
        self.error = error
        self.received = received


# -- message builders, named after the protocol's type bytes ----------------------


def msg(type_: bytes, body: bytes = b"") -> bytes:
    """Any typed message from its type byte and raw body (length added here)."""
    return type_ + struct.pack(">i", len(body) + 4) + body


def startup(params: dict[str, str], version: int = m.PROTOCOL_3_0) -> bytes:
    return encode(m.StartupMessage(version, tuple(params.items())))


def cancel(process_id: int, key: bytes) -> bytes:
    return encode(m.CancelRequest(process_id, key))


def Q(sql: str) -> bytes:
    return encode(m.Query(sql))


def P(name: str, sql: str, types: Iterable[int] = ()) -> bytes:
    return encode(m.Parse(name, sql, tuple(types)))


def B(
    portal: str = "",
    stmt: str = "",
    params: Sequence[bytes | None] = (),
    result_formats: Sequence[int] = (),
) -> bytes:
    return encode(m.Bind(portal, stmt, (), tuple(params), tuple(result_formats)))


def D(kind: bytes = b"P", name: str = "") -> bytes:
    return encode(m.Describe(kind, name))


def E(portal: str = "", max_rows: int = 0) -> bytes:
    return encode(m.Execute(portal, max_rows))


def C(kind: bytes = b"S", name: str = "") -> bytes:
    return encode(m.Close(kind, name))


S = encode(m.Sync())
H = encode(m.Flush())
X = encode(m.Terminate())


def types(messages: Iterable[m.BackendMessage]) -> str:
    """The type bytes of messages as one string, e.g. "12TDCZ"."""
    return "".join(message.type_code.decode("ascii") for message in messages)


def of_type(messages: Iterable[m.BackendMessage], type_: str) -> list[m.BackendMessage]:
    return [x for x in messages if x.type_code == type_.encode("ascii")]


def errors(messages: Iterable[m.BackendMessage]) -> list[m.ErrorResponse]:
    return [x for x in messages if isinstance(x, m.ErrorResponse)]


def rows(messages: Iterable[m.BackendMessage]) -> list[tuple[str | None, ...]]:
    """The text values of every DataRow, in order."""
    return [
        tuple(None if v is None else v.decode() for v in x.values)
        for x in messages
        if isinstance(x, m.DataRow)
    ]


def tags(messages: Iterable[m.BackendMessage]) -> list[str]:
    return [x.tag for x in messages if isinstance(x, m.CommandComplete)]


def shape(messages: Iterable[m.BackendMessage]) -> list[tuple[str, object]]:
    """What two runs of the same bytes should agree on: types, tags, rows, SQLSTATEs.

    Error texts differ legitimately (pamwire's denials, server positions), so only
    the SQLSTATE and severity of errors are kept.
    """
    out: list[tuple[str, object]] = []
    for x in messages:
        if isinstance(x, m.ErrorResponse):
            out.append(("E", (x.severity, x.code)))
        elif isinstance(x, m.CommandComplete):
            out.append(("C", x.tag))
        elif isinstance(x, m.DataRow):
            out.append(("D", x.values))
        elif isinstance(x, m.ReadyForQuery):
            out.append(("Z", x.status))
        elif isinstance(x, m.ParameterDescription):
            out.append(("t", x.type_oids))
        elif isinstance(x, m.RowDescription):
            out.append(("T", tuple((f.name, f.type_oid) for f in x.fields)))
        elif isinstance(x, m.NoticeResponse | m.ParameterStatus):
            continue  # notices and settings reports may differ in number
        else:
            out.append((x.type_code.decode(), None))
    return out


# -- the connection -----------------------------------------------------------------


@attrs.define
class LoginResult:
    """What the server sent between the StartupMessage and the first ReadyForQuery."""

    messages: list[m.BackendMessage]
    key: m.BackendKeyData | None
    parameters: dict[str, str]
    status: bytes


class RawConn:
    """One blocking socket plus a FrameReader; every read has a deadline."""

    def __init__(self, port: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.port = port
        self.timeout = timeout
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = FrameReader()
        self._pending: list[m.BackendMessage] = []
        self.recv_calls = 0
        self.key: m.BackendKeyData | None = None
        self.login_result: LoginResult | None = None

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_slowly(self, data: bytes, pieces: Sequence[int], pause: float) -> None:
        """Send data cut at the given piece sizes (the rest last), pausing between."""
        pos = 0
        for size in pieces:
            self.sock.sendall(data[pos : pos + size])
            pos += size
            time.sleep(pause)
        if pos < len(data):
            self.sock.sendall(data[pos:])

    # -- reading -------------------------------------------------------------------

    def recv_exact(self, count: int, timeout: float | None = None) -> bytes:
        """Exactly count raw, unframed bytes (answers to SSLRequest, GSSENCRequest)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        data = b""
        while len(data) < count:
            chunk = self._recv(count - len(data), deadline, [])
            data += chunk
        return data

    def _recv(
        self, size: int, deadline: float, received: list[m.BackendMessage]
    ) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WireTimeout("timed out", received)
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(size)
        except TimeoutError:
            raise WireTimeout("timed out", received) from None
        except ConnectionResetError:
            raise WireClosed("connection reset", received) from None
        self.recv_calls += 1
        if not data:
            raise WireClosed("connection closed", received)
        return data

    def _fill(self, deadline: float, received: list[m.BackendMessage]) -> None:
        data = self._recv(65536, deadline, received)
        self.reader.feed(data)
        block, frames = self.reader.read_frames()
        for frame in frames:
            self._pending.append(decode_backend(frame.type, payload(block, frame)))

    def read_message(self, timeout: float | None = None) -> m.BackendMessage:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self._pending:
            self._fill(deadline, [])
        return self._pending.pop(0)

    def read_until(
        self, type_: str, *, count: int = 1, timeout: float | None = None
    ) -> list[m.BackendMessage]:
        """Every message up to and including the count-th one of type_ (e.g. "Z")."""
        code = type_.encode("ascii")
        deadline = time.monotonic() + (timeout or self.timeout)
        received: list[m.BackendMessage] = []
        seen = 0
        while True:
            while self._pending:
                message = self._pending.pop(0)
                received.append(message)
                if message.type_code == code:
                    seen += 1
                    if seen == count:
                        return received
            self._fill(deadline, received)

    def read_messages(self, timeout: float) -> list[m.BackendMessage]:
        """Everything that arrives within timeout (a quiet period ends nothing early).

        Used to check that nothing more comes: returns early only if the peer closes.
        """
        deadline = time.monotonic() + timeout
        received: list[m.BackendMessage] = []
        while True:
            received += self._pending
            self._pending.clear()
            try:
                self._fill(deadline, received)
            except WireTimeout:
                return received
            except WireClosed:
                received += self._pending
                self._pending.clear()
                return received

    def expect_closed(self, timeout: float | None = None) -> list[m.BackendMessage]:
        """Read until the peer closes; WireTimeout if it keeps the socket open."""
        deadline = time.monotonic() + (timeout or self.timeout)
        received: list[m.BackendMessage] = []
        while True:
            received += self._pending
            self._pending.clear()
            try:
                self._fill(deadline, received)
            except WireClosed:
                received += self._pending
                self._pending.clear()
                return received

    def query(self, data: bytes, *, syncs: int = 1) -> list[m.BackendMessage]:
        """Send data and read through its syncs-th ReadyForQuery."""
        self.send(data)
        return self.read_until("Z", count=syncs)

    # -- login ---------------------------------------------------------------------

    def login(
        self,
        user: str,
        password: str,
        database: str,
        *,
        extra: dict[str, str] | None = None,
        version: int = m.PROTOCOL_3_0,
        sent_startup: bool = False,
    ) -> LoginResult:
        """Log in with SCRAM-SHA-256 (or cleartext if asked) and read to 'Z'.

        Raises LoginFailed if the server sends an ErrorResponse instead. Pass
        sent_startup=True when the test sent the StartupMessage bytes itself.
        """
        if not sent_startup:
            params = {"user": user, "database": database, **(extra or {})}
            self.send(startup(params, version))
        received: list[m.BackendMessage] = []
        scram: ScramClient | None = None
        while True:
            message = self.read_message()
            received.append(message)
            if isinstance(message, m.ErrorResponse):
                raise LoginFailed(message, received)
            if isinstance(message, m.AuthenticationSASL):
                scram = ScramClient(user, password)
                initial = m.SASLInitialResponse("SCRAM-SHA-256", scram.client_first())
                self.send(encode(initial))
            elif isinstance(message, m.AuthenticationSASLContinue):
                assert scram is not None
                self.send(encode(m.SASLResponse(scram.server_first(message.data))))
            elif isinstance(message, m.AuthenticationSASLFinal):
                assert scram is not None
                scram.server_final(message.data)
            elif isinstance(message, m.AuthenticationCleartextPassword):
                self.send(encode(m.PasswordMessage.from_password(password)))
            elif isinstance(message, m.ReadyForQuery):
                break
        keys = [x for x in received if isinstance(x, m.BackendKeyData)]
        self.key = keys[0] if keys else None
        parameters = {
            x.name: x.value for x in received if isinstance(x, m.ParameterStatus)
        }
        return LoginResult(received, self.key, parameters, message.status)


def connect(
    port: int,
    user: str,
    password: str,
    database: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    extra: dict[str, str] | None = None,
) -> RawConn:
    """A logged-in RawConn; the login messages are in conn.login_result."""
    conn = RawConn(port, timeout=timeout)
    try:
        conn.login_result = conn.login(user, password, database, extra=extra)
    except BaseException:
        conn.close()
        raise
    return conn


def send_cancel(port: int, key: m.BackendKeyData, *, timeout: float = 5.0) -> bytes:
    """Send a CancelRequest on a new connection; returns what came back (nothing)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(cancel(key.process_id, key.secret_key))
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return data

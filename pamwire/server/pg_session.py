"""One PostgreSQL client session: startup, login, then two checked relays.

Theory of operation. After the client logs in to pamwire (SCRAM-SHA-256) and pamwire
logs in to the target, two tasks move bytes. The client-to-server task splits what it
reads into frames, decodes only the messages that carry SQL or names (Query, Parse,
Bind, Execute, Close, FunctionCall), decides each statement and writes its audit
event before forwarding the block. The server-to-client task splits replies into
frames and looks only at their type bytes, decoding the few that end a statement; row
data passes through untouched.

A denied statement is not answered by pamwire directly. It is replaced by a *poison*:
a Query or Parse whose text is one unique identifier, which the server rejects with a
syntax error exactly where the real statement's error would have been. The server
therefore keeps pipeline and transaction semantics itself (skip until Sync, abort the
transaction block, one ReadyForQuery per Sync), and pamwire rewrites that one error
into the denial the client sees.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import secrets

import attrs
import trio

from pamwire.audit.events import AuditEvent, Completion
from pamwire.audit.params import (
    Params,
    names_a_secret,
    pg_params,
    without_literals,
)
from pamwire.audit.recording import SessionRecorder
from pamwire.audit.store import AuditWriteError
from pamwire.config import Target
from pamwire.errors import (
    AuthenticationError,
    MessageTooLarge,
    PamwireError,
    ProtocolError,
)
from pamwire.grants.credentials import requested_role, split_login
from pamwire.pg import replies, startup
from pamwire.pg.auth import ScramServer
from pamwire.pg.codec import (
    Frame,
    FrameReader,
    command_tag,
    decode_backend,
    decode_frontend,
    decode_startup,
    encode,
    payload,
    ready_status,
)
from pamwire.pg.messages import (
    Bind,
    CancelRequest,
    Close,
    ErrorResponse,
    Execute,
    GSSENCRequest,
    ParameterStatus,
    Parse,
    Query,
    SSLRequest,
    StartupMessage,
    Terminate,
    parse_sasl_initial_response,
)
from pamwire.pg.tracker import ExchangeTracker, Op, Outcome
from pamwire.rules.engine import Decision, RuleContext
from pamwire.server import pg_upstream
from pamwire.server.context import ServerContext
from pamwire.server.credentials import SessionLogin
from pamwire.server.session_events import SessionEvents, peer_address
from pamwire.server.tls import ServerTls, TlsHandshakeError
from pamwire.server.tls import accept as tls_accept
from pamwire.sql import pg as pg_sql
from pamwire.sql.encodings import is_unsafe_client_encoding
from pamwire.sql.facts import Analysis, StatementFacts
from pamwire.sql.redact import redact_pg

log = logging.getLogger("pamwire.pg.session")

_PROTOCOL_30 = 3 << 16

# Largest message accepted before login: SASL messages are a few hundred bytes.
LOGIN_MESSAGE_LIMIT = 64 * 1024
_SESSION_IDS = itertools.count(1)

# Frame type bytes, as ints, for the dispatch below (protocol docs, "Message Formats").
_Q, _P, _B, _E, _C, _F, _X = (ord(c) for c in "QPBECFX")
_D, _H, _S = ord("D"), ord("H"), ord("S")
_COPY_DATA, _COPY_DONE, _COPY_FAIL = ord("d"), ord("c"), ord("f")
_B_ERROR, _B_READY, _B_COMPLETE, _B_EMPTY = ord("E"), ord("Z"), ord("C"), ord("I")
_B_PARSE_OK, _B_BIND_OK, _B_CLOSE_OK = ord("1"), ord("2"), ord("3")
_B_NO_DATA, _B_ROW_DESC, _B_SUSPENDED = ord("n"), ord("T"), ord("s")
_B_COPY_IN, _B_PARAM_STATUS = ord("G"), ord("S")


class SessionEnd(Exception):
    """The session is over; the client has been told why if it could be."""


@attrs.define
class _Prepared:
    """A statement name pamwire saw prepared, with what it decided for it."""

    text: str
    facts: StatementFacts | None
    decision: Decision
    # The search_path the statement was decided with: the server resolves names
    # again when search_path changes, so pamwire decides again too.
    search_path: tuple[str, ...] = ()
    # The parameter types Parse declared (0: left to the server).
    param_types: tuple[int, ...] = ()
    # The rule set that decided it: after a reload (SIGHUP) it is decided again.
    rules: object = None
    # Whether values bound to it are kept out of the trail even when a target
    # keeps values (names_a_secret); found at its first Bind that needs it.
    secret: bool | None = None


class PgSession:
    """Serves one client connection from its first byte to its close."""

    def __init__(
        self,
        ctx: ServerContext,
        stream: trio.SocketStream,
        max_message_size: int,
        *,
        login_timeout: float = 60.0,
        max_clients: int = 1000,
        tls: ServerTls | None = None,
    ) -> None:
        self.login_timeout = login_timeout
        self.max_clients = max_clients
        self.ctx = ctx
        self.client: trio.abc.Stream = stream
        self.tls = tls
        self.encrypted = False
        self._handshaking = False
        self.id = secrets.token_hex(6)
        self.events = SessionEvents("postgres", ctx.literals.then(redact_pg))
        self.conn_no = next(_SESSION_IDS)
        self.reader = FrameReader(startup=True, max_message_size=max_message_size)
        self.peer = peer_address(stream)
        self.user: str | None = None
        self.target: Target | None = None
        self.application: str | None = None
        self.upstream: pg_upstream.UpstreamConnection | None = None
        self.upstream_user: str | None = None
        self.login: SessionLogin | None = None
        self.end_reason: str | None = None
        self.recorder: SessionRecorder | None = None
        self._rules_context: RuleContext | None = None
        self._relay_scope: trio.CancelScope | None = None
        # Set while later client messages wait for the server to apply a setting
        # that changes how statements are read (see _settle).
        self._settling: trio.Event | None = None
        self._parse_settings_touched = False
        self.tracker = ExchangeTracker()
        # Prepared statements by name, whether made by Parse or by SQL PREPARE:
        # the server keeps both in one namespace, and so does pamwire.
        self.statements: dict[str, _Prepared] = {}
        # Portal name: the statement it binds, and its params as the trail keeps them.
        self.portals: dict[str, tuple[str, Params | None]] = {}
        self.poison_prefix = f"pamwire_denied_{secrets.token_hex(4)}_"
        self.poison_re = re.compile(re.escape(self.poison_prefix) + r"(\d+)")
        self.poisons: dict[int, bytes] = {}
        self.poison_no = itertools.count(1)
        self.settings: dict[str, str] = {}
        # Schemas an unqualified table name may resolve to. The analyser counts a
        # name in every one of them, so this only ever grows: SET LOCAL, a rolled
        # back SET or RESET can then never make pamwire miss the real schema.
        self.search_path: tuple[str, ...] = ("public",)
        self.key = (secrets.randbits(31) or 1, secrets.token_bytes(4))
        self.client_eof = False
        self.terminated = False

    # -- entry point --

    async def serve(self) -> None:
        """Run the session; never raises for anything a peer did."""
        log.debug("conn %s: accepted from %s", self.conn_no, self.peer)
        try:
            # Until the login is done, a client gets little memory and little
            # time: it has not proved who it is yet.
            limit = self.reader.max_message_size
            self.reader.max_message_size = min(limit, LOGIN_MESSAGE_LIMIT)
            with trio.move_on_after(self.login_timeout) as login_scope:
                startup = await self._negotiate()
                if startup is None:
                    return
                await self._login(startup)
            if login_scope.cancelled_caught:
                log.info("conn %s: login timed out", self.conn_no)
                if self._handshaking:
                    # The client waits for TLS records: plaintext is no answer.
                    raise SessionEnd
                await self._fatal(
                    replies.PROTOCOL_VIOLATION,
                    "canceling authentication due to timeout",
                )
            self.reader.max_message_size = limit
            await self._relay()
        except SessionEnd:
            pass
        except ProtocolError as exc:
            log.info("conn %s: client broke the protocol: %s", self.conn_no, exc)
            await self._send_quietly(
                replies.fatal(
                    replies.PROTOCOL_VIOLATION, f"pamwire: invalid message: {exc}"
                )
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.debug("conn %s: connection lost", self.conn_no)
        finally:
            await self._close()

    # -- startup --

    async def _negotiate(self) -> StartupMessage | None:
        """Answer encryption requests, relay cancels, return the StartupMessage.

        SSLRequest is answered 'S' and the handshake run when the listener has
        TLS, else 'N'; GSSENCRequest always 'N'. Once TLS is up, or a request
        of the same kind was answered, another request is a protocol error (as
        the server does). Bytes sent after an SSLRequest, before the answer,
        are refused by _read_frame: they would be read as if they had come
        through TLS (CVE-2021-23214).
        """
        seen_ssl = seen_gss = False
        while True:
            raw = await self._read_one()
            message = decode_startup(raw)
            if isinstance(message, SSLRequest | GSSENCRequest):
                is_ssl = isinstance(message, SSLRequest)
                if self.encrypted or (seen_ssl if is_ssl else seen_gss):
                    code = "1234.5679" if is_ssl else "1234.5680"
                    await self._fatal(
                        replies.FEATURE_NOT_SUPPORTED,
                        f"unsupported frontend protocol {code}: "
                        "encryption negotiation was already done",
                    )
                if is_ssl:
                    seen_ssl = True
                else:
                    seen_gss = True
                if is_ssl and self.tls is not None:
                    await self.client.send_all(replies.SSL_ACCEPTED)
                    await self._start_tls(self.tls)
                else:
                    await self.client.send_all(replies.SSL_NOT_SUPPORTED)
                continue
            if isinstance(message, CancelRequest):
                # Cancels carry no secret worth hiding; libpq sends them in
                # plaintext even on a TLS session, so they are taken either way.
                await self.ctx.cancels.cancel(message.process_id, message.secret_key)
                return None
            assert isinstance(message, StartupMessage)
            if self.tls is not None and self.tls.required and not self.encrypted:
                log.info(
                    "conn %s: plaintext client refused (tls require)", self.conn_no
                )
                await self._fatal(
                    replies.INVALID_AUTHORIZATION,
                    "pamwire: this listener requires TLS; connect with sslmode=require",
                )
            self.reader.startup = False
            return message

    async def _start_tls(self, tls: ServerTls) -> None:
        """Run the TLS handshake; a failed one ends the session (logged)."""
        self._handshaking = True
        try:
            self.client = await tls_accept(self.client, tls)
        except TlsHandshakeError as exc:
            log.info("conn %s: %s", self.conn_no, exc)
            raise SessionEnd from None
        self._handshaking = False
        self.encrypted = True
        log.debug("conn %s: tls established", self.conn_no)

    async def _read_one(self) -> bytes:
        """Read exactly one startup-phase packet's payload."""
        return (await self._read_frame())[1]

    async def _read_typed(self, expected: int) -> bytes:
        """Read one typed message of the login phase; anything else is an error."""
        frame_type, body = await self._read_frame()
        if frame_type != expected:
            raise ProtocolError(
                f"expected message type {chr(expected)!r}, got {chr(frame_type)!r}"
            )
        return body

    async def _read_frame(self) -> tuple[int, bytes]:
        # Before login completes the client must wait for each answer, so more than
        # one frame in a read is a protocol error.
        while True:
            block, frames = self.reader.read_frames()
            if frames:
                frame = frames[0]
                if len(frames) > 1 or frame.end != len(block) or self.reader.buffered:
                    raise ProtocolError("client sent data before it was asked for")
                return frame.type, bytes(payload(block, frame))
            data = await self.client.receive_some(65536)
            if not data:
                raise SessionEnd
            self.reader.feed(data)

    async def _login(self, startup: StartupMessage) -> None:
        if len(self.ctx.sessions) >= self.max_clients:
            await self._fatal(
                replies.TOO_MANY_CONNECTIONS, "sorry, too many clients already"
            )
        params = dict(startup.parameters)
        minor = startup.protocol_version & 0xFFFF
        if startup.protocol_version >> 16 != 3:
            await self._fatal(
                replies.FEATURE_NOT_SUPPORTED, "unsupported protocol version"
            )
        unknown = tuple(k for k in params if k.startswith("_pq_."))
        if minor > 0 or unknown:
            await self.client.send_all(replies.negotiate_version(unknown))
        user = params.get("user")
        if not user:
            await self._fatal(
                replies.INVALID_AUTHORIZATION, "no user name in the startup packet"
            )
        assert user is not None
        try:
            person, login_role = split_login(user)
        except PamwireError as exc:
            await self._fatal(replies.INVALID_AUTHORIZATION, f"pamwire: {exc}")
        self.user = person
        self.application = params.get("application_name")
        if params.get("replication", "false").lower() not in (
            "false",
            "off",
            "no",
            "0",
        ):
            await self._fatal(
                replies.FEATURE_NOT_SUPPORTED,
                "pamwire: replication connections are not supported",
            )
        await self._authenticate(person)
        await self._check_startup_settings(params)
        try:
            role = requested_role(params, login_role)
        except PamwireError as exc:
            await self._fatal(replies.INVALID_AUTHORIZATION, f"pamwire: {exc}")

        database = params.get("database") or person
        target = self.ctx.config.target_for("postgres", database)
        if target is None or target.protocol != "postgres":
            self._audit_nowait("login_failed", detail=f"unknown target {database!r}")
            await self._fatal(
                replies.INVALID_CATALOG_NAME,
                f'pamwire: no target named "{database}"',
                hint="The database name picks a pamwire target; "
                "ask an administrator for the target names.",
            )
        assert target is not None
        self.target = target
        await self._connect_upstream(target, params, role)

    async def _check_startup_settings(self, params: dict[str, str]) -> None:
        """Refuse startup settings that would weaken the checks; note search_path."""
        settings = startup.requested_settings(params)
        refused = startup.refused_settings(settings)
        if refused:
            names = ", ".join(refused)
            self._audit_nowait(
                "login_failed", detail=f"refused startup setting {names}"
            )
            await self._fatal(
                replies.INSUFFICIENT_PRIVILEGE,
                f"pamwire: startup setting {names} is not allowed "
                '(rule "startup-setting")',
            )
        for name, value in settings:
            if name == "client_encoding" and is_unsafe_client_encoding(value):
                await self._fatal(
                    replies.FEATURE_NOT_SUPPORTED, _encoding_refused(value)
                )
            if name == "search_path":
                assert self.user is not None
                self._widen_search_path(
                    startup.parse_search_path(value, user=self.user)
                )

    async def _authenticate(self, user: str) -> None:
        try:
            person = await trio.to_thread.run_sync(self.ctx.users.get, user)
        except PamwireError as exc:
            log.error("conn %s: cannot read person %r: %s", self.conn_no, user, exc)
            person = None
        verifier = person.scram if person is not None and not person.disabled else None
        server = ScramServer(verifier, user=user)
        await self.client.send_all(replies.sasl_start())
        try:
            first = parse_sasl_initial_response(await self._read_typed(ord("p")))
            if first.mechanism != "SCRAM-SHA-256" or first.data is None:
                raise AuthenticationError(
                    f"unsupported SASL mechanism {first.mechanism!r}"
                )
            await self.client.send_all(
                replies.sasl_continue(server.client_first(first.data))
            )
            final = await self._read_typed(ord("p"))
            server_final = server.client_final(final)
        except MessageTooLarge:
            raise  # a protocol error, answered as one
        except (AuthenticationError, ProtocolError) as exc:
            log.info("conn %s: login failed for %r: %s", self.conn_no, user, exc)
            self._audit_nowait("login_failed", detail=str(exc))
            await self._send_quietly(replies.password_failed(user))
            raise SessionEnd from None
        await self.client.send_all(replies.sasl_final(server_final))

    async def _connect_upstream(
        self, target: Target, params: dict[str, str], role: str | None
    ) -> None:
        assert self.user is not None
        try:
            login = await trio.to_thread.run_sync(
                self.ctx.credentials.login_for, self.user, target, role
            )
        except PamwireError as exc:
            log.info("conn %s: no login for %s: %s", self.conn_no, target.name, exc)
            self._audit_nowait("login_failed", detail=str(exc))
            await self._fatal(replies.INVALID_AUTHORIZATION, f"pamwire: {exc}")
        self.login = login
        credential = login.credential
        try:
            upstream = await pg_upstream.connect(
                target.host,
                target.port,
                target.database,
                credential,
                startup.for_upstream(params),
                timeout=target.connect_timeout,
                tls=self.ctx.tls_for(target),
            )
        except pg_upstream.UpstreamRefused as exc:
            log.info(
                "conn %s: target %s refused login: %s", self.conn_no, target.name, exc
            )
            self._audit_nowait(
                "login_failed", detail=f"upstream refused: {exc.error.message}"
            )
            await self._send_quietly(exc.raw)
            raise SessionEnd from None
        except (pg_upstream.UpstreamUnavailable, PamwireError) as exc:
            log.warning(
                "conn %s: target %s unavailable: %s", self.conn_no, target.name, exc
            )
            self._audit_nowait("login_failed", detail=f"target unavailable: {exc}")
            await self._fatal(
                replies.CANNOT_CONNECT,
                f'pamwire: target "{target.name}" is unavailable: {exc}',
            )
        encoding = upstream.parameters.get("client_encoding", "UTF8")
        if is_unsafe_client_encoding(encoding):
            # Set for the account on the server (ALTER ROLE ... SET): refused all
            # the same, since pamwire would read statements differently.
            await trio.aclose_forcefully(upstream.stream)
            await self._fatal(
                replies.FEATURE_NOT_SUPPORTED, _encoding_refused(encoding)
            )
        self.upstream = upstream
        self.upstream_user = credential.user
        self._widen_search_path((credential.user,))
        self.settings = dict(upstream.parameters)
        self.ctx.cancels.register(self.key, self)
        self.ctx.sessions.add(self)
        audit = self.ctx.config.audit
        self.recorder = SessionRecorder(
            self.id,
            max_rows_per_statement=audit.record_rows,
            max_bytes_per_session=audit.record_bytes,
        )
        await self._audit_write(self._event("session_start"))
        out = bytearray(replies.auth_ok())
        for raw in upstream.startup_messages:
            out += raw
        out += replies.backend_key(*self.key)
        out += replies.ready(upstream.status)
        out += upstream.leftover
        await self.client.send_all(bytes(out))
        log.info(
            "conn %s: session %s user=%s target=%s from %s",
            self.conn_no,
            self.id,
            self.user,
            target.name,
            self.peer,
        )

    # -- relaying --

    @property
    def grant_id(self) -> int | None:
        return self.login.grant_id if self.login is not None else None

    @property
    def role(self) -> str | None:
        return self.login.role if self.login is not None else None

    def end(self, reason: str) -> None:
        """End the session from outside (a grant ended): the client is told why."""
        if self.end_reason is None:
            self.end_reason = reason
        if self._relay_scope is not None:
            self._relay_scope.cancel()

    async def _relay(self) -> None:
        if self.end_reason is not None:
            return
        async with trio.open_nursery() as nursery:
            self._relay_scope = nursery.cancel_scope
            nursery.start_soon(self._client_to_server, nursery.cancel_scope)
            nursery.start_soon(self._server_to_client, nursery.cancel_scope)

    async def _client_to_server(self, scope: trio.CancelScope) -> None:
        assert self.upstream is not None
        upstream = self.upstream.stream
        try:
            while True:
                data = await self.client.receive_some(65536)
                if not data:
                    self.client_eof = True
                    break
                self.reader.feed(data)
                block, frames = self.reader.read_frames()
                if not frames:
                    continue
                while frames:
                    out, frames = await self._check_block(block, frames)
                    if out:
                        await upstream.send_all(out)
                    if self._settling is not None:
                        await self._settling.wait()
                        self._settling = None
                if self.terminated:
                    break
        except ProtocolError as exc:
            log.info("conn %s: client broke the protocol: %s", self.conn_no, exc)
            await self._send_quietly(
                replies.fatal(
                    replies.PROTOCOL_VIOLATION, f"pamwire: invalid message: {exc}"
                )
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.client_eof = True
        finally:
            scope.cancel()

    async def _server_to_client(self, scope: trio.CancelScope) -> None:
        assert self.upstream is not None
        reader = self.upstream.reader
        stream = self.upstream.stream
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    if not self.terminated:
                        log.info("conn %s: server closed the connection", self.conn_no)
                    break
                reader.feed(data)
                block, frames = reader.read_frames()
                if frames:
                    await self.client.send_all(self._observe_replies(block, frames))
        except ProtocolError as exc:
            log.warning("conn %s: server broke the protocol: %s", self.conn_no, exc)
            await self._send_quietly(
                replies.fatal(
                    replies.PROTOCOL_VIOLATION, "pamwire: invalid reply from server"
                )
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            scope.cancel()

    # -- client side: decide before forwarding --

    async def _check_block(
        self, block: bytes, frames: list[Frame]
    ) -> tuple[bytes, list[Frame]]:
        """Return what to forward for a block of client frames, and the frames held
        back: after a statement that changes how the server reads later text, the
        rest waits until the server has answered (see _settle)."""
        pieces: list[bytes] | None = None  # set once some frame is replaced
        first = done = frames[0].start - 5
        held: list[Frame] = []
        for index, frame in enumerate(frames):
            t = frame.type
            replacement: bytes | None = None
            if t == _Q:
                replacement = await self._on_query(block, frame)
            elif t == _P:
                replacement = await self._on_parse(block, frame)
            elif t == _B:
                self._on_bind(block, frame)
            elif t == _E:
                replacement = await self._on_execute(block, frame)
            elif t == _S:
                if self.recorder is not None and not self.tracker.in_copy:
                    self.recorder.sync()
                self.tracker.sent(Op.SYNC)
            elif t == _D:
                self.tracker.sent(Op.DESCRIBE)
            elif t == _C:
                self._on_close(block, frame)
            elif t == _F:
                replacement = await self._deny_message(
                    Decision(
                        "deny",
                        "function-call",
                        "the FunctionCall message is not allowed",
                    ),
                    "FunctionCall message",
                    "function_call",
                )
                self.tracker.sent(Op.FUNCTION_CALL)
                self._record([])
            elif t in (_COPY_DONE, _COPY_FAIL):
                self.tracker.sent(Op.COPY_END)
            elif t == _X:
                self.terminated = True
            elif t not in (_H, _COPY_DATA):
                decode_frontend(t, payload(block, frame))  # raises for unknown types
            if replacement is not None:
                if pieces is None:
                    pieces = []
                pieces.append(block[done : frame.start - 5])
                pieces.append(replacement)
                done = frame.end
            if self._settling is not None:
                held = frames[index + 1 :]
                break
        end = frames[-1].end if not held else held[0].start - 5
        if pieces is None:
            return block[first:end], held
        pieces.append(block[done:end])
        return b"".join(pieces), held

    def _decode(self, block: bytes, frame: Frame) -> object:
        return decode_frontend(frame.type, payload(block, frame))

    async def _on_query(self, block: bytes, frame: Frame) -> bytes | None:
        message = self._decode(block, frame)
        assert isinstance(message, Query)
        analysis = self._analyze(message.query)
        ctx = self._rule_context()
        events: list[AuditEvent] = []
        decisions: list[Decision] = []
        denied: tuple[Decision, StatementFacts | None] | None = None
        if analysis.error is not None:
            decision = self.ctx.rules.decide_unparsable(analysis.error, ctx)
            events.append(self._statement_event(message.query, None, decision, "query"))
            if decision.verdict == "deny":
                denied = (decision, None)
        else:
            for facts in analysis.statements:
                decision = self._decide(facts, ctx)
                decisions.append(decision)
                events.append(
                    self._statement_event(facts.text, facts, decision, "query")
                )
                if decision.verdict == "deny" and denied is None:
                    denied = (decision, facts)
        if denied is not None:
            # The whole message is refused: nothing of it runs.
            await self._write_events(events)
            self._record([e for e in events if e.verdict == "deny"][:1])
            for event in events:
                self.ctx.audit.complete(
                    Completion(event.event_id, 0.0, "skipped", None, None)
                )
            decision, denied_facts = denied
            self.tracker.sent(Op.QUERY)
            kind = denied_facts.kind if denied_facts else None
            return self._poison_query(decision, kind)
        if not await self._write_events(events):
            self.tracker.sent(Op.QUERY)
            self._record([])
            return self._poison_query(_AUDIT_DOWN, None)
        self._record(events)
        for facts, decision in zip(analysis.statements, decisions, strict=False):
            self._track_sql_prepare(facts, decision)
            self._follow_settings(facts)
        self._settle_after(analysis.statements)
        self.tracker.sent(Op.QUERY, [e.event_id for e in events])
        return None

    async def _on_parse(self, block: bytes, frame: Frame) -> bytes | None:
        message = self._decode(block, frame)
        assert isinstance(message, Parse)
        analysis = self._analyze(message.query)
        ctx = self._rule_context()
        facts: StatementFacts | None = None
        if analysis.error is not None:
            decision = self.ctx.rules.decide_unparsable(analysis.error, ctx)
        else:
            decisions = [self._decide_extended(f, ctx) for f in analysis.statements]
            decision = next((d for d in decisions if d.verdict == "deny"), decisions[0])
            facts = analysis.statements[0] if len(analysis.statements) == 1 else None
        self.tracker.sent(Op.PARSE)
        if decision.verdict == "deny":
            event = self._statement_event(message.query, facts, decision, "parse")
            await self._write_events([event])
            self._record([event], sync=False)
            self.statements.pop(message.name, None)
            return self._poison_parse(message, decision, facts.kind if facts else None)
        self.statements[message.name] = _Prepared(
            message.query,
            facts,
            decision,
            self.search_path,
            message.param_types,
            self.ctx.rules,
        )
        return None

    def _on_bind(self, block: bytes, frame: Frame) -> None:
        message = self._decode(block, frame)
        assert isinstance(message, Bind)
        mode = self.target.audit_params if self.target else "redacted"
        params: Params | None = None
        if mode != "none":
            prepared = self.statements.get(message.statement)
            secret = False
            if mode == "values":
                if prepared is None:
                    secret = True
                else:
                    if prepared.secret is None:
                        prepared.secret = names_a_secret(prepared.text)
                    secret = prepared.secret
            params = pg_params(
                mode,
                message.params,
                message.param_formats,
                secret=secret,
                types=prepared.param_types if prepared else (),
            )
            if mode == "values" and self.ctx.literals:
                params = without_literals(params, self.ctx.literals)
        self.portals[message.portal] = (message.statement, params)
        self.tracker.sent(Op.BIND)

    async def _on_execute(self, block: bytes, frame: Frame) -> bytes | None:
        message = self._decode(block, frame)
        assert isinstance(message, Execute)
        name, params = self.portals.get(message.portal, (None, None))
        prepared = self.statements.get(name) if name is not None else None
        if prepared is None:
            # The server has no such portal either: it will answer with an error.
            event = self._event("statement", operation="execute", verdict="allow")
            event = attrs.evolve(event, message="unknown portal")
        else:
            prepared = self._current(prepared)
            self.statements[name or ""] = prepared
            event = self._statement_event(
                prepared.text, prepared.facts, prepared.decision, "execute", params
            )
            if prepared.decision.verdict == "deny":
                await self._write_events([event])
                self._record([event], sync=False)
                self.tracker.sent(Op.PARSE)
                kind = prepared.facts.kind if prepared.facts else None
                return self._poison_step(prepared.decision, kind)
        if not await self._write_events([event]):
            self.tracker.sent(Op.PARSE)
            return self._poison_step(_AUDIT_DOWN, None)
        if prepared is not None and prepared.facts is not None:
            self._follow_settings(prepared.facts)
        self._record([event], sync=False)
        self.tracker.sent(Op.EXECUTE, [event.event_id])
        return None

    def _current(self, prepared: _Prepared) -> _Prepared:
        """The prepared statement decided again if search_path grew since, or the
        rules were reloaded since it was decided."""
        rules = self.ctx.rules
        if prepared.search_path == self.search_path and prepared.rules is rules:
            return prepared
        analysis = self._analyze(prepared.text)
        ctx = self._rule_context()
        types = prepared.param_types
        if analysis.error is not None:
            decision = rules.decide_unparsable(analysis.error, ctx)
            return _Prepared(
                prepared.text, None, decision, self.search_path, types, rules
            )
        decisions = [self._decide(f, ctx) for f in analysis.statements]
        decision = next((d for d in decisions if d.verdict == "deny"), decisions[0])
        facts = analysis.statements[0] if len(analysis.statements) == 1 else None
        return _Prepared(prepared.text, facts, decision, self.search_path, types, rules)

    def _on_close(self, block: bytes, frame: Frame) -> None:
        message = self._decode(block, frame)
        assert isinstance(message, Close)
        if message.kind == b"S":
            self.statements.pop(message.name, None)
        else:
            self.portals.pop(message.name, None)
        self.tracker.sent(Op.CLOSE)

    def _decide_extended(self, facts: StatementFacts, ctx: RuleContext) -> Decision:
        """Decide a statement of the extended protocol (Parse)."""
        if _changes_parsing(facts):
            # Its ParameterStatus comes only at the next Sync, after the messages
            # pipelined behind it have run: pamwire could not read those right.
            return Decision(
                "deny",
                "settings-change-extended",
                "change standard_conforming_strings or client_encoding with a "
                "simple query, not through the extended protocol",
            )
        return self._decide(facts, ctx)

    def _decide(self, facts: StatementFacts, ctx: RuleContext) -> Decision:
        """Decide one statement of a Query, with the session's own knowledge."""
        for name, value in facts.assignments:
            if name == "client_encoding" and (
                value is None or is_unsafe_client_encoding(value)
            ):
                # pamwire reads every later message as UTF-8; an encoding whose
                # characters can hide a quote would make it read other statements.
                return Decision(
                    "deny",
                    "unsafe-client-encoding",
                    "this client_encoding would let the server read statements "
                    "differently from pamwire",
                )
        if any(n == "search_path" and v is None for n, v in facts.assignments) and (
            facts.kind != "set"
        ):
            # set_config('search_path', <not a constant>): pamwire could no longer
            # tell which tables unqualified names mean.
            return Decision(
                "deny",
                "unknown-search-path",
                "search_path set to a value pamwire cannot read before it runs",
            )
        if facts.kind == "execute":
            prepared = self.statements.get(facts.prepare_name or "")
            if prepared is None or not facts.prepare_name:
                # The statement behind the name was never checked by pamwire.
                return Decision(
                    "deny",
                    "unknown-prepared-statement",
                    f'EXECUTE of "{facts.prepare_name}", '
                    "which pamwire did not see prepared",
                )
            current = self._current(prepared)
            self.statements[facts.prepare_name] = current
            if current.decision.verdict == "deny":
                return current.decision
        return self.ctx.rules.decide(facts, ctx)

    def _track_sql_prepare(self, facts: StatementFacts, decision: Decision) -> None:
        """Apply PREPARE, DEALLOCATE and DISCARD ALL of a forwarded Query, in order."""
        name = facts.prepare_name
        if facts.kind == "prepare" and name:
            inner = facts.inner
            text = inner.text if inner is not None and inner.text else facts.text
            self.statements[name] = _Prepared(
                text, inner or facts, decision, self.search_path, (), self.ctx.rules
            )
        elif facts.kind == "deallocate" and name == "*":
            self._forget_named_statements()
        elif facts.kind == "deallocate" and name:
            self.statements.pop(name, None)
        elif facts.kind == "discard" and _is_discard_all(facts.text):
            self._forget_named_statements()
            self.portals.clear()

    def _settle_after(self, statements: tuple[StatementFacts, ...]) -> None:
        """Hold the client's later messages if these statements may change how the
        server reads text (standard_conforming_strings, client_encoding).

        The server applies such a change when the statement runs and reports it
        only with its ReadyForQuery; a message pipelined behind it would be read by
        the server one way and decided by pamwire another. So those messages wait
        until the server has answered, then are decided with the new settings.
        """
        touches = any(_changes_parsing(f) for f in statements)
        ends_transaction = self._parse_settings_touched and any(
            f.kind in ("commit", "rollback", "savepoint") for f in statements
        )
        if touches:
            self._parse_settings_touched = True
        if touches or ends_transaction:
            self._settling = trio.Event()

    def _widen_search_path(self, schemas: tuple[str, ...]) -> None:
        self.search_path = tuple(dict.fromkeys(self.search_path + schemas))

    def _follow_settings(self, facts: StatementFacts) -> None:
        """Note search_path changes of a forwarded statement."""
        for name, value in facts.assignments:
            if name == "search_path" and value is not None:
                user = self.upstream_user or ""
                self._widen_search_path(startup.parse_search_path(value, user=user))

    def _forget_named_statements(self) -> None:
        # DEALLOCATE ALL and DISCARD ALL drop every named statement; the unnamed
        # statement of the extended protocol is kept apart and survives both.
        unnamed = self.statements.get("")
        self.statements.clear()
        if unnamed is not None:
            self.statements[""] = unnamed

    async def _deny_message(self, decision: Decision, text: str, kind: str) -> bytes:
        event = self._event("statement", operation=kind, verdict="deny")
        event = attrs.evolve(
            event, statement=text, rule=decision.rule, message=decision.message
        )
        await self._write_events([event])
        return self._poison_query(decision, None)

    def _analyze(self, sql: str) -> Analysis:
        scs = self.settings.get("standard_conforming_strings", "on") == "on"
        try:
            return pg_sql.analyze(
                sql, standard_conforming_strings=scs, search_path=self.search_path
            )
        except Exception:
            # A bug in the analyser must not let a statement through, nor end the
            # session: the statement is treated as unparsable.
            log.exception("conn %s: analyser failed; statement refused", self.conn_no)
            return Analysis((), error="internal error while analysing the statement")

    def _rule_context(self) -> RuleContext:
        assert self.user is not None and self.target is not None
        # The role of the session's grant, or the target's configured role.
        if self._rules_context is None:
            self._rules_context = RuleContext(
                user=self.user,
                target=self.target.name,
                role=self.role,
                groups=self.ctx.config.groups_of(self.user),
            )
        return self._rules_context

    # -- poison: denials placed by the server --

    def _poison_token(self, decision: Decision, kind: str | None) -> str:
        n = next(self.poison_no)
        self.poisons[n] = replies.denial(decision.rule, decision.message, kind)
        return f"{self.poison_prefix}{n}"

    def _poison_query(self, decision: Decision, kind: str | None) -> bytes:
        return encode(Query(query=self._poison_token(decision, kind)))

    def _poison_step(self, decision: Decision, kind: str | None) -> bytes:
        """A poison for a step inside the extended protocol (an Execute): a Parse
        of a named statement, which fails and so skips the rest until Sync."""
        token = self._poison_token(decision, kind)
        return encode(Parse(name=token, query=token, param_types=()))

    def _poison_parse(
        self, message: Parse, decision: Decision, kind: str | None
    ) -> bytes:
        token = self._poison_token(decision, kind)
        return encode(Parse(name=message.name, query=token, param_types=()))

    # -- server side: observe replies --

    def _observe_replies(self, block: bytes, frames: list[Frame]) -> bytes:
        pieces: list[bytes] | None = None
        done = 0
        tracker = self.tracker
        outcomes: list[Outcome] = []
        for frame in frames:
            t = frame.type
            if t == _B_COMPLETE:
                outcomes += tracker.command_complete(command_tag(payload(block, frame)))
            elif t == _B_READY:
                transaction = ready_status(payload(block, frame))
                outcomes += tracker.ready_for_query(transaction)
                if self._settling is not None and not tracker.busy:
                    self._settling.set()
                if transaction == b"I":
                    self._parse_settings_touched = False
            elif t == _B_ERROR:
                message = decode_backend(t, payload(block, frame))
                assert isinstance(message, ErrorResponse)
                outcomes += tracker.error(message.code)
                denial = self._match_poison(message)
                if denial is not None:
                    if pieces is None:
                        pieces = []
                    pieces.append(block[done : frame.start - 5])
                    pieces.append(denial)
                    done = frame.end
            elif t == _B_PARSE_OK:
                tracker.simple_reply(Op.PARSE)
            elif t == _B_BIND_OK:
                tracker.simple_reply(Op.BIND)
            elif t == _B_CLOSE_OK:
                tracker.simple_reply(Op.CLOSE)
            elif t in (_B_NO_DATA, _B_ROW_DESC):
                tracker.row_description()
            elif t == _B_EMPTY:
                outcomes += tracker.empty_query()
            elif t == _B_SUSPENDED:
                outcomes += tracker.portal_suspended()
            elif t == _B_COPY_IN:
                tracker.copy_in_response()
                if self._settling is not None:
                    # The held messages are the rows COPY is waiting for.
                    self._settling.set()
            elif t == _B_PARAM_STATUS:
                status = decode_backend(t, payload(block, frame))
                assert isinstance(status, ParameterStatus)
                self.settings[status.name] = status.value
                if status.name == "client_encoding" and is_unsafe_client_encoding(
                    status.value
                ):
                    # A backstop: rules refuse such a SET before it runs.
                    self.end(_encoding_refused(status.value).removeprefix("pamwire: "))
        for outcome in outcomes:
            self.ctx.audit.complete(
                Completion(
                    outcome.event_id,
                    outcome.duration_ms,
                    outcome.outcome,
                    outcome.sqlstate,
                    outcome.rows,
                )
            )
        out = block
        if pieces is not None:
            pieces.append(block[done:])
            out = b"".join(pieces)
        if self.recorder is not None:
            self.recorder.server_block(out, frames if out is block else None)
            self.ctx.audit.record(self.recorder.drain())
        return out

    def _match_poison(self, error: ErrorResponse) -> bytes | None:
        if error.code != "42601":
            return None
        found = self.poison_re.search(error.message)
        if found is None:
            return None
        return self.poisons.pop(int(found.group(1)), None)

    # -- audit --

    def _event(self, kind: str, **fields: object) -> AuditEvent:
        return self.events.event(self, kind, **fields)

    def _statement_event(
        self,
        text: str,
        facts: StatementFacts | None,
        decision: Decision,
        operation: str,
        params: Params | None = None,
    ) -> AuditEvent:
        return self.events.statement(self, text, facts, decision, operation, params)

    async def _write_events(self, events: list[AuditEvent]) -> bool:
        """Write events before forwarding; False if the trail could not take them."""
        try:
            await self.ctx.audit.write_all(events)
        except AuditWriteError as exc:
            log.error(
                "conn %s: audit trail unavailable, refusing: %s", self.conn_no, exc
            )
            return False
        return True

    def _record(self, events: list[AuditEvent], *, sync: bool = True) -> None:
        """Tell the session recorder which statements were forwarded, in order."""
        recorder = self.recorder
        if recorder is None:
            return
        for event in events:
            recorder.statement(event.event_id, event.statement or "", event.time)
        if sync:
            recorder.sync()

    async def _audit_write(self, event: AuditEvent) -> None:
        try:
            await self.ctx.audit.write(event)
        except AuditWriteError as exc:
            log.error("conn %s: audit trail unavailable: %s", self.conn_no, exc)
            await self._fatal(
                replies.IO_ERROR,
                "pamwire: the audit trail cannot be written; try again later",
            )

    def _audit_nowait(self, kind: str, **fields: object) -> None:
        self.ctx.audit.write_nowait(self._event(kind, **fields))

    # -- endings --

    async def _fatal(self, code: str, message: str, *, hint: str | None = None) -> None:
        await self._send_quietly(replies.fatal(code, message, hint=hint))
        raise SessionEnd

    async def _send_quietly(self, data: bytes) -> None:
        with trio.move_on_after(5):
            with contextlib.suppress(
                trio.BrokenResourceError, trio.ClosedResourceError
            ):
                await self.client.send_all(data)

    async def cancel_upstream(self) -> None:
        """Forward a client's CancelRequest to this session's backend."""
        if self.upstream is None or self.target is None:
            return
        await pg_upstream.send_cancel(
            self.target.host,
            self.target.port,
            self.upstream.process_id,
            self.upstream.secret_key,
        )

    async def _close(self) -> None:
        self.ctx.cancels.unregister(self.key, self)
        self.ctx.sessions.discard(self)
        with trio.CancelScope(shield=True):
            if self.end_reason is not None:
                await self._send_quietly(
                    replies.fatal(
                        replies.ADMIN_SHUTDOWN,
                        "terminating connection due to administrator command",
                        hint=f"pamwire: {self.end_reason}",
                    )
                )
            if self.upstream is not None:
                if self.client_eof and not self.terminated and self.tracker.busy:
                    # The client left mid-query: stop the query, do not let it run.
                    await self.cancel_upstream()
                with trio.move_on_after(1):
                    with contextlib.suppress(
                        trio.BrokenResourceError, trio.ClosedResourceError
                    ):
                        await self.upstream.stream.send_all(encode(Terminate()))
                await trio.aclose_forcefully(self.upstream.stream)
                if self.recorder is not None:
                    self.ctx.audit.record(self.recorder.close())
                self._audit_nowait("session_end")
            await trio.aclose_forcefully(self.client)
        log.debug("conn %s: closed", self.conn_no)


# Settings that change how the server reads statement text.
_PARSE_SETTINGS = frozenset({"standard_conforming_strings", "client_encoding"})


def _changes_parsing(facts: StatementFacts) -> bool:
    """Whether a statement may change how the server reads later statements."""
    if facts.settings & _PARSE_SETTINGS or "*" in facts.settings:
        return True
    if "all" in facts.settings:  # RESET ALL
        return True
    if "pg_catalog.pg_settings" in facts.tables_written:  # UPDATE pg_settings ...
        return True
    return facts.kind == "discard" and _is_discard_all(facts.text)


def _encoding_refused(encoding: str) -> str:
    return (
        f"pamwire: client_encoding {encoding} is not supported: in it a multibyte "
        "character can hide a quote or backslash from pamwire; use UTF8"
    )


def _is_discard_all(text: str) -> bool:
    words = text.replace(";", " ").split()
    return len(words) >= 2 and words[1].upper() == "ALL"


_AUDIT_DOWN = Decision(
    "deny",
    "audit-unavailable",
    "the audit trail cannot be written, so nothing is forwarded",
)

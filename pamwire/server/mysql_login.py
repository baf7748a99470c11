"""Login toward MySQL clients: pamwire's handshake, the person's password check,
the target's login upstream, and COM_CHANGE_USER, which repeats the last two.

The functions act on the MySqlSession that calls them; they end the session by
raising SessionEnd once the client has been told why.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import attrs
import trio

from pamwire.errors import (
    ClientProtocolError,
    MessageTooLarge,
    PamwireError,
    ProtocolError,
)
from pamwire.grants.credentials import split_login
from pamwire.mysql import auth, codec, replies
from pamwire.mysql import messages as m
from pamwire.mysql.constants import Capability
from pamwire.mysql.packets import Packet, PacketReader, payload
from pamwire.mysql.statements import parse_server_version
from pamwire.server import mysql_upstream, tls

if TYPE_CHECKING:
    from pamwire.server.mysql_session import MySqlSession

log = logging.getLogger("pamwire.mysql.session")

# What pamwire offers clients: the codec's capabilities, without compression
# (not in SUPPORTED_CAPABILITIES). CLIENT_SSL is added to the greeting when the
# listener has TLS; it changes no packet layout, so it is kept out of s.caps.
ADVERTISED_CAPABILITIES: Final = codec.SUPPORTED_CAPABILITIES

# The plugin named in pamwire's handshake. Clients may answer with either
# supported plugin (pamwire stores verifiers for both); any other is switched.
HANDSHAKE_PLUGIN: Final = auth.CACHING_SHA2_PASSWORD

# Capabilities that change packet layouts after login: both legs must agree.
# CLIENT_DEPRECATE_EOF may differ: the session translates (pamwire/mysql/eof.py).
_LAYOUT_CAPABILITIES: Final = (
    codec.PROTOCOL_41
    | codec.SESSION_TRACK
    | int(Capability.CLIENT_MULTI_RESULTS)
    | int(Capability.CLIENT_PS_MULTI_RESULTS)
)

# Shown in the handshake when no target's version is known. A MariaDB version:
# clients then pick utf8mb4_general_ci, which MySQL 8 knows too (the reverse,
# utf8mb4_0900_ai_ci, MariaDB refuses).
DEFAULT_SERVER_VERSION: Final = "5.5.5-10.11.0-MariaDB-pamwire"
# Targets asked for their greeting when none is known, and for how long each.
_VERSION_PROBES: Final = 3
_VERSION_PROBE_TIMEOUT: Final = 1.0

# The client's first packet (a handshake response or SSL request) is a few
# hundred bytes; it is read in pieces of this size at most.
_FIRST_READ: Final = 4096

# Live sessions by pamwire connection id, for KILL. One pamwire process serves
# one ServerContext, so a module-level table is enough.
LIVE: dict[int, MySqlSession] = {}

# Server versions seen per target, shown in later handshakes.
_SERVER_VERSIONS: dict[str, str] = {}

# Collations (handshake ids) of character sets whose multibyte characters can
# end in a backslash or quote byte: pamwire would split the text differently
# from the server (big5, sjis, gbk, cp932, gb18030).
_UNSAFE_COLLATIONS: Final = frozenset({1, 13, 28, 84, 87, 88, 95, 96, 248, 249, 250})


class SessionEnd(Exception):
    """The session is over; the client has been told why if it could be."""


async def login(s: MySqlSession) -> None:
    """Greet the client, check the person, log in to the target, answer OK."""
    scramble = auth.new_scramble()
    offered = ADVERTISED_CAPABILITIES | (codec.SSL if s.tls is not None else 0)
    await s.client.send_all(
        replies.handshake(
            connection_id=s.conn_no,
            scramble=scramble,
            capabilities=offered,
            server_version=await _presented_version(s),
            auth_plugin=HANDSHAKE_PLUGIN,
        )
    )
    response, seq = await _handshake_response(s)
    if isinstance(response, m.SSLRequest):
        response, seq = await _upgrade(s, seq)
    elif response.capability_flags & codec.SSL:
        # A full response claiming CLIENT_SSL arrived in plaintext, where the
        # client believes it is protected (MY-01).
        await s._refuse(
            replies.ER_HANDSHAKE_ERROR,
            "pamwire: a login response with CLIENT_SSL must come through TLS",
            seq,
        )
        raise SessionEnd
    elif s.tls is not None and s.tls.required:
        # The token is a nonce-bound hash, not the password; nothing more is
        # asked for before the refusal.
        log.info("conn %s: plaintext client refused (tls require)", s.conn_no)
        await s._refuse(
            replies.ER_SECURE_TRANSPORT_REQUIRED,
            "pamwire: this listener requires TLS; connect with --ssl "
            "(or your client's ssl option)",
            seq,
        )
        raise SessionEnd
    s.caps = response.capability_flags & ADVERTISED_CAPABILITIES
    s._response = response
    s._scramble = scramble
    s.application = _attribute(response.connect_attrs, "program_name")
    if response.character_set in _UNSAFE_COLLATIONS:
        await s._refuse(
            replies.ER_NOT_SUPPORTED_YET,
            f"pamwire: client character set {response.character_set} is not "
            "supported (its characters can hide quotes); use utf8mb4",
            seq,
        )
        raise SessionEnd
    if len(s.ctx.sessions) >= s.max_clients:
        await s._refuse(replies.ER_CON_COUNT_ERROR, "Too many connections", seq)
        raise SessionEnd
    try:
        person, role = split_login(response.username)
    except PamwireError:
        person, role = response.username, None
    s.user = person
    seq = await _authenticate(s, person, response, scramble, seq)
    await _connect_upstream(s, response, role, seq)


async def _handshake_response(
    s: MySqlSession,
) -> tuple[m.HandshakeResponse41 | m.SSLRequest, int]:
    """The client's first packet, decoded, and the next sequence id toward it.

    Read by its header's length rather than by the session's packet reader: a
    client starts TLS right after an SSL request without waiting, so what
    follows the packet may be its TLS hello, kept aside for _upgrade.
    """
    buffered = bytearray()
    while len(buffered) < 4 or len(buffered) < 4 + _length(buffered):
        data = await s.client.receive_some(_FIRST_READ)
        if not data:
            raise SessionEnd
        buffered += data
        limit = s.packets.reader.max_packet_size
        if len(buffered) >= 4 and _length(buffered) > limit:
            raise MessageTooLarge(_length(buffered), limit)
    end = 4 + _length(buffered)
    s._tls_head = bytes(buffered[end:])
    s.packets.reader.feed(buffered[:end])
    block, packet = await _login_packet(s)
    try:
        response = codec.decode_handshake_response(payload(block, packet))
    except ProtocolError as exc:
        await s._refuse(replies.ER_HANDSHAKE_ERROR, "Bad handshake", 2)
        raise SessionEnd from exc
    if s._tls_head and not isinstance(response, m.SSLRequest):
        raise ClientProtocolError("client sent data before it was asked for")
    return response, (packet.last_sequence_id + 1) & 0xFF


async def _upgrade(s: MySqlSession, seq: int) -> tuple[m.HandshakeResponse41, int]:
    """Run TLS after the client's SSL request; return the full response read
    through it (its sequence id follows the request's) and the next id."""
    if s.tls is None:
        # CLIENT_SSL was not offered: a client that asks all the same is told.
        await s._refuse(
            replies.ER_NOT_SUPPORTED_YET,
            "pamwire: TLS is not enabled on this listener; connect without TLS "
            "(mariadb --ssl=0, ssl_disabled=True)",
            seq,
        )
        raise SessionEnd
    try:
        stream = await tls.accept(s.client, s.tls, head=s._tls_head)
    except tls.TlsHandshakeError as exc:
        log.info("conn %s: %s", s.conn_no, exc)
        raise SessionEnd from None
    s._tls_head = b""
    s.client = stream
    s.packets = mysql_upstream.PacketStream(
        stream, PacketReader(max_packet_size=s.packets.reader.max_packet_size)
    )
    s.encrypted = True
    block, packet = await _login_packet(s)
    if packet.sequence_id != seq:
        raise ClientProtocolError(
            f"login response has sequence id {packet.sequence_id}, expected {seq}"
        )
    try:
        response = codec.decode_handshake_response(payload(block, packet))
    except ProtocolError as exc:
        await s._refuse(replies.ER_HANDSHAKE_ERROR, "Bad handshake", seq + 1)
        raise SessionEnd from exc
    if isinstance(response, m.SSLRequest):
        raise ClientProtocolError("second ssl request inside tls")
    return response, (packet.last_sequence_id + 1) & 0xFF


def _length(header: bytes | bytearray) -> int:
    return header[0] | header[1] << 8 | header[2] << 16


async def _login_packet(s: MySqlSession) -> tuple[bytes, Packet]:
    got = await s.packets.next()
    if got is None:
        raise SessionEnd
    if s.packets.pending:
        raise ClientProtocolError("client sent data before it was asked for")
    return got


async def _authenticate(
    s: MySqlSession,
    person: str,
    response: m.HandshakeResponse41,
    scramble: bytes,
    seq: int,
    *,
    read: Callable[[], Awaitable[tuple[bytes, Packet]]] | None = None,
    fresh: bool = False,
) -> int:
    """Check the person's answer; returns the next sequence id toward the client.

    read gives the client's next packet (the login reader by default); with
    fresh, an auth switch with a new nonce is always asked (COM_CHANGE_USER,
    whose token would otherwise reuse the first login's nonce). A failure is
    answered with ERR 1045 and ends the session (SessionEnd).
    """
    verifiers = await _verifiers(s, person)
    plugin = response.auth_plugin_name or auth.NATIVE_PASSWORD
    can_switch = bool(response.capability_flags & codec.PLUGIN_AUTH)
    if not can_switch:
        plugin = auth.NATIVE_PASSWORD
    token = response.auth_response
    if plugin not in auth.SUPPORTED_PLUGINS or (fresh and can_switch):
        # A plugin pamwire cannot check (ed25519, dialog, clear password...):
        # ask for the handshake's plugin instead, with a fresh nonce.
        if plugin not in auth.SUPPORTED_PLUGINS:
            plugin = HANDSHAKE_PLUGIN
        scramble = auth.new_scramble()
        await s.client.send_all(replies.auth_switch(plugin, scramble, seq))
        block, packet = await (read or functools.partial(_login_packet, s))()
        token = bytes(payload(block, packet))
        seq = (packet.last_sequence_id + 1) & 0xFF
    verifier = verifiers.get(plugin)
    if plugin == auth.NATIVE_PASSWORD:
        passed = verifier is not None and auth.native_password_verify(
            token, scramble, verifier
        )
    else:
        passed = verifier is not None and auth.caching_sha2_verify(
            token, scramble, verifier
        )
    if not passed:
        if verifiers == {} and person:
            log.info("conn %s: no mysql verifiers for %r", s.conn_no, person)
        log.info("conn %s: login failed for %r (%s)", s.conn_no, person, plugin)
        s._audit_nowait("login_failed", detail=f"password check failed ({plugin})")
        host = s.peer.rpartition(":")[0] or s.peer
        await s._send_quietly(
            replies.login_failed(
                response.username, host, seq, s.caps, using_password=bool(token)
            )
        )
        raise SessionEnd
    if plugin == auth.CACHING_SHA2_PASSWORD:
        # pamwire always holds SHA256(SHA256(pw)), so the fast path is final
        # and full authentication (which sends the password) is never asked.
        await s.client.send_all(replies.fast_auth_success(seq))
        seq = (seq + 1) & 0xFF
    return seq


async def _verifiers(s: MySqlSession, person: str) -> dict[str, bytes]:
    def fetch() -> dict[str, bytes]:
        found = s.ctx.users.get(person)
        if found is None or found.disabled:
            return {}
        return s.ctx.users.verifiers(person)

    try:
        return await trio.to_thread.run_sync(fetch)
    except PamwireError as exc:
        log.error("conn %s: cannot read person %r: %s", s.conn_no, person, exc)
        return {}


async def _connect_upstream(
    s: MySqlSession, response: m.HandshakeResponse41, role: str | None, seq: int
) -> None:
    assert s.user is not None
    name = response.database or s.user
    target = s.ctx.config.target_for("mysql", name)
    if target is None or target.protocol != "mysql":
        s._audit_nowait("login_failed", detail=f"unknown target {name!r}")
        await s._send_quietly(replies.unknown_target(name, seq, s.caps))
        raise SessionEnd
    s.target = target
    try:
        login = await trio.to_thread.run_sync(
            s.ctx.credentials.login_for, s.user, target, role
        )
    except PamwireError as exc:
        log.info("conn %s: no login for %s: %s", s.conn_no, target.name, exc)
        s._audit_nowait("login_failed", detail=str(exc))
        await s._refuse(replies.ER_ACCESS_DENIED_ERROR, f"pamwire: {exc}", seq)
        raise SessionEnd from None
    s.login = login
    try:
        upstream = await mysql_upstream.connect(
            target.host,
            target.port,
            database=target.database,
            credential=login.credential,
            capabilities=upstream_capabilities(s.caps, target.deprecate_eof),
            character_set=response.character_set,
            max_packet_size=response.max_packet_size,
            connect_attrs=response.connect_attrs,
            timeout=target.connect_timeout,
            tls=s.ctx.tls_for(target),
        )
    except mysql_upstream.UpstreamRefused as exc:
        err = exc.error
        log.info("conn %s: target %s refused login: %s", s.conn_no, name, exc)
        s._audit_nowait("login_failed", detail=f"upstream refused: {exc}")
        await s._send_quietly(codec.encode(err, s.caps | codec.PROTOCOL_41, seq))
        raise SessionEnd from None
    except mysql_upstream.UpstreamUnavailable as exc:
        log.warning("conn %s: target %s unavailable: %s", s.conn_no, name, exc)
        s._audit_nowait("login_failed", detail=f"target unavailable: {exc}")
        await s._refuse(
            replies.TARGET_UNAVAILABLE,
            f"pamwire: target '{target.name}' is unavailable: {exc}",
            seq,
        )
        raise SessionEnd from None
    s.upstream = upstream
    _SERVER_VERSIONS[target.name] = upstream.server_version
    differ = (s.caps ^ upstream.capabilities) & _LAYOUT_CAPABILITIES
    if differ:
        # TODO(mysql-layout-translation): session tracking and multi-results
        # change layouts too; a server lacking what the client chose is refused.
        await s._refuse(
            replies.ER_NOT_SUPPORTED_YET,
            f"pamwire: target '{target.name}' lacks client capabilities "
            f"0x{differ:x}; connect with a client that does not ask for them",
            seq,
        )
        raise SessionEnd
    s.flavor, s.server_version = parse_server_version(upstream.server_version)
    s.database = target.database
    s.status = upstream.ok.status_flags
    await s._refresh_sql_mode()
    LIVE[s.conn_no] = s
    s.ctx.sessions.add(s)
    await s._audit_write(s._event("session_start"))
    await s.client.send_all(
        replies.ok(
            s.caps,
            seq,
            status_flags=s.status,
            session_state=upstream.ok.session_state_info,
        )
    )
    log.info(
        "conn %s: session %s user=%s target=%s upstream id %s from %s",
        s.conn_no,
        s.id,
        s.user,
        target.name,
        upstream.connection_id,
        s.peer,
    )


def upstream_capabilities(client_caps: int, deprecate_eof: str) -> int:
    """What pamwire asks the server for: the client's choice, CLIENT_DEPRECATE_EOF
    per the target's deprecate_eof (client, on or off)."""
    if deprecate_eof == "on":
        return client_caps | codec.DEPRECATE_EOF
    if deprecate_eof == "off":
        return client_caps & ~codec.DEPRECATE_EOF
    return client_caps


async def _presented_version(s: MySqlSession) -> str:
    """The version to greet with: that of the first MySQL target that is known.

    The client has not named its target yet, so pamwire shows the version of
    the first configured one it has met (asking a target for its greeting if
    none is known yet). Clients pick collations and features by it.
    """
    targets = [t for t in s.ctx.config.targets.values() if t.protocol == "mysql"]
    for target in targets:
        known = _SERVER_VERSIONS.get(target.name)
        if known is not None:
            return coarse_version(known)
    for target in targets[:_VERSION_PROBES]:
        version = await mysql_upstream.probe_version(
            target.host, target.port, timeout=_VERSION_PROBE_TIMEOUT
        )
        if version is not None:
            _SERVER_VERSIONS[target.name] = version
            return coarse_version(version)
    return DEFAULT_SERVER_VERSION


_VERSION = re.compile(r"^(5\.5\.5-)?(\d+)\.(\d+)\.\d+(-MariaDB)?")


def coarse_version(version: str) -> str:
    """The version a greeting shows before login: the server's major and minor
    and its flavour (`10.11.6-MariaDB-0+deb12u1` -> `10.11.0-MariaDB`), so that
    clients choose features by it while nobody learns the exact release (and its
    known flaws) without logging in; logged in, `SELECT VERSION()` tells it."""
    found = _VERSION.match(version)
    if found is None:
        return DEFAULT_SERVER_VERSION
    prefix, major, minor, flavour = found.groups()
    return f"{prefix or ''}{major}.{minor}.0{flavour or ''}"


async def change_user(s: MySqlSession, block: bytes, packet: Packet) -> None:
    """A new login on the same client connection; never relayed.

    The old upstream connection is closed first (its session ends in the
    trail), then the new person is checked at pamwire with a fresh nonce and
    the database picks the target, logged in to afresh as for a first login.
    Any failure ends the client connection, as the server's own answer does.
    """
    message = s._decode(block, packet)
    assert isinstance(message, m.ComChangeUser) and s._response is not None
    await s._audit_write(s._event("session_end", detail="change user"))
    upstream, s.upstream = s.upstream, None
    if LIVE.get(s.conn_no) is s:
        del LIVE[s.conn_no]
    if upstream is not None:
        await mysql_upstream.close_with_quit(upstream, s.caps)
    s.statements.clear()
    s.sql_statements.clear()
    s.sql_mode = frozenset()
    s.database = s.target = s.login = None
    response = attrs.evolve(
        s._response,
        username=message.user,
        auth_response=message.auth_response,
        database=message.schema or None,
        auth_plugin_name=message.auth_plugin_name,
        character_set=message.character_set or s._response.character_set,
        connect_attrs=message.connect_attrs or s._response.connect_attrs,
    )
    s._response = response
    if response.character_set in _UNSAFE_COLLATIONS:
        await s._refuse(
            replies.ER_NOT_SUPPORTED_YET,
            f"pamwire: client character set {response.character_set} is not "
            "supported (its characters can hide quotes); use utf8mb4",
            s.seq,
        )
        raise SessionEnd
    try:
        person, role = split_login(message.user)
    except PamwireError:
        person, role = message.user, None
    s.user = person
    seq = await _authenticate(
        s,
        person,
        response,
        s._scramble,
        s.seq,
        read=functools.partial(_next_login_packet, s),
        fresh=True,
    )
    await _connect_upstream(s, response, role, seq)


async def _next_login_packet(s: MySqlSession) -> tuple[bytes, Packet]:
    got = await s._next_client()
    if got is None:
        raise SessionEnd
    return got


def _attribute(attrs_: tuple[tuple[str, str], ...] | None, name: str) -> str | None:
    for key, value in attrs_ or ():
        if key == name:
            return value
    return None

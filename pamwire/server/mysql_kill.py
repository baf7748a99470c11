"""KILL through pamwire: a connection id is mapped to a session's upstream
connection, which is killed over a side connection of that session's own account,
so a KILL reaches that connection and no other.

The id may be pamwire's (the handshake's, what clients call thread_id()) or the
server's own (what CONNECTION_ID() and the process list show), so that both of the
ways people find an id work; either must belong to a live session of the same
person, and a server id only on the server of the killer's own target.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING

from pamwire.audit.events import Completion
from pamwire.mysql import codec, replies
from pamwire.server import mysql_upstream
from pamwire.server.mysql_login import LIVE, SessionEnd

if TYPE_CHECKING:
    from pamwire.server.mysql_session import MySqlSession, _Checked

log = logging.getLogger("pamwire.mysql.session")


async def kill(
    s: MySqlSession, checked: _Checked, connection_id: int, query: bool
) -> None:
    """KILL [QUERY] n where n is a connection id of the same person's session."""
    started = time.monotonic()
    victim = find_victim(s, connection_id)
    if (
        victim is None
        or victim.upstream is None
        or victim.login is None
        or victim.target is None
    ):
        reply = replies.unknown_thread(connection_id, s.seq, s.caps)
        _complete_kill(s, checked, started, "error", "HY000")
        await s._reply(reply)
        return
    target = victim.target
    try:
        error = await mysql_upstream.kill(
            target.host,
            target.port,
            victim.login.credential,
            victim.upstream.connection_id,
            query_only=query,
            timeout=target.connect_timeout,
            tls=s.ctx.tls_for(target),
        )
    except (
        mysql_upstream.UpstreamUnavailable,
        mysql_upstream.UpstreamRefused,
    ) as exc:
        log.warning("conn %s: kill of %s failed: %s", s.conn_no, connection_id, exc)
        _complete_kill(s, checked, started, "error", "HY000")
        await s._reply(
            replies.error(
                replies.ER_UNKNOWN_ERROR,
                f"pamwire: kill of {connection_id} failed: {exc}",
                s.seq,
                s.caps,
            )
        )
        return
    if error is not None:
        _complete_kill(s, checked, started, "error", error.sql_state)
        await s._reply(codec.encode(error, s.caps | codec.PROTOCOL_41, s.seq))
        return
    _complete_kill(s, checked, started, "ok", None)
    if victim is s and not query:
        await s._reply(
            replies.error(
                replies.ER_CONNECTION_KILLED,
                "Connection was killed",
                s.seq,
                s.caps,
            )
        )
        raise SessionEnd
    await s._reply(replies.ok(s.caps, s.seq, status_flags=s.status))


def find_victim(s: MySqlSession, connection_id: int) -> MySqlSession | None:
    """The live session of s's person that connection_id names, if any: pamwire's
    id first, then the server's id on the same server as s's target."""
    victim = LIVE.get(connection_id)
    if victim is not None and victim.user == s.user:
        return victim
    if s.target is None:
        return None
    server = (s.target.host, s.target.port)
    for other in LIVE.values():
        if (
            other.user == s.user
            and other.upstream is not None
            and other.upstream.connection_id == connection_id
            and other.target is not None
            and (other.target.host, other.target.port) == server
        ):
            return other
    return None


def _complete_kill(
    s: MySqlSession, checked: _Checked, started: float, outcome: str, state: str | None
) -> None:
    elapsed = (time.monotonic() - started) * 1000
    for event in checked.events:
        s.ctx.audit.complete(Completion(event.event_id, elapsed, outcome, state, None))


async def kill_own_query(s: MySqlSession) -> None:
    assert s.upstream is not None
    if s.login is None or s.target is None:
        return
    with contextlib.suppress(
        mysql_upstream.UpstreamUnavailable, mysql_upstream.UpstreamRefused
    ):
        await mysql_upstream.kill(
            s.target.host,
            s.target.port,
            s.login.credential,
            s.upstream.connection_id,
            query_only=False,
            timeout=min(s.target.connect_timeout, 5.0),
            tls=s.ctx.tls_for(s.target),
        )

"""Every MySQL packet pamwire writes itself: its handshake, auth steps, OKs and ERRs.

Error numbers and SQLSTATEs are the server's own (MariaDB's errmsg-utf8.txt), so
clients react to them as they would to the server: 1045 makes a client ask for a
new password, 1142 reads as "not permitted". Messages that pamwire adds start
with "pamwire:" and name the rule, target or value at fault.
"""

from __future__ import annotations

from typing import Final

from pamwire.mysql import auth, codec
from pamwire.mysql import messages as m
from pamwire.mysql.constants import ServerStatus

# (error number, SQLSTATE) pairs, named as in the server's sources.
ER_CON_COUNT_ERROR: Final = (1040, "08004")
ER_HANDSHAKE_ERROR: Final = (1043, "08S01")
ER_DBACCESS_DENIED_ERROR: Final = (1044, "42000")
ER_ACCESS_DENIED_ERROR: Final = (1045, "28000")
ER_UNKNOWN_COM_ERROR: Final = (1047, "08S01")
ER_BAD_DB_ERROR: Final = (1049, "42000")
ER_NO_SUCH_THREAD: Final = (1094, "HY000")
ER_KILL_DENIED_ERROR: Final = (1095, "HY000")
ER_UNKNOWN_ERROR: Final = (1105, "HY000")
ER_TABLEACCESS_DENIED_ERROR: Final = (1142, "42000")
ER_NOT_SUPPORTED_YET: Final = (1235, "42000")
ER_UNKNOWN_STMT_HANDLER: Final = (1243, "HY000")
ER_MALFORMED_PACKET: Final = (1835, "HY000")
ER_CONNECTION_KILLED: Final = (1927, "70100")
# MySQL 8's number and MariaDB 11's (SQLSTATE as MariaDB gives it).
ER_SECURE_TRANSPORT_REQUIRED: Final = (3159, "08004")
# pamwire's own "cannot reach the target": the client library's 2003 has no
# server-side twin, so the server's generic error with a connection SQLSTATE.
TARGET_UNAVAILABLE: Final = (1105, "08S01")

# The status pamwire reports before any upstream status is known.
INITIAL_STATUS: Final = int(ServerStatus.SERVER_STATUS_AUTOCOMMIT)

_PROTOCOL_41: Final = codec.PROTOCOL_41


def handshake(
    *,
    connection_id: int,
    scramble: bytes,
    capabilities: int,
    server_version: str,
    auth_plugin: str,
    character_set: int = auth.DEFAULT_CHARACTER_SET,
) -> bytes:
    """pamwire's HandshakeV10 (sequence id 0), offering exactly `capabilities`."""
    message = m.HandshakeV10.build(
        server_version=server_version,
        connection_id=connection_id,
        scramble=scramble,
        capabilities=capabilities,
        character_set=character_set,
        status_flags=INITIAL_STATUS,
        auth_plugin_name=auth_plugin,
    )
    return codec.encode(message, capabilities, 0)


def auth_switch(plugin: str, scramble: bytes, sequence_id: int) -> bytes:
    """An AuthSwitchRequest asking the client to answer `plugin` for `scramble`."""
    message = m.AuthSwitchRequest(plugin, scramble + b"\0")
    return codec.encode(message, _PROTOCOL_41, sequence_id)


def fast_auth_success(sequence_id: int) -> bytes:
    """caching_sha2_password's "fast authentication succeeded" (an OK follows)."""
    return codec.encode(m.AuthMoreData(auth.FAST_AUTH_SUCCESS), 0, sequence_id)


def ok(
    capabilities: int,
    sequence_id: int,
    *,
    status_flags: int = INITIAL_STATUS,
    warnings: int = 0,
    session_state: bytes | None = None,
) -> bytes:
    """An OK packet laid out for the client's capabilities."""
    if not capabilities & codec.SESSION_TRACK:
        session_state = None
    status = status_flags & ~int(ServerStatus.SERVER_SESSION_STATE_CHANGED)
    if session_state:
        status |= int(ServerStatus.SERVER_SESSION_STATE_CHANGED)
    else:
        session_state = None
    info = "" if session_state is not None else None
    if not capabilities & codec.SESSION_TRACK:
        info = ""
    message = m.OkPacket(
        status_flags=status,
        warnings=warnings,
        info=info,
        session_state_info=session_state,
    )
    return codec.encode(message, capabilities, sequence_id)


def error(
    code: tuple[int, str], message: str, sequence_id: int, capabilities: int
) -> bytes:
    """An ERR packet; the SQLSTATE is sent when the client speaks protocol 4.1."""
    number, state = code
    sql_state = state if capabilities & _PROTOCOL_41 else None
    packet = m.ErrPacket(number, sql_state, message)
    return codec.encode(packet, capabilities | _PROTOCOL_41, sequence_id)


def denial(
    rule: str | None,
    message: str | None,
    statement_kind: str | None,
    sequence_id: int,
    capabilities: int,
) -> bytes:
    """The ERR a client sees when a rule refuses a statement (1142, 42000)."""
    text = f'pamwire: statement denied by rule "{rule or "unnamed rule"}"'
    if message:
        text += f": {message}"
    if statement_kind:
        text += f" (statement kind: {statement_kind})"
    return error(ER_TABLEACCESS_DENIED_ERROR, text, sequence_id, capabilities)


def login_failed(
    user: str, host: str, sequence_id: int, capabilities: int, *, using_password: bool
) -> bytes:
    """The ERR of a failed login, worded exactly as the server words it (1045)."""
    answer = "YES" if using_password else "NO"
    text = f"Access denied for user '{user}'@'{host}' (using password: {answer})"
    return error(ER_ACCESS_DENIED_ERROR, text, sequence_id, capabilities)


def unknown_target(name: str, sequence_id: int, capabilities: int) -> bytes:
    """The database name of the login names no MySQL target (1049)."""
    text = (
        f"pamwire: no target named '{name}'; the database name picks a pamwire "
        "target, ask an administrator for the target names"
    )
    return error(ER_BAD_DB_ERROR, text, sequence_id, capabilities)


def database_refused(
    name: str, target: str, database: str, sequence_id: int, capabilities: int
) -> bytes:
    """USE or COM_INIT_DB outside the target's database (1044)."""
    text = (
        f"pamwire: database '{name}' is outside target '{target}', "
        f"which serves database '{database}' only"
    )
    return error(ER_DBACCESS_DENIED_ERROR, text, sequence_id, capabilities)


def unknown_thread(connection_id: int, sequence_id: int, capabilities: int) -> bytes:
    """KILL of a connection id that is not one of the person's sessions (1094)."""
    return error(
        ER_NO_SUCH_THREAD,
        f"Unknown thread id: {connection_id}",
        sequence_id,
        capabilities,
    )


def unknown_statement(
    statement_id: int, command: str, sequence_id: int, capabilities: int
) -> bytes:
    """A statement id pamwire never saw prepared on this session (1243)."""
    text = f"Unknown prepared statement handler ({statement_id}) given to {command}"
    return error(ER_UNKNOWN_STMT_HANDLER, text, sequence_id, capabilities)


def not_supported(what: str, sequence_id: int, capabilities: int) -> bytes:
    """A feature pamwire refuses for now (1235), saying what to do instead."""
    return error(ER_NOT_SUPPORTED_YET, f"pamwire: {what}", sequence_id, capabilities)


def unknown_command(command: int, sequence_id: int, capabilities: int) -> bytes:
    """A command pamwire does not relay (replication, obsolete commands) (1047)."""
    if command < 0:
        text = "pamwire: an empty command packet is not a command"
    else:
        text = f"pamwire: command 0x{command:02x} is not supported through pamwire"
    return error(ER_UNKNOWN_COM_ERROR, text, sequence_id, capabilities)


def malformed(reason: str, sequence_id: int, capabilities: int) -> bytes:
    """The client broke the protocol; the session ends after this (1835)."""
    text = f"pamwire: malformed packet: {reason}"
    return error(ER_MALFORMED_PACKET, text, sequence_id, capabilities)

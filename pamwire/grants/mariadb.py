"""Create and remove a grant's MariaDB account from the DBA's SQL templates.

Theory of operation. MariaDB has no server-side format(), and CREATE USER, GRANT
and CREATE EVENT take no bind parameters, so the statements are built here: every
identifier goes in backticks (a backtick doubled), every literal in single quotes
(a quote doubled, a backslash doubled unless the session runs NO_BACKSLASH_ESCAPES),
and a NUL byte is refused. `{name}` is the whole account, `'user'@'host'`.
`{password}` receives the mysql_native_password hash (`*` and the hex of
SHA1(SHA1(password))), taken by `IDENTIFIED BY PASSWORD`, so the password itself
never reaches the server, its logs or its process list.

DDL is not transactional: when a creation statement fails, the rollback statements
remove what the earlier ones made. An account that exists before the first creation
statement is not pamwire's: the mint fails with AccountExists and nothing runs
against it, rollback included. When the event scheduler is on, a one-shot event
locks the account at expiry, the server's own second lock in case pamwire is down;
when it is off, the mint returns a warning for the grant's history instead.

Removal runs each statement on its own. The first must lock the account; right
after it, and again at the end, pamwire kills the account's connections (found by
user name in information_schema.PROCESSLIST) and waits for them to go.

PyMySQL blocks: call these from a worker thread (`trio.to_thread.run_sync`), as
the grant service's callers do. Connect, read and write timeouts bound each call.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pymysql  # type: ignore[import-untyped]

from pamwire.grants import MintError
from pamwire.grants.config import PLACEHOLDERS, TargetGrants, split_template
from pamwire.grants.minting import (
    OPERATION_TIMEOUT,
    POLL_INTERVAL,
    SESSION_EXIT_WAIT,
    Account,
    AccountExists,
    AdminLogin,
)

log = logging.getLogger("pamwire.grants.mariadb")

# MariaDB's longest event name; an account's event is `lock_<account>`, shortened
# with a digest of the name when that would be longer.
MAX_EVENT_NAME = 64
# ER_NO_SUCH_THREAD: the connection ended between the look-up and the KILL.
_ER_NO_SUCH_THREAD = 1094


def quote_identifier(name: str) -> str:
    """A backtick-quoted identifier; MintError for a NUL byte."""
    if "\x00" in name:
        raise MintError(f"nul byte in identifier {name!r}")
    return "`" + name.replace("`", "``") + "`"


def quote_literal(value: str, *, backslash_escapes: bool = True) -> str:
    """A single-quoted string literal; a backslash is doubled unless the session
    runs with NO_BACKSLASH_ESCAPES (`backslash_escapes=False`). MintError for NUL."""
    if "\x00" in value:
        raise MintError(f"nul byte in string literal {value!r}")
    if backslash_escapes:
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"


def native_password_hash(password: str) -> str:
    """The mysql_native_password hash `IDENTIFIED BY PASSWORD` takes."""
    inner = hashlib.sha1(password.encode("utf-8")).digest()
    return "*" + hashlib.sha1(inner).hexdigest().upper()


def event_name(account: str) -> str:
    """The name of the event that locks `account` at expiry (at most 64 chars)."""
    name = f"lock_{account}"
    if len(name) <= MAX_EVENT_NAME:
        return name
    digest = hashlib.sha256(account.encode("utf-8")).hexdigest()[:8]
    return f"{name[: MAX_EVENT_NAME - 9]}_{digest}"


def expiry_literal(expires_at: float) -> str:
    """`YYYY-MM-DD HH:MM:SS` in UTC, rounded up to the second so that the lock
    never comes early; the admin session runs with time_zone +00:00."""
    moment = datetime.datetime.fromtimestamp(math.ceil(expires_at), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def render(
    template: str, values: Mapping[str, str], *, backslash_escapes: bool = True
) -> str:
    """A template with every placeholder replaced by its quoted value.

    `values["name"]` and `values["host"]` make `{name}`; `values["event"]` is the
    event name, qualified with the database. MintError for a NUL byte in a value.
    """
    out: list[str] = []
    for kind, value in split_template(template):
        if kind == "text":
            out.append(value)
        elif value == "name":
            user = quote_literal(values["name"], backslash_escapes=backslash_escapes)
            host = quote_literal(values["host"], backslash_escapes=backslash_escapes)
            out.append(f"{user}@{host}")
        elif value == "name_literal":
            out.append(
                quote_literal(values["name"], backslash_escapes=backslash_escapes)
            )
        elif value == "event":
            database = quote_identifier(values["database"])
            out.append(f"{database}.{quote_identifier(values['event'])}")
        elif PLACEHOLDERS[value] == "I":
            out.append(quote_identifier(values[value]))
        else:
            out.append(
                quote_literal(values[value], backslash_escapes=backslash_escapes)
            )
    return "".join(out)


class MariaDBMinter:
    """Minter for MariaDB (10.4 and later) through PyMySQL."""

    def mint(
        self, login: AdminLogin, grants: TargetGrants, account: Account
    ) -> Sequence[str]:
        if account.password is None or account.expires_at is None:
            raise MintError(f"account {account.name!r} needs a password and expiry")
        password = account.password.reveal()
        hashed = native_password_hash(password)
        values = _values(login, grants, account, hashed)
        notes: list[str] = []
        try:
            conn = _connect(login)
        except MintError as error:
            raise MintError(_scrub(str(error), (password, hashed))) from None
        try:
            where = "templates.create"
            # Whether the account exists because a creation statement made it.
            ours = False
            try:
                escapes = _backslash_escapes(conn)
                if _locked(conn, values["name"], values["host"]) is not None:
                    raise AccountExists(account.name)
                for step, template in enumerate(grants.create_statements()):
                    where = f"templates.create[{step}]"
                    _execute(conn, render(template, values, backslash_escapes=escapes))
                    if not ours:
                        ours = _locked(conn, values["name"], values["host"]) is not None
                events = grants.event_statements()
                scheduler = _scheduler_state(conn) if events else "ON"
                if scheduler == "ON":
                    for step, template in enumerate(events):
                        where = f"templates.event[{step}]"
                        sql = render(template, values, backslash_escapes=escapes)
                        _execute(conn, sql)
                else:
                    notes.append(
                        f"second lock missing: the event scheduler is {scheduler}, "
                        f"so the server will not lock account {account.name!r} "
                        "at expiry by itself"
                    )
            except AccountExists:
                raise
            except (pymysql.MySQLError, MintError) as error:
                if not ours and _exists_now(login, values):
                    # Made by someone else between the check and CREATE USER.
                    raise AccountExists(account.name) from None
                message = _scrub(
                    f"creating account {account.name!r} failed at {where}: "
                    f"{_describe(error)}",
                    (password, hashed),
                )
                problems = self._rollback(login, grants, values)
                if problems:
                    message += f"; rollback: {'; '.join(problems)}"
                raise MintError(message) from None
        finally:
            _close(conn)
        for note in notes:
            log.warning("%s", note)
        log.info("minted account %s inheriting %s", account.name, account.role)
        return notes

    def _rollback(
        self, login: AdminLogin, grants: TargetGrants, values: Mapping[str, str]
    ) -> list[str]:
        """Run every rollback statement on a fresh connection; describe failures."""
        problems: list[str] = []
        try:
            conn = _connect(login)
        except MintError as error:
            return [str(error)]
        try:
            escapes = _backslash_escapes(conn)
            for step, template in enumerate(grants.rollback_statements()):
                try:
                    _execute(conn, render(template, values, backslash_escapes=escapes))
                except (pymysql.MySQLError, MintError) as error:
                    problems.append(f"templates.rollback[{step}]: {_describe(error)}")
        except pymysql.MySQLError as error:
            problems.append(_describe(error))
        finally:
            _close(conn)
        return problems

    def remove(self, login: AdminLogin, grants: TargetGrants, account: Account) -> str:
        values = _values(login, grants, account, "")
        name, host = values["name"], values["host"]
        conn = _connect(login)
        try:
            where = "the account look-up"
            try:
                escapes = _backslash_escapes(conn)
                if _locked(conn, name, host) is None:
                    where = "dropping its event"
                    template = "DROP EVENT IF EXISTS {event}"
                    _execute(conn, render(template, values, backslash_escapes=escapes))
                    return "no such account (already removed)"
                for step, template in enumerate(grants.revoke_statements()):
                    where = f"templates.revoke[{step}]"
                    _execute(conn, render(template, values, backslash_escapes=escapes))
                    if step == 0:
                        where = "killing its connections"
                        _kill_sessions(conn, name)
                where = "killing its connections"
                left = _end_sessions(conn, name)
                where = "the final check"
                locked = _locked(conn, name, host)
            except (pymysql.MySQLError, MintError) as error:
                raise MintError(
                    f"removing account {name!r} failed at {where}: {_describe(error)}"
                ) from None
        finally:
            _close(conn)
        if left:
            raise MintError(f"{left} connection(s) of account {name!r} still running")
        if locked is None:
            outcome = "dropped"
        elif locked:
            outcome = "locked (kept by templates.revoke)"
        else:
            raise MintError(f"account {name!r} can still log in after templates.revoke")
        log.info("removed account %s: %s", name, outcome)
        return outcome


def _exists_now(login: AdminLogin, values: Mapping[str, str]) -> bool:
    """Whether the account exists, looked up on a fresh connection (the failed
    one may be gone); False when the server cannot be asked."""
    try:
        conn = _connect(login)
    except MintError:
        return False
    try:
        return _locked(conn, values["name"], values["host"]) is not None
    except pymysql.MySQLError:
        return False
    finally:
        _close(conn)


def _values(
    login: AdminLogin, grants: TargetGrants, account: Account, hashed: str
) -> dict[str, str]:
    expiry = "" if account.expires_at is None else expiry_literal(account.expires_at)
    return {
        "name": account.name,
        "host": grants.account_host,
        "password": hashed,
        "expiry": expiry,
        "role": account.role,
        "owner": account.owner,
        "database": login.database,
        "event": event_name(account.name),
    }


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<hidden>")
    return text


def _describe(error: BaseException) -> str:
    args: tuple[object, ...] = tuple(getattr(error, "args", ()))
    if len(args) == 2 and isinstance(args[0], int):
        return f"{args[1]} (error {args[0]})"
    return str(error) or type(error).__name__


def _ssl_arguments(login: AdminLogin) -> dict[str, Any]:
    """PyMySQL's TLS arguments for the target's tls. A context makes TLS
    required; prefer leaves PyMySQL's own default (TLS if offered, unverified)."""
    if login.tls_mode == "disable":
        return {"ssl_disabled": True}
    if login.tls_mode == "prefer" or login.tls_context is None:
        return {}
    return {"ssl": login.tls_context}


def _connect(login: AdminLogin) -> Any:
    """An autocommit admin connection in UTC; MintError when it cannot be made."""
    try:
        conn = pymysql.connect(
            host=login.host,
            port=login.port,
            user=login.user,
            password=login.password.reveal(),
            database=login.database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=login.connect_timeout,
            read_timeout=OPERATION_TIMEOUT,
            write_timeout=OPERATION_TIMEOUT,
            program_name="pamwire-grants",
            **_ssl_arguments(login),
        )
    except pymysql.MySQLError as error:
        raise MintError(
            f"admin login as {login.user!r} to {login.host}:{login.port} failed: "
            f"{_describe(error)}"
        ) from None
    try:
        _execute(conn, "SET SESSION time_zone = '+00:00'")
    except pymysql.MySQLError as error:
        _close(conn)
        raise MintError(
            f"cannot set the admin session up: {_describe(error)}"
        ) from None
    return conn


def _close(conn: Any) -> None:
    # Closing is best effort: the connection may already be gone.
    with contextlib.suppress(pymysql.MySQLError):
        conn.close()


def _execute(conn: Any, sql: str, args: Sequence[object] | None = None) -> list[Any]:
    with conn.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def _backslash_escapes(conn: Any) -> bool:
    """Whether string literals of this session treat a backslash as an escape."""
    rows = _execute(conn, "SELECT @@SESSION.sql_mode")
    return "NO_BACKSLASH_ESCAPES" not in str(rows[0][0]).upper().split(",")


def _scheduler_state(conn: Any) -> str:
    """ON, OFF or DISABLED: whether the server runs events."""
    rows = _execute(conn, "SELECT @@GLOBAL.event_scheduler")
    return str(rows[0][0]).upper()


def _locked(conn: Any, name: str, host: str) -> bool | None:
    """Whether the account is locked; None when it does not exist."""
    # mysql.user has no account_locked column on MariaDB; global_priv keeps it
    # in its JSON (10.4 and later).
    rows = _execute(
        conn,
        "SELECT JSON_EXTRACT(Priv, '$.account_locked') FROM mysql.global_priv"
        " WHERE User = %s AND Host = %s",
        (name, host),
    )
    if not rows:
        return None
    return str(rows[0][0]).lower() in ("true", "1")


def _session_ids(conn: Any, name: str) -> list[int]:
    rows = _execute(
        conn,
        "SELECT ID FROM information_schema.PROCESSLIST"
        " WHERE USER = %s AND ID <> CONNECTION_ID()",
        (name,),
    )
    return [int(row[0]) for row in rows]


def _kill_sessions(conn: Any, name: str) -> None:
    for session in _session_ids(conn, name):
        try:
            _execute(conn, f"KILL CONNECTION {int(session)}")
        except pymysql.MySQLError as error:
            if error.args[:1] != (_ER_NO_SUCH_THREAD,):
                raise


def _end_sessions(conn: Any, name: str) -> int:
    """Kill the account's connections until none is left or SESSION_EXIT_WAIT
    passes; return how many are still there."""
    deadline = time.monotonic() + SESSION_EXIT_WAIT
    while True:
        left = _session_ids(conn, name)
        if not left or time.monotonic() >= deadline:
            return len(left)
        _kill_sessions(conn, name)
        time.sleep(POLL_INTERVAL)

"""Create and remove a grant's PostgreSQL account from the DBA's SQL templates.

Theory of operation. CREATE ROLE's PASSWORD and VALID UNTIL take literals only, so
no statement can be sent with bind parameters. Instead each template is turned into
a format() string (`{name}` becomes `%1$I`, `{expiry}` `%3$L`, ...) and the server
builds the statement itself with `SELECT format($1, $2, ...)`: its own quote_ident
and quote_literal do the quoting, under its own settings, whatever the names hold.
The password placeholder receives a SCRAM-SHA-256 verifier computed here, so the
password itself never reaches the server, its logs or pg_stat_activity.

Creation runs in one transaction: if any statement fails, the server undoes all of
them, and the rollback templates run afterwards for anything outside a transaction.
An account that already exists is not pamwire's (another instance, or a DBA, made
it): the mint fails with AccountExists and the rollback templates never run, since
they would drop it.
Removal runs each statement on its own, so NOLOGIN sticks even when a later step
fails; it ends with a check, by role oid, that no session of the account survives.

asyncpg needs asyncio: the work runs on one asyncio loop in a daemon thread. The
public functions block; trio code calls them through `trio.to_thread.run_sync`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import ssl
import threading
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

import asyncpg
import attrs

from pamwire.grants import MintError
from pamwire.grants.config import PLACEHOLDERS, TargetGrants, split_template
from pamwire.grants.secrets import Secret
from pamwire.pg.auth import make_scram_verifier

log = logging.getLogger("pamwire.grants.minting")

T = TypeVar("T")

# Order of the arguments handed to format(); a placeholder's position is its index
# here plus one. `name_literal` reuses the name with %L.
_ARGUMENTS = ("name", "password", "expiry", "role", "owner", "database")
_POSITION = {name: _ARGUMENTS.index(name) + 1 for name in _ARGUMENTS}
_POSITION["name_literal"] = _POSITION["name"]
_FORMAT_QUERY = "SELECT format($1::text, {})".format(
    ", ".join(f"${i + 2}::text" for i in range(len(_ARGUMENTS)))
)

# A whole mint or removal is a handful of short statements; this bound only keeps
# a hung server from blocking a worker thread forever.
OPERATION_TIMEOUT = 60.0
# Time removal waits for terminated sessions to go, checked every POLL_INTERVAL.
SESSION_EXIT_WAIT = 5.0
POLL_INTERVAL = 0.05


class AccountExists(MintError):
    """The account to mint is already on the server; pamwire leaves it alone."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"account {name!r} already exists; pamwire did not create it and "
            "leaves it alone"
        )


@attrs.frozen(repr=False)
class AdminLogin:
    """Where and as whom pamwire connects to create and remove accounts."""

    host: str
    port: int
    user: str
    password: Secret
    database: str
    connect_timeout: float = 10.0
    # The target's tls: disable, prefer, require, verify-ca or verify-full,
    # with its context (None when disabled).
    tls_mode: str = "disable"
    tls_context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return (
            f"AdminLogin({self.user}@{self.host}:{self.port}/{self.database}, "
            "password=<hidden>)"
        )


@attrs.frozen(repr=False)
class Account:
    """The account of one grant. The password is only needed to create it."""

    name: str
    role: str
    owner: str
    expires_at: float | None = None
    password: Secret | None = None

    def __repr__(self) -> str:
        return f"Account(name={self.name!r}, role={self.role!r}, password=<hidden>)"


class Minter(Protocol):
    """Creates and removes accounts on one kind of server (blocking calls)."""

    def mint(
        self, login: AdminLogin, grants: TargetGrants, account: Account
    ) -> Sequence[str]:
        """Create the account; return warnings for the grant's history (a lock
        the server could not take, say). MintError (nothing left behind) on
        failure."""
        ...

    def remove(self, login: AdminLogin, grants: TargetGrants, account: Account) -> str:
        """Disable and remove the account; return what was done; MintError if
        a step failed (a later call retries)."""
        ...


def to_format_string(template: str) -> str:
    """The format() string for a template: placeholders become %N$I or %N$L."""
    out: list[str] = []
    for kind, value in split_template(template):
        if kind == "text":
            out.append(value.replace("%", "%%"))
        else:
            out.append(f"%{_POSITION[value]}${PLACEHOLDERS[value]}")
    return "".join(out)


def expiry_literal(expires_at: float) -> str:
    """An ISO 8601 UTC timestamp PostgreSQL reads as timestamptz."""
    moment = datetime.datetime.fromtimestamp(expires_at, tz=datetime.UTC)
    return moment.isoformat()


class PostgresMinter:
    """Minter for PostgreSQL through asyncpg."""

    def mint(
        self, login: AdminLogin, grants: TargetGrants, account: Account
    ) -> Sequence[str]:
        if account.password is None or account.expires_at is None:
            raise MintError(f"account {account.name!r} needs a password and expiry")
        verifier = make_scram_verifier(account.password.reveal()).to_string()
        hidden = (account.password.reveal(), verifier)
        values = _values(login, account, verifier)
        try:
            run(_create(login, grants.create_statements(), values), OPERATION_TIMEOUT)
        except AccountExists:
            raise
        except MintError as error:
            message = _scrub(str(error), hidden)
            problems = self._rollback(login, grants, account)
            if problems:
                message += f"; rollback: {'; '.join(problems)}"
            raise MintError(message) from None
        log.info("minted account %s inheriting %s", account.name, account.role)
        return ()

    def _rollback(
        self, login: AdminLogin, grants: TargetGrants, account: Account
    ) -> list[str]:
        values = _values(login, account, "")
        try:
            return run(
                _run_each(login, grants.rollback_statements(), values),
                OPERATION_TIMEOUT,
            )
        except MintError as error:
            return [str(error)]

    def remove(self, login: AdminLogin, grants: TargetGrants, account: Account) -> str:
        values = _values(login, account, "")
        outcome = run(
            _remove(login, grants.revoke_statements(), values), OPERATION_TIMEOUT
        )
        log.info("removed account %s: %s", account.name, outcome)
        return outcome


def _values(login: AdminLogin, account: Account, verifier: str) -> dict[str, str]:
    expiry = "" if account.expires_at is None else expiry_literal(account.expires_at)
    return {
        "name": account.name,
        "password": verifier,
        "expiry": expiry,
        "role": account.role,
        "owner": account.owner,
        "database": login.database,
    }


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<hidden>")
    return text


# -- the asyncio side ----------------------------------------------------------------


def _asyncpg_ssl(login: AdminLogin) -> ssl.SSLContext | str | bool:
    """asyncpg's ssl argument for the target's tls: a context makes it required."""
    if login.tls_mode == "prefer":
        return "prefer"
    return login.tls_context if login.tls_context is not None else False


async def _connect(login: AdminLogin) -> Any:
    try:
        return await asyncpg.connect(
            host=login.host,
            port=login.port,
            user=login.user,
            password=login.password.reveal(),
            database=login.database,
            timeout=login.connect_timeout,
            server_settings={"application_name": "pamwire-grants"},
            ssl=_asyncpg_ssl(login),
        )
    except asyncpg.PostgresError as error:
        raise MintError(
            f"admin login as {login.user!r} to {login.host}:{login.port} failed: "
            f"{_describe(error)}"
        ) from None
    except (TimeoutError, OSError, asyncpg.InterfaceError) as error:
        raise MintError(
            f"cannot reach {login.host}:{login.port} for minting: "
            f"{error or type(error).__name__}"
        ) from None


async def _build(conn: Any, template: str, values: dict[str, str]) -> str:
    statement: str = await conn.fetchval(
        _FORMAT_QUERY, to_format_string(template), *(values[a] for a in _ARGUMENTS)
    )
    return statement


async def _create(
    login: AdminLogin, templates: Sequence[str], values: dict[str, str]
) -> None:
    name = values["name"]
    conn = await _connect(login)
    try:
        if await _role_exists(conn, name):
            raise AccountExists(name)
        step = 0
        try:
            async with conn.transaction():
                for index, template in enumerate(templates):
                    step = index
                    await conn.execute(await _build(conn, template, values))
        except asyncpg.DuplicateObjectError as error:
            # The transaction is undone: a role of that name now is someone else's
            # (made between the check and CREATE ROLE).
            if await _role_exists(conn, name):
                raise AccountExists(name) from None
            raise MintError(
                f"creating account {name!r} failed at "
                f"templates.create[{step}]: {_describe(error)}"
            ) from None
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise MintError(
                f"creating account {values['name']!r} failed at "
                f"templates.create[{step}]: {_describe(error)}"
            ) from None
    finally:
        await _close(conn)


async def _role_exists(conn: Any, name: str) -> bool:
    found = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name)
    return found is not None


async def _run_each(
    login: AdminLogin, templates: Sequence[str], values: dict[str, str]
) -> list[str]:
    """Run every statement on its own; return a description of each failure."""
    conn = await _connect(login)
    problems: list[str] = []
    try:
        for step, template in enumerate(templates):
            try:
                await conn.execute(await _build(conn, template, values))
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                problems.append(f"templates.rollback[{step}]: {_describe(error)}")
    finally:
        await _close(conn)
    return problems


async def _remove(
    login: AdminLogin, templates: Sequence[str], values: dict[str, str]
) -> str:
    name = values["name"]
    conn = await _connect(login)
    try:
        oid = await conn.fetchval("SELECT oid FROM pg_roles WHERE rolname = $1", name)
        if oid is None:
            return "no such account (already removed)"
        step = 0
        try:
            for index, template in enumerate(templates):
                step = index
                await conn.execute(await _build(conn, template, values))
            left = await _end_sessions(conn, oid)
            still_there = await conn.fetchval(
                "SELECT rolcanlogin FROM pg_roles WHERE oid = $1", oid
            )
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise MintError(
                f"removing account {name!r} failed at templates.revoke[{step}]: "
                f"{_describe(error)}"
            ) from None
    finally:
        await _close(conn)
    if left:
        raise MintError(f"{left} session(s) of account {name!r} are still running")
    if still_there is None:
        return "dropped"
    if still_there:
        raise MintError(f"account {name!r} can still log in after templates.revoke")
    return "disabled (kept by templates.revoke)"


async def _end_sessions(conn: Any, oid: int) -> int:
    """Terminate what the templates left of the role's sessions; return how many
    are still there after SESSION_EXIT_WAIT. By oid: a dropped role has no name."""
    query = (
        "SELECT pid FROM pg_stat_activity WHERE usesysid = $1"
        " AND pid <> pg_backend_pid()"
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SESSION_EXIT_WAIT
    while True:
        pids = [row[0] for row in await conn.fetch(query, oid)]
        if not pids or loop.time() >= deadline:
            return len(pids)
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids
        )
        await asyncio.sleep(POLL_INTERVAL)


async def _close(conn: Any) -> None:
    try:
        await conn.close(timeout=5)
    except (TimeoutError, OSError, asyncpg.InterfaceError):
        conn.terminate()


def _describe(error: BaseException) -> str:
    sqlstate = getattr(error, "sqlstate", None)
    text = str(error) or type(error).__name__
    return f"{text} (SQLSTATE {sqlstate})" if sqlstate else text


# -- the loop thread -----------------------------------------------------------------


class _LoopThread:
    """One asyncio loop in a daemon thread, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="pamwire-grants-asyncio", daemon=True
                )
                thread.start()
                self._loop = loop
            return asyncio.run_coroutine_threadsafe(coro, self._loop)


_LOOP = _LoopThread()


def run(coro: Awaitable[T], timeout: float) -> T:
    """Run a coroutine on the minting loop and wait for it; MintError on timeout.

    Blocks the calling thread: from trio, use trio.to_thread.run_sync.
    """

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    future = _LOOP.submit(bounded())
    try:
        return future.result(timeout + 5)
    except TimeoutError:
        future.cancel()
        raise MintError(f"database work took longer than {timeout:g} s") from None

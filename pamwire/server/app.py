"""Runs a pamwire instance: opens the stores, starts the listeners, serves sessions.

Each accepted connection gets its own task; whatever goes wrong inside one session is
logged and ends that session only.
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Awaitable, Callable

import trio

from pamwire.audit import journal
from pamwire.audit.store import AuditStore
from pamwire.config import Config, Listener
from pamwire.errors import PamwireError
from pamwire.grants.credentials import GrantCredentials
from pamwire.grants.service import GrantService
from pamwire.rules.engine import RuleSet
from pamwire.rules.loader import load_rules
from pamwire.server.audit_writer import AuditWriter
from pamwire.server.context import ServerContext
from pamwire.server.credentials import ConfiguredCredentials, CredentialProvider
from pamwire.server.pg_session import PgSession
from pamwire.users import UserStore

log = logging.getLogger("pamwire.server")


def load_ruleset(config: Config) -> RuleSet:
    """Load the rule files the configuration names ('pack:NAME' for shipped packs)."""
    from pamwire.rules.loader import builtin_pack

    paths = []
    for entry in config.rules.files:
        if entry.startswith("pack:"):
            paths.append(builtin_pack(entry.removeprefix("pack:")))
        else:
            paths.append(config.resolve(entry))
    return load_rules(paths)


async def serve(
    config: Config,
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports the bound (host, port) of each listener."""
    rules = load_ruleset(config)
    users = UserStore(config.resolve(config.users.path))
    store_path = config.resolve(config.audit.path)
    audit = config.audit
    store = AuditStore(store_path, full_sync=audit.strict)
    journal.recover(store_path, store)
    event_journal = journal.Journal(store_path, fsync_interval=audit.fsync_interval)
    writer = AuditWriter(
        store,
        journal=event_journal,
        strict=audit.strict,
        checkpoint_every=audit.checkpoint_every,
        checkpoint_interval=audit.checkpoint_interval,
    )
    grants = _grant_service(config)
    credentials: CredentialProvider = ConfiguredCredentials(config)
    if grants is not None:
        await trio.to_thread.run_sync(grants.catch_up)
        credentials = GrantCredentials(grants, fallback=credentials)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            ctx = ServerContext(
                config=config,
                users=users,
                rules=rules,
                audit=writer,
                credentials=credentials,
            )
            if grants is not None:
                nursery.start_soon(grants.expiry_loop, ctx.end_sessions_without_grant)
            bound: list[tuple[str, int]] = []
            for listener in config.listeners:
                handler = _handler(ctx, listener)
                if handler is None:
                    continue
                listeners = await trio.open_tcp_listeners(
                    listener.port, host=listener.host
                )
                for sock_listener in listeners:
                    host, port = sock_listener.socket.getsockname()[:2]
                    bound.append((host, port))
                    log.info(
                        "listening for %s clients on %s:%s",
                        listener.protocol,
                        host,
                        port,
                    )
                    nursery.start_soon(
                        functools.partial(
                            trio.serve_listeners, handler, [sock_listener]
                        )
                    )
            task_status.started(bound)
    finally:
        with trio.CancelScope(shield=True):
            await writer.aclose()
        event_journal.close(discard=not writer.store_behind)
        store.close()
        users.close()
        if grants is not None:
            grants.close()


def _grant_service(config: Config) -> GrantService | None:
    """The grant service, when some target takes grants."""
    if config.grants is None or not config.grants.targets:
        return None
    return GrantService(config, config.grants)


async def serve_until_signal(config: Config) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly, writing queued events."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, config)
            async for signum in signals:
                log.info("received %s; stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def run(config: Config) -> None:
    """Run pamwire in the foreground; PamwireError for start-up failures."""
    try:
        trio.run(serve_until_signal, config)
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if leaves and all(isinstance(e, PamwireError) for e in leaves):
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _handler(
    ctx: ServerContext, listener: Listener
) -> Callable[[trio.SocketStream], Awaitable[None]] | None:
    if listener.protocol != "postgres":
        # TODO(mysql): the MySQL listener arrives with the MySQL protocol issue.
        log.warning("%s listeners are not implemented yet; skipped", listener.protocol)
        return None

    async def handle(stream: trio.SocketStream) -> None:
        session = PgSession(ctx, stream, listener.max_message_size)
        try:
            await session.serve()
        except Exception:
            # One broken session must never take the server down.
            log.exception("conn %s: unexpected error; session closed", session.conn_no)

    return handle

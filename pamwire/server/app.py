"""Runs a pamwire instance: opens the stores, starts the listeners, serves sessions.

Each accepted connection gets its own task; whatever goes wrong inside one session is
logged and ends that session only.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from pamwire.audit import journal
from pamwire.audit.events import AuditEvent, new_event_id
from pamwire.audit.literals import LiteralRedactor, compile_classes
from pamwire.audit.store import AuditStore, AuditWriteError
from pamwire.config import Config, Listener
from pamwire.errors import PamwireError
from pamwire.grants.credentials import GrantCredentials
from pamwire.grants.service import GrantService
from pamwire.rules.engine import RuleSet
from pamwire.rules.loader import builtin_pack, load_rules
from pamwire.server.audit_writer import AuditWriter
from pamwire.server.context import ServerContext
from pamwire.server.credentials import ConfiguredCredentials, CredentialProvider
from pamwire.server.mysql_session import MySqlSession
from pamwire.server.pg_session import PgSession
from pamwire.server.store_copier import StoreCopier
from pamwire.server.tls import ServerTls, server_tls, upstream_tls_by_target
from pamwire.users import UserStore

log = logging.getLogger("pamwire.server")


def load_ruleset(config: Config) -> RuleSet:
    """Load the rule files the configuration names ('pack:NAME' for shipped packs)."""
    return load_rules([rule_path(entry, config) for entry in config.rules.files])


def rule_path(entry: str, config: Config | None) -> Path:
    """A rules entry as a file: `pack:NAME` is a shipped pack, other names are
    paths (relative to the configuration file when there is one)."""
    if entry.startswith("pack:"):
        return builtin_pack(entry.removeprefix("pack:"))
    return config.resolve(entry) if config is not None else Path(entry)


async def serve(
    config: Config,
    *,
    reload: trio.MemoryReceiveChannel[None] | None = None,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports the bound (host, port) of each listener.

    Each item received on reload loads the rule files again (see reload_rules).
    """
    # Certificates, keys and CA files are read now: a bad one stops the start.
    listener_tls = [server_tls(config, i) for i in range(len(config.listeners))]
    target_tls = upstream_tls_by_target(config)
    rules = load_ruleset(config)
    users = UserStore(config.resolve(config.users.path))
    store_path = config.resolve(config.audit.path)
    lock = lock_store(store_path)
    audit = config.audit
    store = AuditStore(store_path, full_sync=audit.strict)
    journal.recover(store_path, store)
    event_journal = journal.Journal(store_path, fsync_interval=audit.fsync_interval)
    copier = StoreCopier(store_path, full_sync=audit.strict)
    literals = LiteralRedactor(
        compile_classes(audit.redact_literals, audit.redact_patterns)
    )
    writer = AuditWriter(
        store,
        journal=event_journal,
        copier=copier,
        literals=literals,
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
        async with trio.open_nursery() as outer:
            # The writer is shielded: on shutdown it must copy every journaled event
            # into the store before it stops, so it ends only through aclose().
            await copier.start()
            await outer.start(_shielded, writer.run)
            try:
                async with trio.open_nursery() as nursery:
                    ctx = ServerContext(
                        config=config,
                        users=users,
                        rules=rules,
                        audit=writer,
                        credentials=credentials,
                        upstream_tls=target_tls,
                        literals=literals,
                    )
                    if grants is not None:
                        nursery.start_soon(
                            grants.expiry_loop, ctx.end_sessions_without_grant
                        )
                    if reload is not None:
                        nursery.start_soon(_reload_loop, ctx, reload)
                    bound = await _start_listeners(nursery, ctx, config, listener_tls)
                    task_status.started(bound)
            finally:
                with trio.CancelScope(shield=True):
                    await writer.aclose()
                    await copier.aclose()
    finally:
        event_journal.close(discard=writer.all_in_store)
        store.close()
        users.close()
        if grants is not None:
            grants.close()
        os.close(lock)


async def _reload_loop(
    ctx: ServerContext, requests: trio.MemoryReceiveChannel[None]
) -> None:
    async for _ in requests:
        await reload_rules(ctx)


async def reload_rules(ctx: ServerContext) -> bool:
    """Load the configured rule files again and use them from the next statement on.

    Prepared statements are decided again at their next execution. A file that
    does not load leaves the rules as they were. Either way the outcome is logged
    and written to the audit trail as a `rules_reload` event; True if loaded.
    """
    files = [rule_path(entry, ctx.config) for entry in ctx.config.rules.files]
    try:
        rules = await trio.to_thread.run_sync(load_rules, files)
    except PamwireError as exc:
        log.error("rules not reloaded, the previous rules stay: %s", exc)
        _write_reload_event(ctx, "failed", f"previous rules stay: {exc}")
        return False
    emptied = _emptied_files(ctx.rules, rules)
    if emptied:
        # A file caught half-written, or truncated: keep the rules in force.
        reason = (
            f"{', '.join(emptied)} no longer holds any rule; restart pamwire if "
            "that is meant"
        )
        log.error("rules not reloaded, the previous rules stay: %s", reason)
        _write_reload_event(ctx, "failed", f"previous rules stay: {reason}")
        return False
    ctx.rules = rules
    digests = " ".join(f"{path.name}:{_file_digest(path)}" for path in files)
    log.info("rules reloaded: %d rules from %d files", len(rules.rules), len(files))
    _write_reload_event(ctx, "loaded", f"{len(rules.rules)} rules; {digests}")
    return True


def _emptied_files(old: RuleSet, new: RuleSet) -> list[str]:
    """Rule files that held rules in old and hold none in new."""
    before = {rule.origin for rule in old.rules}
    after = {rule.origin for rule in new.rules}
    return sorted(before - after)


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"


def _write_reload_event(ctx: ServerContext, outcome: str, detail: str) -> None:
    event = AuditEvent(
        event_id=new_event_id(),
        time=time.time(),
        kind="rules_reload",
        session="pamwire",
        user=None,
        target=None,
        client_addr=None,
        application="pamwire",
        operation=outcome,
        detail=detail,
    )
    try:
        ctx.audit.write_nowait(event)
    except AuditWriteError as exc:
        log.error("rules_reload event not written: %s", exc)


def lock_store(store_path: Path) -> int:
    """Take the audit store for this process; a second pamwire on it is refused.

    Two instances on one store would recover (and delete) each other's journal.
    """
    # The real file's name: a second configuration that reaches the same store
    # through a symbolic link must meet the same lock.
    real = store_path.resolve()
    lock_path = real.with_name(real.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise PamwireError(
            f"the audit store {store_path} is in use by another pamwire process"
        ) from None
    return fd


async def _shielded(
    fn: Callable[..., Awaitable[None]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    with trio.CancelScope(shield=True):
        await fn(task_status=task_status)


async def _start_listeners(
    nursery: trio.Nursery,
    ctx: ServerContext,
    config: Config,
    listener_tls: list[ServerTls | None],
) -> list[tuple[str, int]]:
    """Bind every listener and serve it in the nursery; returns the addresses."""
    bound: list[tuple[str, int]] = []
    for listener, tls in zip(config.listeners, listener_tls, strict=True):
        handler = _handler(ctx, listener, tls)
        if handler is None:
            continue
        try:
            listeners = await trio.open_tcp_listeners(
                listener.port or 0, host=listener.host
            )
        except OSError as exc:
            raise PamwireError(
                f"cannot listen on {listener.host}:{listener.port}: "
                f"{exc.strerror or exc}"
            ) from None
        for sock_listener in listeners:
            host, port = sock_listener.socket.getsockname()[:2]
            bound.append((host, port))
            log.info(
                "listening for %s clients on %s:%s (tls %s)",
                listener.protocol,
                host,
                port,
                listener.tls,
            )
            nursery.start_soon(
                functools.partial(trio.serve_listeners, handler, [sock_listener])
            )
    return bound


def _grant_service(config: Config) -> GrantService | None:
    """The grant service, when some target takes grants."""
    if config.grants is None or not config.grants.targets:
        return None
    return GrantService(config, config.grants)


async def serve_until_signal(
    config: Config, on_ready: Callable[[list[tuple[str, int]]], None] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly, writing queued events;
    SIGHUP reloads the rule files. on_ready is called with the bound addresses
    once clients can connect."""
    signums = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    send_reload, receive_reload = trio.open_memory_channel[None](1)
    with trio.open_signal_receiver(*signums) as signals:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(
                functools.partial(serve, config, reload=receive_reload)
            )
            if on_ready is not None:
                on_ready(bound)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    log.info("received SIGHUP; reloading the rules")
                    with contextlib.suppress(trio.WouldBlock):
                        send_reload.send_nowait(None)  # one pending is enough
                    continue
                log.info("received %s; stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def run(
    config: Config, on_ready: Callable[[list[tuple[str, int]]], None] | None = None
) -> None:
    """Run pamwire in the foreground; PamwireError for start-up failures."""
    try:
        trio.run(serve_until_signal, config, on_ready)
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
    ctx: ServerContext, listener: Listener, tls: ServerTls | None
) -> Callable[[trio.SocketStream], Awaitable[None]] | None:
    session_class: type[PgSession] | type[MySqlSession] = PgSession
    if listener.protocol == "mysql":
        session_class = MySqlSession
    elif listener.protocol != "postgres":
        log.warning("%s listeners are not implemented; skipped", listener.protocol)
        return None

    async def handle(stream: trio.SocketStream) -> None:
        session = session_class(
            ctx,
            stream,
            listener.max_message_size,
            login_timeout=listener.login_timeout,
            max_clients=listener.max_clients,
            tls=tls,
        )
        try:
            await session.serve()
        except Exception:
            # One broken session must never take the server down.
            log.exception("conn %s: unexpected error; session closed", session.conn_no)

    return handle

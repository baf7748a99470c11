"""Grant operations: request, approve, deny, revoke, list, show, and the expiry sweep.

Ties the store, the approval policy, the minting of accounts and the sealed
passwords together. Every call blocks (SQLite, and the database for minting and
removal); trio code runs them through `trio.to_thread.run_sync`. The one async
function, `expiry_loop`, does exactly that for the proxy.

Life of a grant: `request` stores it; each `approve` adds an approval, and the one
that completes the policy mints the account and makes the grant approved until
approval time plus its duration. `revoke`, or `expire_due` after its end, ends it
and removes the account; a removal that fails is retried by later sweeps, with a
growing pause. `catch_up` runs the sweep once when pamwire starts.

The expiry loop. A pass hands the active grant ids to the proxy, which ends every
session on any other grant, then runs the sweep (`expire_due`). The next pass
comes at the earliest grant end or removal retry the store knows of, at most
RECHECK_INTERVAL later; meanwhile the loop asks SQLite every WATCH_INTERVAL
whether another process (the command line approving or revoking) committed to the
file, and if so starts a pass at once. So sessions end within milliseconds of a
grant's end and within about WATCH_INTERVAL of a revocation elsewhere, without a
full sweep every second.

Every step is also an audit event of kind `grant` (pamwire/grants/audit.py): a
request or approval is refused when the audit store cannot be written; a denial,
revocation, expiry or cleanup goes ahead and logs the audit failure.
"""

from __future__ import annotations

import builtins
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import attrs
import trio

from pamwire.config import Config, Credential, Target
from pamwire.errors import ConfigError
from pamwire.grants import GrantError, MintError, NoActiveGrant, PolicyError
from pamwire.grants.audit import AuditBatch, GrantAudit, GrantStep
from pamwire.grants.config import GrantsConfig, TargetGrants, format_duration
from pamwire.grants.mariadb import MariaDBMinter
from pamwire.grants.minting import (
    OPERATION_TIMEOUT,
    Account,
    AdminLogin,
    Minter,
    PostgresMinter,
)
from pamwire.grants.policy import (
    Policy,
    approvals_complete,
    check_approver,
    check_request,
    may_end,
    narrowest,
    policy_for,
)
from pamwire.grants.secrets import Secret, SecretBox, new_password
from pamwire.grants.store import (
    SYSTEM_ACTOR,
    AccountState,
    Approval,
    Grant,
    GrantEvent,
    GrantStore,
    State,
)
from pamwire.server.credentials import UpstreamCredential
from pamwire.server.tls import upstream_tls
from pamwire.users import NAME_PATTERN, NAME_RULE

log = logging.getLogger("pamwire.grants")

# A mint that started this long ago and never finished belongs to a process that
# died; the sweep removes whatever it may have created.
MINT_STALE_AFTER = 300.0
# How long a process may take to remove an account before another takes the
# removal over: a removal's longest database work plus a margin.
CLEANUP_LEASE = OPERATION_TIMEOUT + 10.0
# Pause before retrying a failed removal: doubles per attempt, up to the cap.
RETRY_FIRST = 2.0
RETRY_CAP = 300.0
# The expiry loop (see the module docstring): how often it asks the store whether
# another process changed it; a quarter second keeps a revocation by the command
# line well within the one second the sessions get. Its full pass runs at the
# next grant end or retry, and at least every RECHECK_INTERVAL seconds as a net
# for what a change check cannot see (the file replaced under the open
# connection, say). The wait re-reads the wall clock every WATCH_INTERVAL, so a
# clock step delays a pass by at most that.
WATCH_INTERVAL = 0.25
RECHECK_INTERVAL = 5.0
# Shortest pause between two passes, so work that stays due cannot spin the loop.
MIN_PAUSE = 0.01
# Longest account name per target protocol: PostgreSQL truncates identifiers to 63
# bytes; MariaDB took 80 characters for a user name before 10.6 (128 since). Names
# are ASCII, so characters are bytes.
MAX_ACCOUNT_NAME = {"postgres": 63, "mysql": 80}


def account_name(
    prefix: str, tag: str, person: str, grant_id: int, max_length: int = 63
) -> str:
    """The account minted for a grant: `<prefix><tag>_<person>_<id>`.

    The tag is the grants file's own (GrantStore.account_tag), so two pamwire
    instances with separate files never mint the same name on one server; the
    person's name, folded to a-z 0-9 _ and shortened to fit `max_length`, makes the
    server's own logs name one person. GrantError when even an empty person part
    would not fit (a prefix of 24 characters leaves room for 26-digit ids).
    """
    head = f"{prefix}{tag}_"
    suffix = f"_{grant_id}"
    room = max_length - len(head) - len(suffix)
    if room < 1:
        raise GrantError(
            f"account names of {head}..{suffix} exceed {max_length} characters"
        )
    folded = re.sub(r"[^a-z0-9_]", "_", person.lower())
    return head + folded[:room] + suffix


def request_command(target: str, role: str | None = None) -> str:
    """The command a person runs to ask for a grant (shown in errors)."""
    role_part = f" --role {role}" if role else " --role ROLE"
    return (
        f"pamwire grant request {target}{role_part} --duration 1h "
        '--reason "..." --as YOU'
    )


@attrs.frozen
class GrantDetails:
    """A grant with its approvals, history and the policy that applies to it."""

    grant: Grant
    approvals: list[Approval]
    history: list[GrantEvent]
    policy: Policy | None


class GrantService:
    """The grant operations over one store; see the module docstring.

    Refusals are PolicyError or GrantError, mint failures MintError; all carry a
    message fit for the person at the command line and none carries a password.
    """

    def __init__(
        self,
        config: Config,
        grants: GrantsConfig,
        *,
        store: GrantStore | None = None,
        box: SecretBox | None = None,
        minters: Mapping[str, Minter] | None = None,
        audit: GrantAudit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.grants = grants
        self.store = store or GrantStore(config.resolve(grants.path))
        self.box = box or SecretBox(Path(config.resolve(grants.key_file)))
        self.minters: Mapping[str, Minter] = (
            {"postgres": PostgresMinter(), "mysql": MariaDBMinter()}
            if minters is None
            else minters
        )
        self.audit = audit or GrantAudit(config.resolve(config.audit.path))
        self.clock = clock

    def close(self) -> None:
        self.store.close()

    # -- requests and decisions -----------------------------------------------------

    def request(
        self,
        person: str,
        target: str,
        role: str | None = None,
        duration: float | None = None,
        reason: str | None = None,
    ) -> Grant:
        """Ask for `role` on `target`; the role defaults to the narrowest, the
        duration to the target's default (capped at the role's longest).

        Raises AuditUnavailable, before storing anything, when the audit store
        cannot be written.
        """
        if not NAME_PATTERN.fullmatch(person):
            raise GrantError(f"invalid person name {person!r}: use {NAME_RULE}")
        target_grants = self._target_grants(target)
        if role is None:
            role = next(iter(target_grants.roles))
        policy = policy_for(self.grants, target_grants, role)
        if duration is None:
            duration = min(target_grants.default_duration, policy.max_duration)
        reason = reason.strip() if reason and reason.strip() else None
        check_request(policy, duration, reason)
        with self.audit.open(required=True) as batch:
            now = self.clock()
            grant = self.store.create(person, target, role, duration, reason, now)
            text = f"{role} for {format_duration(duration)}"
            if reason:
                text += f"; reason: {reason}"
            batch.add(self._step(grant.id, "requested", person, now, text))
        log.info(
            "grant %d requested by %s: %s on %s for %s",
            grant.id,
            person,
            role,
            target,
            format_duration(duration),
        )
        return grant

    def approve(self, grant_id: int, approver: str) -> Grant:
        """Count an approval; the one that completes the policy mints the account.

        Raises PolicyError for self-approval or an approver the policy does not
        name, GrantError when the grant is not waiting, MintError when minting
        failed (the grant then stays requested, the reason in its history; a
        further approve retries), AuditUnavailable (before anything changes)
        when the audit store cannot be written.
        """
        grant = self._get(grant_id)
        if grant.state is not State.REQUESTED:
            raise GrantError(f"grant {grant_id} is {grant.state}, not requested")
        policy = policy_for(self.grants, self._target_grants(grant.target), grant.role)
        check_approver(policy, approver, grant.person)
        with self.audit.open(required=True) as batch:
            now = self.clock()
            if self.store.add_approval(grant_id, approver, now):
                log.info("grant %d approved by %s", grant_id, approver)
                count = len(self.store.approvals(grant_id))
                text = f"{count} of {policy.approvals_needed} approval(s)"
                batch.add(self._step(grant_id, "approval", approver, now, text))
            approvers = [a.approver for a in self.store.approvals(grant_id)]
            if approvals_complete(policy, approvers):
                self._activate(grant, approver, batch)
        return self._get(grant_id)

    def deny(self, grant_id: int, actor: str, reason: str | None = None) -> Grant:
        """Refuse a waiting request: an approver, or the person withdrawing it."""
        grant = self._get(grant_id)
        self._check_may_end(grant, actor)
        with self.audit.open(required=False) as batch:
            now = self.clock()
            if not self.store.end(
                grant_id, State.DENIED, actor, now, reason, (State.REQUESTED,)
            ):
                state = self._get(grant_id).state
                hint = (
                    "; use `grant revoke` to end it" if state is State.APPROVED else ""
                )
                raise GrantError(f"grant {grant_id} is {state}, not requested{hint}")
            log.info("grant %d denied by %s", grant_id, actor)
            batch.add(self._step(grant_id, "denied", actor, now, reason))
        return self._get(grant_id)

    def revoke(self, grant_id: int, actor: str, reason: str | None = None) -> Grant:
        """End an approved grant now and remove its account; a grant still
        requested (never approved, or its mint failed) is denied instead, since
        it has no account.

        A failed removal does not undo the revocation: it is recorded in the
        grant (last_error) and retried by the sweep. GrantError for a grant
        that has already ended.
        """
        grant = self._get(grant_id)
        if grant.state is State.REQUESTED:
            return self.deny(grant_id, actor, reason)
        self._check_may_end(grant, actor)
        with self.audit.open(required=False) as batch:
            now = self.clock()
            if not self.store.end(
                grant_id, State.REVOKED, actor, now, reason, (State.APPROVED,)
            ):
                state = self._get(grant_id).state
                raise GrantError(
                    f"grant {grant_id} is {state}, not approved: nothing to revoke"
                )
            log.info("grant %d revoked by %s", grant_id, actor)
            batch.add(self._step(grant_id, "revoked", actor, now, reason))
            self._remove_account(self._get(grant_id), batch)
        return self._get(grant_id)

    # -- reading -----------------------------------------------------------------

    def list(
        self,
        *,
        active: bool = False,
        person: str | None = None,
        target: str | None = None,
    ) -> builtins.list[Grant]:
        """Grants matching the filters; `active` keeps approved, unexpired ones."""
        grants = self.store.list(person=person, target=target)
        if active:
            now = self.clock()
            grants = [g for g in grants if g.is_active(now)]
        return grants

    def show(self, grant_id: int) -> GrantDetails:
        grant = self._get(grant_id)
        try:
            policy: Policy | None = policy_for(
                self.grants, self._target_grants(grant.target), grant.role
            )
        except GrantError:
            policy = None  # the target or role left the configuration
        return GrantDetails(
            grant,
            self.store.approvals(grant_id),
            self.store.history(grant_id),
            policy,
        )

    def active_grants(self, now: float | None = None) -> builtins.list[Grant]:
        """Approved grants not past their end at `now` (default: the clock)."""
        return self.store.active(self.clock() if now is None else now)

    def active_grant_ids(self, now: float | None = None) -> frozenset[int]:
        """Ids of active_grants(); a session on any other grant must end."""
        return frozenset(g.id for g in self.active_grants(now))

    def find_active(self, person: str, target: str, role: str | None = None) -> Grant:
        """The person's active grant on `target`: of `role` if given, else the
        narrowest. Raises NoActiveGrant naming the command to request one."""
        target_grants = self.grants.targets.get(target)
        if target_grants is None:
            raise NoActiveGrant(f"target {target!r} takes no grants")
        now = self.clock()
        mine = [
            g for g in self.store.list(person=person, target=target) if g.is_active(now)
        ]
        if role is not None:
            mine = [g for g in mine if g.role == role]
        chosen = narrowest(target_grants, {g.id: g.role for g in mine})
        if chosen is None:
            wanted = f"role {role!r} on {target!r}" if role else repr(target)
            raise NoActiveGrant(
                f"{person!r} has no active grant for {wanted}; "
                f"request one with: {request_command(target, role)}"
            )
        return next(g for g in mine if g.id == chosen)

    def account_for(self, grant: Grant) -> str:
        """The name of the account this store mints for `grant` (see account_name).

        GrantError when the target left the configuration or the name cannot fit.
        """
        target = self.config.targets.get(grant.target)
        if target is None:
            raise GrantError(f"no target named {grant.target!r}")
        return account_name(
            self.grants.account_prefix,
            self.store.account_tag,
            grant.person,
            grant.id,
            MAX_ACCOUNT_NAME.get(target.protocol, min(MAX_ACCOUNT_NAME.values())),
        )

    def credential(self, grant: Grant) -> UpstreamCredential:
        """The minted account of an active grant and its password, decrypted."""
        sealed = self.store.sealed_password(grant.id)
        if grant.account is None or sealed is None:
            raise GrantError(f"grant {grant.id} has no account")
        secret = self.box.open(sealed, _context(grant.id, grant.account))
        return UpstreamCredential(grant.account, secret.reveal())

    # -- expiry --------------------------------------------------------------------

    def expire_due(self, now: float | None = None) -> builtins.list[Grant]:
        """End approved grants whose time is up, then remove every account that
        is due to go (including retries); return the grants ended now."""
        now = self.clock() if now is None else now
        ended: builtins.list[Grant] = []
        with self.audit.open(required=False) as batch:
            for grant in self.store.due(now):
                if self.store.end(
                    grant.id, State.EXPIRED, SYSTEM_ACTOR, now, None, (State.APPROVED,)
                ):
                    log.info("grant %d expired", grant.id)
                    ended.append(self._get(grant.id))
                    batch.add(self._step(grant.id, "expired", SYSTEM_ACTOR, now))
            for grant in self.store.needing_cleanup(now, now - MINT_STALE_AFTER):
                self._remove_account(grant, batch, now)
        return [self._get(g.id) for g in ended]

    def catch_up(self) -> builtins.list[Grant]:
        """The sweep once at start: what ended while pamwire was down."""
        ended = self.expire_due()
        if ended:
            log.info(
                "expired %d grant(s) that ended while pamwire was down", len(ended)
            )
        return ended

    async def expiry_loop(
        self,
        end_sessions: Callable[[frozenset[int]], Awaitable[None]],
        *,
        watch_interval: float = WATCH_INTERVAL,
        recheck_interval: float = RECHECK_INTERVAL,
        run_sync: Callable[..., Awaitable[Any]] = trio.to_thread.run_sync,
    ) -> NoReturn:
        """End sessions and grants on time; see "the expiry loop" in the module
        docstring. `run_sync` runs the blocking calls (tests pass an inline one);
        errors of the store propagate and end the loop."""
        while True:
            # Read before the pass, so a change committed during it wakes the next.
            version = await run_sync(self.store.data_version)
            now = self.clock()
            await end_sessions(await run_sync(self.active_grant_ids, now))
            await run_sync(self.expire_due, now)
            due = await run_sync(self.store.next_due)
            wake_at = now + recheck_interval
            if due is not None:
                wake_at = min(wake_at, due)
            # Work already due (a grant approved a moment ago with a tiny
            # duration) gets a new pass soon, but never a busy loop.
            wake_at = max(wake_at, self.clock() + MIN_PAUSE)
            await self._wait(version, wake_at, watch_interval, run_sync)

    async def _wait(
        self,
        version: int,
        wake_at: float,
        watch_interval: float,
        run_sync: Callable[..., Awaitable[Any]],
    ) -> None:
        """Sleep until `wake_at` (by the service clock) or until another process
        changes the store, checking for a change every `watch_interval`."""
        while True:
            remaining = wake_at - self.clock()
            if remaining <= 0:
                return
            await trio.sleep(min(watch_interval, remaining))
            if await run_sync(self.store.data_version) != version:
                return

    # -- helpers -------------------------------------------------------------------

    def _get(self, grant_id: int) -> Grant:
        grant = self.store.get(grant_id)
        if grant is None:
            raise GrantError(f"no grant {grant_id}")
        return grant

    def _target_grants(self, target: str) -> TargetGrants:
        if target not in self.config.targets:
            raise GrantError(f"no target named {target!r}")
        target_grants = self.grants.targets.get(target)
        if target_grants is None:
            raise GrantError(f"target {target!r} takes no grants (no grants table)")
        return target_grants

    def _check_may_end(self, grant: Grant, actor: str) -> None:
        policy = policy_for(self.grants, self._target_grants(grant.target), grant.role)
        if not may_end(policy, actor, grant.person):
            raise PolicyError(
                f"{actor!r} may not end grant {grant.id}: not its person and "
                f"not an approver of {grant.role!r} on {grant.target!r}"
            )

    def _activate(self, grant: Grant, actor: str, batch: AuditBatch) -> None:
        now = self.clock()
        try:
            name = self.account_for(grant)
        except GrantError as error:
            raise MintError(f"grant {grant.id} cannot be minted: {error}") from None
        if not self.store.claim_mint(grant.id, name, now, now - MINT_STALE_AFTER):
            raise GrantError(f"grant {grant.id} is being activated elsewhere")
        expires_at = now + grant.duration
        password = new_password()
        try:
            sealed = self.box.seal(password, _context(grant.id, name))
            target_grants = self._target_grants(grant.target)
            login, minter = self._admin(grant.target)
            account = self._account(grant, name, password, expires_at)
            notes = minter.mint(login, target_grants, account) or ()
        except (MintError, ConfigError, GrantError) as error:
            failed_at = self.clock()
            self.store.mint_failed(grant.id, failed_at, str(error))
            log.warning("minting for grant %d failed: %s", grant.id, error)
            batch.add(
                self._step(grant.id, "mint_failed", SYSTEM_ACTOR, failed_at, str(error))
            )
            raise MintError(
                f"grant {grant.id} is approved but its account could not be "
                f"created, so it is not active: {error}"
            ) from None
        minted_at = self.clock()
        text = f"account {name} inheriting {account.role}"
        batch.add(self._step(grant.id, "minted", SYSTEM_ACTOR, minted_at, text))
        for note in notes:
            self.store.note(grant.id, minted_at, SYSTEM_ACTOR, "warning", note)
            batch.add(self._step(grant.id, "warning", SYSTEM_ACTOR, minted_at, note))
        if not self.store.activate(grant.id, actor, now, expires_at, sealed):
            # Denied while the account was being created: take it away again.
            self._remove_account(self._get(grant.id), batch)
            raise GrantError(f"grant {grant.id} ended while its account was created")
        until = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(expires_at))
        text = f"active until {until}"
        batch.add(self._step(grant.id, "approved", actor, self.clock(), text))
        log.info(
            "grant %d active as account %s until %s",
            grant.id,
            name,
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires_at)),
        )

    def _remove_account(
        self, grant: Grant, batch: AuditBatch, now: float | None = None
    ) -> None:
        now = self.clock() if now is None else now
        if grant.account is None or grant.account_state not in (
            AccountState.ACTIVE,
            AccountState.MINTING,
        ):
            return
        claimed_at = self.clock()
        if not self.store.claim_cleanup(
            grant.id, claimed_at, claimed_at + CLEANUP_LEASE
        ):
            log.debug("account %s is being removed elsewhere", grant.account)
            return
        if grant.cleanup_attempts:
            text = f"attempt {grant.cleanup_attempts + 1} to remove {grant.account}"
            batch.add(self._step(grant.id, "cleanup_retried", SYSTEM_ACTOR, now, text))
        try:
            target_grants = self._target_grants(grant.target)
            login, minter = self._admin(grant.target)
            account = self._account(grant, grant.account, None, grant.expires_at)
            outcome = minter.remove(login, target_grants, account)
        except (MintError, ConfigError, GrantError) as error:
            pause = min(RETRY_CAP, RETRY_FIRST * 2**grant.cleanup_attempts)
            self.store.cleanup_failed(grant.id, now, str(error), now + pause)
            text = f"{error}; retry in {pause:.0f} s"
            batch.add(self._step(grant.id, "cleanup_failed", SYSTEM_ACTOR, now, text))
            log.warning(
                "removing account %s of grant %d failed (retry in %.0f s): %s",
                grant.account,
                grant.id,
                pause,
                error,
            )
            return
        removed_at = self.clock()
        self.store.account_removed(grant.id, removed_at, outcome)
        text = f"account {grant.account}: {outcome}"
        batch.add(
            self._step(grant.id, "account_removed", SYSTEM_ACTOR, removed_at, text)
        )

    def _step(
        self,
        grant_id: int,
        step: str,
        actor: str,
        at: float,
        text: str | None = None,
    ) -> GrantStep:
        """An audit step for the grant as it is now, with its approvers."""
        grant = self._get(grant_id)
        target = self.config.targets.get(grant.target)
        return GrantStep(
            grant=grant,
            step=step,
            actor=actor,
            at=at,
            text=text,
            approvers=tuple(a.approver for a in self.store.approvals(grant_id)),
            protocol=target.protocol if target is not None else "postgres",
            os_user=self.store.os_user,
        )

    def _account(
        self,
        grant: Grant,
        name: str,
        password: Secret | None,
        expires_at: float | None,
    ) -> Account:
        target_grants = self._target_grants(grant.target)
        return Account(
            name=name,
            role=target_grants.roles.get(grant.role, ""),
            owner=target_grants.owner or self._admin_credential(grant.target).user,
            expires_at=expires_at,
            password=password,
        )

    def _admin_credential(self, target: str) -> Credential:
        target_grants = self._target_grants(target)
        return target_grants.admin or self.config.targets[target].credential

    def _admin(self, target_name: str) -> tuple[AdminLogin, Minter]:
        target: Target = self.config.targets[target_name]
        minter = self.minters.get(target.protocol)
        if minter is None:
            raise GrantError(
                f"pamwire cannot mint accounts on {target.protocol} targets yet"
            )
        target_grants = self._target_grants(target_name)
        credential = self._admin_credential(target_name)
        key = (
            f"target.{target_name}.grants.admin"
            if target_grants.admin is not None
            else f"target.{target_name}.credential"
        )
        password = self.config.read_secret(credential, key=key)
        tls = upstream_tls(self.config, target)
        login = AdminLogin(
            host=target.host,
            port=target.port,
            user=credential.user,
            password=Secret(password),
            database=target_grants.admin_database or target.database,
            connect_timeout=target.connect_timeout,
            tls_mode=tls.mode,
            tls_context=tls.context,
        )
        return login, minter


def _context(grant_id: int, account: str) -> bytes:
    """What a sealed password is bound to: its grant and account."""
    return f"pamwire grant {grant_id} account {account}".encode()

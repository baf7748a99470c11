"""The grants part of the configuration: `[grants]` and `[target.NAME.grants]`.

Declared as attrs records with help text and validated the way pamwire/config.py
validates the rest of the file: an unknown key, a wrong type or a bad value is a
ConfigError naming the file and the dotted key.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from pamwire import configschema
from pamwire.config import Credential
from pamwire.configschema import field as _help
from pamwire.errors import ConfigError
from pamwire.users import NAME_PATTERN, NAME_RULE

T = typing.TypeVar("T")

# Grant role names are typed on command lines and shown in the audit trail.
ROLE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# The prefix is the unquoted start of every minted account, so DBAs can spot them
# in pg_roles and the server log; the rest of the name is derived from the person.
ACCOUNT_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,23}")
# An OS user name as useradd allows it (and a little more): no space, no colon.
OS_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}\$?")
OBJECT_ACTIONS = ("reassign", "drop", "keep")
# MariaDB host part of minted accounts: a name, an address or a pattern with % _.
_ACCOUNT_HOST = re.compile(r"[A-Za-z0-9.:%_-]{1,255}")

# Placeholders a template may use. Each is replaced by a safely quoted identifier
# (I) or literal (L) of the given value; see pamwire/grants/minting.py (PostgreSQL)
# and pamwire/grants/mariadb.py (MariaDB, where {name} is the whole 'user'@'host').
PLACEHOLDERS: dict[str, str] = {
    "name": "I",  # the minted account
    "name_literal": "L",  # the minted account as a string, for WHERE clauses
    "password": "L",  # the account's password verifier (hash), never the password
    "expiry": "L",  # end of the grant: a timestamp in UTC
    "role": "I",  # the database role the account inherits
    "owner": "I",  # who receives the account's objects on revocation
    "database": "I",  # the database pamwire's admin connection is in
    "event": "I",  # MariaDB only: the event that locks the account at expiry
}
PROTOCOL_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "postgres": frozenset(PLACEHOLDERS) - {"event"},
    "mysql": frozenset(PLACEHOLDERS),
}
# The password has no business in statements that remove an account.
_REMOVAL_ONLY = frozenset({"password"})

DEFAULT_CREATE = (
    "CREATE ROLE {name} LOGIN PASSWORD {password} VALID UNTIL {expiry} IN ROLE {role}",
)
DEFAULT_ROLLBACK = ("DROP ROLE IF EXISTS {name}",)
_DISABLE = (
    "ALTER ROLE {name} NOLOGIN",
    # pg_terminate_backend(pid, timeout) waits for the backend to exit (PG 14+).
    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
    " WHERE usename = {name_literal} AND pid <> pg_backend_pid()",
)
_OBJECT_STEPS = {
    "reassign": ("REASSIGN OWNED BY {name} TO {owner}", "DROP OWNED BY {name}"),
    "drop": ("DROP OWNED BY {name}",),
    "keep": (),
}
_DROP = ("DROP ROLE {name}",)

# MariaDB: DDL is not transactional, so a failed creation relies on the rollback
# statements. The first revoke statement must lock the account: pamwire kills the
# account's connections right after it (see pamwire/grants/mariadb.py).
MARIADB_CREATE = (
    "CREATE USER {name} IDENTIFIED BY PASSWORD {password}",
    "GRANT {role} TO {name}",
    "SET DEFAULT ROLE {role} FOR {name}",
)
MARIADB_EVENT = (
    "CREATE EVENT {event} ON SCHEDULE AT {expiry} DO ALTER USER {name} ACCOUNT LOCK",
)
MARIADB_REVOKE = (
    "ALTER USER {name} ACCOUNT LOCK",
    "DROP USER {name}",
    "DROP EVENT IF EXISTS {event}",
)
MARIADB_ROLLBACK = ("DROP USER IF EXISTS {name}", "DROP EVENT IF EXISTS {event}")

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNIT_SECONDS = (86400, 3600, 60, 1)


def parse_duration(value: object) -> float:
    """Seconds from an integer of seconds or text like `90s`, `15m`, `8h`, `1d2h`.

    Raises ValueError naming the value when it is neither, or not positive.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        parts = match.groups()
        if all(part is None for part in parts):
            raise ValueError(f"{value!r} is not a duration (like 90s, 15m, 8h, 1d)")
        seconds = float(
            sum(
                int(p) * unit for p, unit in zip(parts, _UNIT_SECONDS, strict=True) if p
            )
        )
    else:
        raise ValueError(f"{value!r} is not a duration (like 90s, 15m, 8h, 1d)")
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest text parse_duration reads back as `seconds` (whole seconds)."""
    rest = round(seconds)
    out = ""
    for unit, suffix in zip(_UNIT_SECONDS, "dhms", strict=True):
        count, rest = divmod(rest, unit)
        if count:
            out += f"{count}{suffix}"
    return out or "0s"


def split_template(text: str) -> list[tuple[str, str]]:
    """Split a template into ("text", ...) and ("placeholder", name) pieces.

    `{{` and `}}` stand for literal braces. Raises ValueError for an unknown
    placeholder or an unmatched brace.
    """
    pieces: list[tuple[str, str]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "{}" and text[i : i + 2] in ("{{", "}}"):
            literal.append(char)
            i += 2
        elif char == "{":
            end = text.find("}", i)
            if end < 0:
                raise ValueError("unmatched '{'")
            name = text[i + 1 : end]
            if name not in PLACEHOLDERS:
                raise ValueError(
                    f"unknown placeholder {{{name}}}; "
                    f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
                )
            if literal:
                pieces.append(("text", "".join(literal)))
                literal = []
            pieces.append(("placeholder", name))
            i = end + 1
        elif char == "}":
            raise ValueError("unmatched '}' (write '}}' for a brace)")
        else:
            literal.append(char)
            i += 1
    if literal:
        pieces.append(("text", "".join(literal)))
    return pieces


_meta = configschema.metadata
_table = configschema.table


@attrs.frozen
class Templates:
    """SQL a DBA can change; each entry is one statement with placeholders.

    A template left out takes the default of the target's protocol.
    """

    create: tuple[str, ...] | None = _help(
        "statements that create the account (PostgreSQL: one transaction)", None
    )
    revoke: tuple[str, ...] | None = _help(
        "statements that disable and remove the account, each committed on its own "
        "(default: disable, end its sessions, the objects step, drop)",
        None,
    )
    rollback: tuple[str, ...] | None = _help(
        "statements run after a failed creation, to remove anything left", None
    )
    event: tuple[str, ...] | None = _help(
        "MariaDB only: statements creating the event that locks the account at "
        "expiry, run when the event scheduler is on",
        None,
    )


@attrs.frozen
class RolePolicy:
    """Overrides of the target's approval policy for one grant role."""

    approvers: tuple[str, ...] | None = _help("persons who may approve", None)
    approver_groups: tuple[str, ...] | None = _help(
        "groups (from [grants.groups]) whose members may approve", None
    )
    approvals_needed: int | None = _help("approvals before the grant starts", None)
    max_duration: float | None = _help(
        "longest grant, like 8h", None, parse=parse_duration
    )
    reason_required: bool | None = _help("whether a request needs a reason", None)


@attrs.frozen
class TargetGrants:
    """How grants on one target are approved and how their accounts are minted."""

    target: str
    roles: dict[str, str] = attrs.field(
        metadata=_meta(
            "grant role -> database role the minted account inherits; list them "
            "narrowest first (the narrowest active grant wins at login)"
        )
    )
    approvers: tuple[str, ...] = _help("persons who may approve", ())
    approver_groups: tuple[str, ...] = _help(
        "groups (from [grants.groups]) whose members may approve", ()
    )
    approvals_needed: int = _help("approvals before the grant starts", 1)
    max_duration: float = _help(
        "longest grant, like 8h", 8 * 3600.0, parse=parse_duration
    )
    default_duration: float = _help(
        "duration of a request that names none", 3600.0, parse=parse_duration
    )
    reason_required: bool = _help("whether a request needs a reason", True)
    policy: dict[str, RolePolicy] = attrs.field(
        factory=dict,
        metadata=_meta("per grant role overrides: policy.ROLE.approvers and the like"),
    )
    admin: Credential | None = attrs.field(
        default=None,
        metadata=_meta(
            "account that mints (needs CREATEROLE); default: the target's credential"
        ),
    )
    admin_database: str | None = _help(
        "database the admin connects to; default: the target's database", None
    )
    objects: str = _help(
        "what happens to objects a minted account owns at revocation: "
        "reassign (to `owner`), drop, keep",
        "reassign",
    )
    owner: str | None = _help(
        "role that receives reassigned objects; default: the admin account", None
    )
    account_host: str = _help(
        "MariaDB only: host part of minted accounts ('%': any host); set it to "
        "pamwire's address so the accounts work through pamwire alone",
        "%",
    )
    templates: Templates = attrs.field(
        factory=Templates, metadata=_meta("SQL templates for minting and removal")
    )
    # The target's protocol, copied from [target.NAME]; it picks the defaults.
    protocol: str = "postgres"

    def create_statements(self) -> tuple[str, ...]:
        """The configured creation statements, or the protocol's defaults."""
        if self.templates.create is not None:
            return self.templates.create
        return MARIADB_CREATE if self.protocol == "mysql" else DEFAULT_CREATE

    def revoke_statements(self) -> tuple[str, ...]:
        """The configured removal statements, or the defaults (on PostgreSQL,
        those for `objects`)."""
        if self.templates.revoke is not None:
            return self.templates.revoke
        if self.protocol == "mysql":
            return MARIADB_REVOKE
        return _DISABLE + _OBJECT_STEPS[self.objects] + _DROP

    def rollback_statements(self) -> tuple[str, ...]:
        """The configured rollback statements, or the protocol's defaults."""
        if self.templates.rollback is not None:
            return self.templates.rollback
        return MARIADB_ROLLBACK if self.protocol == "mysql" else DEFAULT_ROLLBACK

    def event_statements(self) -> tuple[str, ...]:
        """MariaDB: the statements of the expiry lock event (none on PostgreSQL)."""
        if self.protocol != "mysql":
            return ()
        return MARIADB_EVENT if self.templates.event is None else self.templates.event

    def rank(self, role: str) -> int:
        """Position of a grant role, narrowest first; unknown roles rank last."""
        order = list(self.roles)
        return order.index(role) if role in order else len(order)


@attrs.frozen
class GrantsConfig:
    """The `[grants]` table and every target's `grants` table."""

    path: str = _help("SQLite file of grants", "grants.db")
    key_file: str = _help(
        "file of the key that encrypts minted passwords (created with mode 0600)",
        "grants.key",
    )
    account_prefix: str = _help("start of every minted account name", "pamwire_")
    groups: dict[str, tuple[str, ...]] = attrs.field(
        factory=dict, metadata=_meta("approver groups: name -> list of persons")
    )
    os_users: dict[str, str] = attrs.field(
        factory=dict,
        metadata=_meta(
            "OS user -> person: when set, `pamwire grant` acts as the person its "
            "OS user maps to, and --as may name nobody else"
        ),
    )
    act_for_others: tuple[str, ...] = attrs.field(
        default=(),
        metadata=_meta("OS users who may act as any person with --as"),
    )
    targets: dict[str, TargetGrants] = attrs.field(factory=dict)


# --- parsing -------------------------------------------------------------------


def parse_grants_config(raw: dict[str, Any], path: Path) -> GrantsConfig:
    """Read `[grants]` and each `[target.NAME.grants]` from a whole TOML document.

    Other keys are left to pamwire/config.py (see `without_grants`). Raises
    ConfigError naming the file and key.
    """
    fpath = str(path.resolve()) if path.exists() else str(path)
    settings = _build(GrantsConfig, raw.get("grants", {}), "grants", fpath)

    targets: dict[str, TargetGrants] = {}
    targets_raw = raw.get("target", {})
    if isinstance(targets_raw, dict):
        for name, item in targets_raw.items():
            if isinstance(item, dict) and "grants" in item:
                key = f"target.{name}.grants"
                protocol = item.get("protocol", "postgres")
                extra = {"target": name, "protocol": protocol}
                targets[name] = _build(
                    TargetGrants, item["grants"], key, fpath, extra=extra
                )
    config = attrs.evolve(settings, targets=targets)
    _validate(config, fpath)
    return config


def without_grants(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of a TOML document without the keys parse_grants_config reads."""
    out = {key: value for key, value in raw.items() if key != "grants"}
    targets = out.get("target")
    if isinstance(targets, dict):
        out["target"] = {
            name: (
                {k: v for k, v in item.items() if k != "grants"}
                if isinstance(item, dict)
                else item
            )
            for name, item in targets.items()
        }
    return out


def _validate(config: GrantsConfig, fpath: str) -> None:
    if not ACCOUNT_PREFIX.fullmatch(config.account_prefix):
        raise ConfigError(
            f"{config.account_prefix!r} is not a prefix of 1-24 characters of "
            "a-z 0-9 _ starting with a letter or _",
            path=fpath,
            key="grants.account_prefix",
        )
    for group, members in config.groups.items():
        if not members:
            raise ConfigError(
                "group has no members", path=fpath, key=f"grants.groups.{group}"
            )
    for os_user, person in config.os_users.items():
        if not OS_USER.fullmatch(os_user):
            raise ConfigError(
                f"{os_user!r} is not an OS user name", path=fpath, key="grants.os_users"
            )
        if not NAME_PATTERN.fullmatch(person):
            raise ConfigError(
                f"{person!r} is not a person name: use {NAME_RULE}",
                path=fpath,
                key=f"grants.os_users.{os_user}",
            )
    for os_user in config.act_for_others:
        if not OS_USER.fullmatch(os_user):
            raise ConfigError(
                f"{os_user!r} is not an OS user name",
                path=fpath,
                key="grants.act_for_others",
            )
    for name, target in config.targets.items():
        _validate_target(config, target, f"target.{name}.grants", fpath)


def _validate_target(
    config: GrantsConfig, target: TargetGrants, key: str, fpath: str
) -> None:
    if not target.roles:
        raise ConfigError("name at least one role", path=fpath, key=f"{key}.roles")
    for role, db_role in target.roles.items():
        if not ROLE_NAME.fullmatch(role):
            raise ConfigError(
                f"{role!r} is not a role name (a-z 0-9 _ -, starting with a letter)",
                path=fpath,
                key=f"{key}.roles",
            )
        if not db_role or "\x00" in db_role:
            raise ConfigError(
                f"database role of {role!r} must be a non-empty name",
                path=fpath,
                key=f"{key}.roles.{role}",
            )
    _check_choice(target.objects, OBJECT_ACTIONS, fpath, f"{key}.objects")
    if target.admin is not None and (
        (target.admin.password_file is None) == (target.admin.password_env is None)
    ):
        raise ConfigError(
            "set exactly one of password_file or password_env "
            "(passwords are never written inline)",
            path=fpath,
            key=f"{key}.admin",
        )
    for role in target.policy:
        if role not in target.roles:
            _unknown(role, target.roles, fpath, f"{key}.policy.{role}")
    for role in target.roles:
        _validate_policy(config, target, role, key, fpath)

    if not _ACCOUNT_HOST.fullmatch(target.account_host):
        raise ConfigError(
            f"{target.account_host!r} is not a host pattern "
            "(letters, digits, . - : % _)",
            path=fpath,
            key=f"{key}.account_host",
        )
    allowed = PROTOCOL_PLACEHOLDERS.get(target.protocol, frozenset())
    removal = allowed - _REMOVAL_ONLY
    templates = target.templates
    if target.protocol != "mysql" and templates.event is not None:
        raise ConfigError(
            "only MariaDB targets take an expiry event",
            path=fpath,
            key=f"{key}.templates.event",
        )
    create = target.create_statements()
    _check_templates(create, allowed, fpath, f"{key}.templates.create")
    if not create:
        raise ConfigError(
            "needs at least one statement", path=fpath, key=f"{key}.templates.create"
        )
    _check_templates(
        target.revoke_statements(), removal, fpath, f"{key}.templates.revoke"
    )
    _check_templates(
        target.rollback_statements(), removal, fpath, f"{key}.templates.rollback"
    )
    _check_templates(
        target.event_statements(), removal, fpath, f"{key}.templates.event"
    )


def _validate_policy(
    config: GrantsConfig, target: TargetGrants, role: str, key: str, fpath: str
) -> None:
    override = target.policy.get(role, RolePolicy())
    where = f"{key}.policy.{role}" if role in target.policy else key
    approvers = target.approvers if override.approvers is None else override.approvers
    groups = (
        target.approver_groups
        if override.approver_groups is None
        else override.approver_groups
    )
    needed = (
        target.approvals_needed
        if override.approvals_needed is None
        else override.approvals_needed
    )
    for group in groups:
        if group not in config.groups:
            _unknown(group, config.groups, fpath, f"{where}.approver_groups")
    everyone = set(approvers).union(*(config.groups[g] for g in groups))
    if needed < 1:
        raise ConfigError(
            f"{needed} is below 1", path=fpath, key=f"{where}.approvals_needed"
        )
    if len(everyone) < needed:
        raise ConfigError(
            f"role {role!r} needs {needed} approval(s) but only {len(everyone)} "
            "person(s) may approve",
            path=fpath,
            key=f"{where}.approvers",
        )


def _check_templates(
    statements: Iterable[str], allowed: Iterable[str], fpath: str, key: str
) -> None:
    allowed = set(allowed)
    for i, statement in enumerate(statements):
        try:
            pieces = split_template(statement)
        except ValueError as error:
            raise ConfigError(str(error), path=fpath, key=f"{key}[{i}]") from None
        for kind, value in pieces:
            if kind == "placeholder" and value not in allowed:
                raise ConfigError(
                    f"placeholder {{{value}}} is not allowed here",
                    path=fpath,
                    key=f"{key}[{i}]",
                )


def _check_choice(value: str, allowed: tuple[str, ...], fpath: str, key: str) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{value!r} is not one of {', '.join(allowed)}", path=fpath, key=key
        )


def _unknown(value: str, known: Iterable[str], fpath: str, key: str) -> None:
    known = list(known)
    near = difflib.get_close_matches(value, known, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(known)}"
    raise ConfigError(f"unknown name {value!r}{hint}", path=fpath, key=key)


_build = configschema.build


def describe() -> str:
    """The reference of every grants key with its help text."""
    lines: list[str] = []
    for title, cls in (
        ("[grants]", GrantsConfig),
        ("[target.NAME.grants]", TargetGrants),
        ("[target.NAME.grants.policy.ROLE]", RolePolicy),
        ("[target.NAME.grants.templates]", Templates),
    ):
        lines.append(title)
        for f in attrs.fields(cls):
            if "help" not in f.metadata:
                continue
            default = ""
            if isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
                default = ""
            elif f.default is not attrs.NOTHING:
                default = f" (default {f.default!r})"
            lines.append(f"  {f.name}: {f.metadata['help']}{default}")
    return "\n".join(lines)

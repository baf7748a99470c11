"""The configuration file: declared once as typed records, loaded from TOML, validated.

Every key is declared with its type and help text in the attrs classes below. Loading
walks the TOML tables against those declarations, so an unknown key, a wrong type or a
bad value is an error naming the file and the dotted key (and the nearest valid key
for a typo). Secrets are never inline: a credential names a file or an environment
variable, read only when a connection needs it.
"""

from __future__ import annotations

import os
import tomllib
import typing
from pathlib import Path
from typing import Any

import attrs

from pamwire import configschema
from pamwire.audit import literals
from pamwire.audit import params as audit_params
from pamwire.configschema import field as _help
from pamwire.errors import ConfigError

if typing.TYPE_CHECKING:
    from pamwire.grants.config import GrantsConfig

DEFAULT_CONFIG_NAME = "pamwire.toml"
CONFIG_ENV = "PAMWIRE_CONFIG"
PROTOCOLS = ("postgres", "mysql")
DEPRECATE_EOF_CHOICES = ("client", "on", "off")
LISTENER_TLS_MODES = ("off", "allow", "require")
TARGET_TLS_MODES = ("disable", "prefer", "require", "verify-ca", "verify-full")
T = typing.TypeVar("T")


@attrs.frozen
class Listener:
    """One address pamwire accepts clients on."""

    protocol: str = _help("wire protocol spoken on this listener: postgres or mysql")
    host: str = _help("address to bind", "127.0.0.1")
    port: int | None = _help(
        "TCP port to bind; 0 picks a free port (default 6432 for postgres, "
        "3307 for mysql)",
        None,
    )
    max_message_size: int = _help(
        "largest protocol message accepted from a logged-in client, in bytes",
        256 << 20,
    )
    login_timeout: float = _help(
        "seconds a client has to finish logging in (as authentication_timeout)", 60.0
    )
    max_clients: int = _help(
        "most client sessions at once on this instance; more get 53300", 1000
    )
    tls: str = _help(
        "TLS toward clients: off, allow (clients choose) or require "
        "(plaintext clients are refused before any password is exchanged)",
        "off",
    )
    tls_cert_file: str | None = _help(
        "PEM certificate chain presented to clients (needed unless tls is off)", None
    )
    tls_key_file: str | None = _help(
        "PEM private key of tls_cert_file, unencrypted (needed unless tls is off)",
        None,
    )


@attrs.frozen
class Credential:
    """How pamwire logs in to a target: a user and where its password is kept."""

    user: str = _help("database account pamwire logs in as")
    password_file: str | None = _help("file holding the password (first line)", None)
    password_env: str | None = _help("environment variable holding the password", None)


@attrs.frozen
class Target:
    """A named upstream database; the database name a client asks for picks it."""

    name: str
    protocol: str = _help("postgres or mysql")
    host: str = _help("upstream server address")
    port: int = _help("upstream server port")
    database: str = _help("database name on the upstream server")
    credential: Credential = _help("the account pamwire logs in as upstream")
    connect_timeout: float = _help("seconds to wait for the upstream login", 10.0)
    role: str | None = _help(
        "grant role the rules see for sessions on this target (read-only, ...)", None
    )
    alias: str | None = _help(
        "the name clients use for this target, if not the table's name "
        "(lets a postgres and a mysql target share one name)",
        None,
    )
    audit_params: str = _help(
        "what audit events keep of bound parameters: redacted ('?' per value), "
        "values (the values, except for statements that may carry a secret) "
        "or none",
        "redacted",
    )
    deprecate_eof: str = _help(
        "mysql: ask the server for CLIENT_DEPRECATE_EOF as the client did (client), "
        "whenever it offers it (on) or never (off); pamwire translates between legs",
        "client",
    )
    tls: str = _help(
        "TLS toward the server: disable, prefer (if offered), require (unverified), "
        "verify-ca (certificate checked) or verify-full (certificate and name)",
        "disable",
    )
    tls_ca_file: str | None = _help(
        "PEM file of the CAs that verify the server (default: the system's)", None
    )
    tls_server_name: str | None = _help(
        "name the server's certificate must carry for verify-full (default: host)",
        None,
    )

    @property
    def client_name(self) -> str:
        """The database name a client asks for to reach this target."""
        return self.alias or self.name


def _literal_class_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of class names")
    literals.compile_classes(value, {})
    return tuple(value)


def _literal_patterns(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(v, str) for v in value.values()
    ):
        raise ValueError("must be a table of name = regular expression")
    literals.compile_classes((), value)
    return dict(value)


@attrs.frozen
class AuditConfig:
    """Where the audit trail is written."""

    path: str = _help("SQLite file of the audit trail", "audit.db")
    fsync_interval: float = _help(
        "seconds between grouped fsyncs of the audit journal", 0.1
    )
    strict: bool = _help(
        "wait for the fsync covering a statement's event before forwarding it", False
    )
    checkpoint_every: int = _help("records between hash-chain checkpoints", 1000)
    record_rows: int = _help(
        "result rows recorded per statement for session replay (0: none)", 100
    )
    record_bytes: int = _help(
        "bytes of result rows recorded per session for replay", 1 << 20
    )
    checkpoint_interval: float = _help(
        "longest time, in seconds, from a record to the next checkpoint", 10.0
    )
    redact_literals: tuple[str, ...] = _help(
        "shipped classes of values replaced in stored statements and bound values: "
        "card-number, email, us-ssn, iban",
        (),
        parse=_literal_class_names,
    )
    redact_patterns: dict[str, str] = _help(
        "classes of your own: name = regular expression, replaced the same way",
        attrs.Factory(dict),
        parse=_literal_patterns,
    )


@attrs.frozen
class UsersConfig:
    """Where persons and their SCRAM verifiers are stored."""

    path: str = _help("SQLite file of persons", "users.db")


@attrs.frozen
class RulesConfig:
    """Which rule files decide statements."""

    files: tuple[str, ...] = _help(
        "rule files, relative to the config file; 'pack:NAME' names a shipped pack",
        ("pack:baseline",),
    )


@attrs.frozen
class Config:
    """The whole configuration of one pamwire instance."""

    path: Path
    listeners: tuple[Listener, ...]
    targets: dict[str, Target]
    audit: AuditConfig
    users: UsersConfig
    rules: RulesConfig
    # The [grants] table and each target's grants table (pamwire/grants/config.py).
    grants: GrantsConfig | None = None

    def groups_of(self, person: str) -> frozenset[str]:
        """The groups a person belongs to ([grants.groups]), for `when.group`."""
        if self.grants is None:
            return frozenset()
        return frozenset(
            group for group, members in self.grants.groups.items() if person in members
        )

    def target_for(self, protocol: str, name: str) -> Target | None:
        """The target of this protocol that clients reach with this database name."""
        for target in self.targets.values():
            if target.protocol == protocol and target.client_name == name:
                return target
        return None

    def resolve(self, value: str) -> Path:
        """A path from the file, taken relative to the file's own folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.path.parent / p

    def read_secret(self, credential: Credential, *, key: str) -> str:
        """Read a credential's password now; ConfigError names the key on failure."""
        path = str(self.path)
        if credential.password_env is not None:
            value = os.environ.get(credential.password_env)
            if value is None:
                raise ConfigError(
                    f"environment variable {credential.password_env} is not set",
                    path=path,
                    key=f"{key}.password_env",
                )
            return value
        if credential.password_file is not None:
            secret_path = self.resolve(credential.password_file)
            try:
                text = secret_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read password file {secret_path}: {exc.strerror}",
                    path=path,
                    key=f"{key}.password_file",
                ) from None
            return text.splitlines()[0] if text else ""
        raise ConfigError(
            "no password_file or password_env", path=path, key=key
        )  # pragma: no cover - rejected at load time


# --- loading -------------------------------------------------------------------


def default_config_path() -> Path:
    """`$PAMWIRE_CONFIG`, else ./pamwire.toml."""
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME)


def load_config(path: Path) -> Config:
    """Read and validate a configuration file; ConfigError names the file and key."""
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file not found (set --config or ${CONFIG_ENV})",
            path=str(path),
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from None
    # Grant settings are declared beside the grant code; imported here, not at the
    # top, because that module builds on this one.
    from pamwire.grants.config import parse_grants_config, without_grants

    config = parse_config(without_grants(raw), path)
    grants = parse_grants_config(raw, path)
    return attrs.evolve(config, grants=grants)


_TOP_KEYS = ("listener", "target", "audit", "users", "rules")


def parse_config(raw: dict[str, Any], path: Path) -> Config:
    """Validate an already-parsed TOML document."""
    fpath = str(path.resolve()) if path.exists() else str(path)
    configschema.check_keys(raw, _TOP_KEYS, "", fpath)

    listeners_raw = raw.get("listener", [{"protocol": "postgres"}])
    if not isinstance(listeners_raw, list):
        raise ConfigError(
            "must be an array of tables ([[listener]])", path=fpath, key="listener"
        )
    listeners = tuple(
        _with_default_port(configschema.build(Listener, item, f"listener[{i}]", fpath))
        for i, item in enumerate(listeners_raw)
    )

    targets_raw = raw.get("target", {})
    if not isinstance(targets_raw, dict):
        raise ConfigError(
            "must be a table of targets ([target.NAME])", path=fpath, key="target"
        )
    targets: dict[str, Target] = {}
    for name, item in targets_raw.items():
        key = f"target.{name}"
        if not isinstance(item, dict):
            raise ConfigError("must be a table", path=fpath, key=key)
        targets[name] = configschema.build(
            Target, item, key, fpath, extra={"name": name}
        )

    config = Config(
        path=path.resolve() if path.exists() else path,
        listeners=listeners,
        targets=targets,
        audit=configschema.build(AuditConfig, raw.get("audit", {}), "audit", fpath),
        users=configschema.build(UsersConfig, raw.get("users", {}), "users", fpath),
        rules=configschema.build(RulesConfig, raw.get("rules", {}), "rules", fpath),
    )
    _validate(config, fpath)
    return config


DEFAULT_PORTS = {"postgres": 6432, "mysql": 3307}


def _with_default_port(listener: Listener) -> Listener:
    if listener.port is not None:
        return listener
    return attrs.evolve(listener, port=DEFAULT_PORTS.get(listener.protocol, 0))


def _validate(config: Config, fpath: str) -> None:
    _validate_audit(config.audit, fpath)
    seen: set[tuple[str, int]] = set()
    for i, listener in enumerate(config.listeners):
        key = f"listener[{i}]"
        _check_choice(listener.protocol, PROTOCOLS, fpath, f"{key}.protocol")
        assert listener.port is not None
        _check_port(listener.port, fpath, f"{key}.port", allow_zero=True)
        if listener.login_timeout <= 0 or listener.max_clients < 1:
            raise ConfigError(
                "login_timeout and max_clients must be positive", path=fpath, key=key
            )
        if listener.max_message_size < 1024:
            raise ConfigError(
                f"{listener.max_message_size} is too small (at least 1024)",
                path=fpath,
                key=f"{key}.max_message_size",
            )
        _check_choice(listener.tls, LISTENER_TLS_MODES, fpath, f"{key}.tls")
        for name in ("tls_cert_file", "tls_key_file"):
            if (getattr(listener, name) is None) != (listener.tls == "off"):
                need = "required" if listener.tls != "off" else "not used"
                raise ConfigError(
                    f"{need} when tls is {listener.tls!r}",
                    path=fpath,
                    key=f"{key}.{name}",
                )
        if listener.port and (listener.host, listener.port) in seen:
            raise ConfigError(
                f"{listener.host}:{listener.port} is used twice", path=fpath, key=key
            )
        seen.add((listener.host, listener.port))
    reachable: dict[tuple[str, str], str] = {}
    for name, target in config.targets.items():
        key = f"target.{name}"
        other = reachable.setdefault((target.protocol, target.client_name), name)
        if other != name:
            raise ConfigError(
                f"{target.protocol} clients would reach both target.{other} and "
                f"this one as {target.client_name!r}",
                path=fpath,
                key=key,
            )
        _check_choice(target.protocol, PROTOCOLS, fpath, f"{key}.protocol")
        _check_choice(
            target.audit_params, audit_params.MODES, fpath, f"{key}.audit_params"
        )
        _check_choice(
            target.deprecate_eof, DEPRECATE_EOF_CHOICES, fpath, f"{key}.deprecate_eof"
        )
        _check_port(target.port, fpath, f"{key}.port", allow_zero=False)
        _check_choice(target.tls, TARGET_TLS_MODES, fpath, f"{key}.tls")
        for name in ("tls_ca_file", "tls_server_name"):
            if getattr(target, name) is not None and not target.tls.startswith(
                "verify"
            ):
                raise ConfigError(
                    f"only used when tls is verify-ca or verify-full, "
                    f"not {target.tls!r}",
                    path=fpath,
                    key=f"{key}.{name}",
                )
        cred = target.credential
        if (cred.password_file is None) == (cred.password_env is None):
            raise ConfigError(
                "set exactly one of password_file or password_env "
                "(passwords are never written inline)",
                path=fpath,
                key=f"{key}.credential",
            )
        if target.connect_timeout <= 0:
            raise ConfigError(
                "must be a positive number of seconds",
                path=fpath,
                key=f"{key}.connect_timeout",
            )


def _validate_audit(audit: AuditConfig, fpath: str) -> None:
    for key, value in (
        ("fsync_interval", audit.fsync_interval),
        ("checkpoint_interval", audit.checkpoint_interval),
        ("checkpoint_every", audit.checkpoint_every),
    ):
        if value <= 0:
            raise ConfigError("must be positive", path=fpath, key=f"audit.{key}")
    for key, count in (
        ("record_rows", audit.record_rows),
        ("record_bytes", audit.record_bytes),
    ):
        if count < 0:
            raise ConfigError("must not be negative", path=fpath, key=f"audit.{key}")


def _check_choice(value: str, allowed: tuple[str, ...], fpath: str, key: str) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{value!r} is not one of {', '.join(allowed)}", path=fpath, key=key
        )


def _check_port(value: int, fpath: str, key: str, *, allow_zero: bool) -> None:
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ConfigError(f"{value} is not a port ({low}-65535)", path=fpath, key=key)


def describe() -> str:
    """The reference of every key with its help text (for docs and `--help`)."""
    lines: list[str] = []
    for title, cls in (
        ("[[listener]]", Listener),
        ("[target.NAME]", Target),
        ("[target.NAME.credential]", Credential),
        ("[audit]", AuditConfig),
        ("[users]", UsersConfig),
        ("[rules]", RulesConfig),
    ):
        lines.append(title)
        for f in attrs.fields(cls):
            if "help" not in f.metadata:
                continue
            default = "" if f.default is attrs.NOTHING else f" (default {f.default!r})"
            lines.append(f"  {f.name}: {f.metadata['help']}{default}")
    return "\n".join(lines)

"""Start and stop a disposable local PostgreSQL cluster for the demo and the tests.

The server listens on 127.0.0.1 only, keeps its data, socket and log under one base
folder, and runs as the ``postgres`` OS user when we are root (PostgreSQL refuses to
run as root). Clients (psql) run as the calling user and always connect over TCP, so
the host authentication method under test is the one exercised.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from types import TracebackType
from urllib.parse import quote

from pamwire.errors import ConfigError, PamwireError
from pamwire.localserver import (
    as_root,
    give_to_os_user,
    log_tail,
)

HOST = "127.0.0.1"
SUPERUSER = "postgres"
OS_USER = "postgres"

AUTH_METHODS = ("scram-sha-256", "md5", "password", "trust", "reject")

# Settings pamwire chooses itself; accepting them from callers would let a caller
# move the server off loopback or away from the base folder.
_RESERVED_SETTINGS = frozenset({"listen_addresses", "port", "unix_socket_directories"})
_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_.]*$")

# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107

# initdb takes about a second and start/stop a fraction of one; these bounds only
# keep a wedged server from hanging the demo or the test session forever.
_INITDB_TIMEOUT = 120.0
_PG_CTL_WAIT = 60
_PSQL_TIMEOUT = 120.0
_APT_TIMEOUT = 900.0

_CONF_NAME = "pamwire.conf"
_INCLUDE_LINE = f"include_if_exists = '{_CONF_NAME}'\n"


def _is_bindir(path: pathlib.Path) -> bool:
    return all((path / name).is_file() for name in ("initdb", "pg_ctl", "postgres"))


def _version_key(path: pathlib.Path) -> tuple[int, ...]:
    parts = re.findall(r"\d+", path.parent.name)
    return tuple(int(part) for part in parts)


def find_pg_bindir() -> pathlib.Path | None:
    """Return the folder holding initdb, pg_ctl and postgres, or None when absent.

    Looks at ``initdb`` on PATH (following symlinks), then ``pg_config --bindir``,
    then the highest version under Debian's /usr/lib/postgresql/*/bin.
    """
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidate = pathlib.Path(initdb).resolve().parent
        if _is_bindir(candidate):
            return candidate

    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            result = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            result = None
        if result is not None and result.returncode == 0:
            candidate = pathlib.Path(result.stdout.strip())
            if _is_bindir(candidate):
                return candidate

    debian = sorted(
        (p for p in pathlib.Path("/usr/lib/postgresql").glob("*/bin") if _is_bindir(p)),
        key=_version_key,
    )
    return debian[-1] if debian else None


def ensure_postgres_installed() -> pathlib.Path:
    """Return the PostgreSQL bin folder, installing Debian's package if none exists.

    Prints each step to stderr. Raises PamwireError when apt-get is missing, we are
    not root, or the install does not yield a usable bin folder.
    """
    found = find_pg_bindir()
    if found is not None:
        return found

    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise PamwireError("postgresql is not installed and apt-get is not available")
    if os.geteuid() != 0:
        raise PamwireError("postgresql is not installed; installing it needs root")

    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [[apt_get, "update"], [apt_get, "install", "-y", "postgresql"]]
    for command in steps:
        print(f"pamwire: running {' '.join(command)}", file=sys.stderr, flush=True)
        try:
            result = subprocess.run(command, env=env, timeout=_APT_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise PamwireError(f"{' '.join(command)} timed out") from exc
        if result.returncode != 0:
            raise PamwireError(
                f"{' '.join(command)} failed with exit code {result.returncode}"
            )

    found = find_pg_bindir()
    if found is None:
        raise PamwireError("installed postgresql but found no initdb/pg_ctl/postgres")
    print(f"pamwire: postgresql binaries are in {found}", file=sys.stderr, flush=True)
    return found


def demo_schema_path() -> pathlib.Path:
    """Return the path of the sample schema that ``pamwire demo`` loads."""
    return pathlib.Path(str(resources.files("pamwire") / "data" / "demo-schema.sql"))


def quote_ident(name: str) -> str:
    """Quote an SQL identifier for PostgreSQL."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote an SQL string literal (standard_conforming_strings is on by default)."""
    if "\x00" in value:
        raise PamwireError(f"nul byte in sql literal {value!r}")
    return "'" + value.replace("'", "''") + "'"


def _conf_value(value: str) -> str:
    if "\n" in value or "\x00" in value:
        raise ConfigError(f"line break or nul byte in setting value {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# Clusters started by this process and not yet stopped; stopped at interpreter exit
# as a safety net for callers that forget (or crash before) calling stop().
_running: dict[int, PostgresCluster] = {}


def _stop_all() -> None:
    for cluster in list(_running.values()):
        with contextlib.suppress(PamwireError):
            cluster.stop()


atexit.register(_stop_all)


class PostgresCluster:
    """One throwaway PostgreSQL cluster under ``base_dir``.

    Layout: ``data/`` (PGDATA), ``sock/`` (unix socket), ``server.log``. When run as
    root the base folder is chowned to the postgres OS user; its parents must be
    traversable by that user. Every method raises PamwireError on failure.
    """

    def __init__(
        self,
        base_dir: pathlib.Path,
        *,
        port: int,
        superuser_password: str,
        auth_method: str = "scram-sha-256",
        settings: Mapping[str, str] | None = None,
        bindir: pathlib.Path | None = None,
    ) -> None:
        if auth_method not in AUTH_METHODS:
            allowed = ", ".join(AUTH_METHODS)
            raise ConfigError(
                f"unknown auth method {auth_method!r}; expected one of {allowed}",
                key="auth_method",
            )
        settings = dict(settings or {})
        for name in settings:
            if name in _RESERVED_SETTINGS:
                raise ConfigError(f"setting {name!r} is chosen by pgcluster")
            if not _SETTING_NAME.match(name):
                raise ConfigError(f"invalid setting name {name!r}")
        if auth_method == "md5":
            # Store new passwords as md5 so the server really runs md5 auth; with
            # a SCRAM verifier it would silently switch to SCRAM.
            settings.setdefault("password_encryption", "md5")

        self.base_dir = pathlib.Path(base_dir).absolute()
        self._port = port
        self._superuser_password = superuser_password
        self.auth_method = auth_method
        self.settings: dict[str, str] = settings
        self._bindir = bindir
        self._passwords: dict[str, str] = {SUPERUSER: superuser_password}
        self._started = False

    # -- properties ---------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def superuser(self) -> str:
        return SUPERUSER

    @property
    def superuser_password(self) -> str:
        return self._superuser_password

    @property
    def data_dir(self) -> pathlib.Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> pathlib.Path:
        return self.base_dir / "sock"

    @property
    def log_path(self) -> pathlib.Path:
        return self.base_dir / "server.log"

    @property
    def bindir(self) -> pathlib.Path:
        if self._bindir is None:
            found = find_pg_bindir()
            if found is None:
                raise PamwireError("postgresql binaries not found (initdb, pg_ctl)")
            self._bindir = found
        return self._bindir

    def dsn(self, *, database: str = "postgres", user: str = SUPERUSER) -> str:
        """Return a libpq URL for ``user`` (with its password when known)."""
        password = self._passwords.get(user)
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{HOST}:{self._port}/{quote(database, safe='')}"

    # -- running as the postgres OS user ------------------------------------------

    def _server_command(self, argv: Sequence[str]) -> list[str]:
        if as_root():
            return ["runuser", "-u", OS_USER, "--", *argv]
        return list(argv)

    def _run_server_tool(
        self, argv: Sequence[str], *, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        # cwd "/" because runuser cannot always enter the caller's cwd (root's home).
        try:
            return subprocess.run(
                self._server_command(argv),
                capture_output=True,
                text=True,
                cwd="/",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PamwireError(f"{argv[0]} timed out after {timeout:.0f}s") from exc

    def _give_to_os_user(self, path: pathlib.Path) -> None:
        give_to_os_user(path, OS_USER)

    def _prepare_base_dir(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o700)
        self._give_to_os_user(self.base_dir)
        self.socket_dir.mkdir(exist_ok=True)
        self.socket_dir.chmod(0o700)
        self._give_to_os_user(self.socket_dir)

        probe = self._run_server_tool(
            ["test", "-w", str(self.base_dir), "-a", "-x", str(self.socket_dir)],
            timeout=30,
        )
        if probe.returncode != 0:
            raise PamwireError(
                f"the {OS_USER} os user cannot use {self.base_dir}; "
                "make its parent folders traversable"
            )

        socket_file = self.socket_dir / f".s.PGSQL.{self._port}"
        if len(str(socket_file).encode()) > _MAX_SOCKET_PATH:
            raise PamwireError(f"socket path too long for unix sockets: {socket_file}")

    # -- lifecycle ----------------------------------------------------------------

    def init(self) -> None:
        """Run initdb unless ``data/`` already holds a cluster."""
        self._prepare_base_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        conf = self.data_dir / "postgresql.conf"
        if _INCLUDE_LINE not in conf.read_text(encoding="utf-8"):
            with conf.open("a", encoding="utf-8") as handle:
                handle.write(f"\n# added by pamwire.pgcluster\n{_INCLUDE_LINE}")

    def _initdb(self) -> None:
        pwfile = self.base_dir / "initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self._superuser_password + "\n")
        self._give_to_os_user(pwfile)
        try:
            result = self._run_server_tool(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    f"--auth-host={self.auth_method}",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ],
                timeout=_INITDB_TIMEOUT,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise PamwireError(f"initdb failed for {self.data_dir}: {detail}")

    def _write_settings(self) -> None:
        settings = {
            **self.settings,
            "listen_addresses": HOST,
            "port": str(self._port),
            "unix_socket_directories": str(self.socket_dir),
        }
        lines = ["# written by pamwire.pgcluster on every start\n"]
        lines += [
            f"{name} = {_conf_value(value)}\n" for name, value in settings.items()
        ]
        conf = self.data_dir / _CONF_NAME
        conf.write_text("".join(lines), encoding="utf-8")
        conf.chmod(0o600)
        self._give_to_os_user(conf)

    def start(self) -> None:
        """Start the server and wait until it accepts connections.

        A no-op when this object already started it. Raises PamwireError with the
        tail of the server log when the server does not come up.
        """
        if self._started and (self.data_dir / "postmaster.pid").exists():
            return
        if not (self.data_dir / "PG_VERSION").exists():
            raise PamwireError(f"no cluster in {self.data_dir}; call init() first")
        self._write_settings()

        result = self._run_server_tool(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(_PG_CTL_WAIT),
                "start",
            ],
            timeout=_PG_CTL_WAIT + 30,
        )
        if result.returncode != 0:
            # pg_ctl may give up while a slow postmaster is still coming up.
            with contextlib.suppress(PamwireError):
                self.stop()
            output = (result.stderr or result.stdout).strip()
            raise PamwireError(
                f"postgresql on port {self._port} failed to start: {output}\n"
                f"--- tail of {self.log_path} ---\n{log_tail(self.log_path)}"
            )
        self._started = True
        _running[id(self)] = self

        if self.auth_method == "md5":
            # initdb stored a SCRAM verifier; store md5 now that password_encryption
            # says so, or md5 logins as the superuser would really be SCRAM.
            self.psql(
                f"ALTER ROLE {quote_ident(SUPERUSER)} "
                f"PASSWORD {quote_literal(self._superuser_password)}"
            )

    def use_tls(self, cert_file: pathlib.Path, key_file: pathlib.Path) -> None:
        """Serve TLS with this certificate and key (PEM) from the next start.

        The files are copied into the base folder for the server's OS user
        (PostgreSQL refuses a key that others can read). Call after init().
        """
        folder = self.base_dir / "tls"
        folder.mkdir(mode=0o700, exist_ok=True)
        for source, name in ((cert_file, "server.crt"), (key_file, "server.key")):
            shutil.copyfile(source, folder / name)
            (folder / name).chmod(0o600)
        self._give_to_os_user(folder)
        for name in ("server.crt", "server.key"):
            self._give_to_os_user(folder / name)
        self.settings.update(
            ssl="on",
            ssl_cert_file=str(folder / "server.crt"),
            ssl_key_file=str(folder / "server.key"),
        )

    def stop(self) -> None:
        """Stop the server with a fast shutdown; does nothing when it is not running."""
        _running.pop(id(self), None)
        self._started = False
        if not (self.data_dir / "postmaster.pid").exists():
            return
        result = self._run_server_tool(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(_PG_CTL_WAIT),
                "stop",
            ],
            timeout=_PG_CTL_WAIT + 30,
        )
        if result.returncode != 0 and (self.data_dir / "postmaster.pid").exists():
            output = (result.stderr or result.stdout).strip()
            raise PamwireError(
                f"postgresql on port {self._port} did not stop: {output}"
            )

    def __enter__(self) -> PostgresCluster:
        """Initialise (if needed) and start the cluster."""
        self.init()
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients ------------------------------------------------------------------

    def _psql_binary(self) -> str:
        candidate = self.bindir / "psql"
        if candidate.is_file():
            return str(candidate)
        found = shutil.which("psql")
        if found is None:
            raise PamwireError("psql not found")
        return found

    def _psql(
        self,
        extra_args: Sequence[str],
        *,
        database: str,
        user: str,
        password: str | None,
        stdin: str | None,
    ) -> str:
        if password is None:
            password = self._passwords.get(user)
        # Drop the caller's PG* variables so a stray PGHOST or PGSSLMODE cannot
        # point psql somewhere else.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "10"
        if password is not None:
            env["PGPASSWORD"] = password
        argv = [
            self._psql_binary(),
            "-X",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-h",
            HOST,
            "-p",
            str(self._port),
            "-U",
            user,
            "-d",
            database,
            *extra_args,
        ]
        try:
            result = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                env=env,
                timeout=_PSQL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PamwireError(f"psql as {user!r} timed out") from exc
        if result.returncode != 0:
            raise PamwireError(
                f"psql as {user!r} on {database!r} failed: {result.stderr.strip()}"
            )
        return result.stdout

    def psql(
        self,
        sql: str,
        *,
        database: str = "postgres",
        user: str = SUPERUSER,
        password: str | None = None,
    ) -> str:
        """Run ``sql`` with psql over TCP and return its unaligned, tuples-only output.

        The text is fed on stdin, so each statement runs in its own transaction
        (CREATE DATABASE works). The password defaults to the one this object
        knows for ``user``. Raises PamwireError carrying psql's stderr on failure.
        """
        return self._psql(
            ["-f", "-"], database=database, user=user, password=password, stdin=sql
        )

    def run_sql_file(self, path: pathlib.Path, *, database: str) -> None:
        """Run an SQL file as the superuser; stops at the first error."""
        self._psql(
            ["-q", "-f", str(pathlib.Path(path).absolute())],
            database=database,
            user=SUPERUSER,
            password=None,
            stdin=None,
        )

    def create_database(self, name: str, owner: str = SUPERUSER) -> None:
        self.psql(f"CREATE DATABASE {quote_ident(name)} OWNER {quote_ident(owner)}")

    def create_role(
        self, name: str, password: str, *, superuser: bool = False, extra: str = ""
    ) -> None:
        """Create a login role; ``extra`` is appended verbatim (e.g. ``CREATEDB``)."""
        options = "SUPERUSER" if superuser else "NOSUPERUSER"
        self.psql(
            f"CREATE ROLE {quote_ident(name)} LOGIN {options} "
            f"PASSWORD {quote_literal(password)} {extra}"
        )
        self._passwords[name] = password

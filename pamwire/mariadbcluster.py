"""Start and stop a disposable local MariaDB server for the demo and the tests.

The server listens on 127.0.0.1 only and keeps its data, socket, pid file and log
under one base folder. It is started with --no-defaults, so no my.cnf on the
machine changes it, and runs as the ``mysql`` OS user when we are root. Root's
accounts get a password at first start; later SQL runs through the mariadb
client over TCP, so the accounts under test are the TCP ones.
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
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

import attrs

from pamwire.errors import ConfigError, PamwireError
from pamwire.localserver import as_root, give_to_os_user, log_tail

HOST = "127.0.0.1"
ROOT = "root"
OS_USER = "mysql"

# Options pamwire chooses itself; a caller setting them could move the server
# off loopback or out of the base folder.
_RESERVED_SETTINGS = frozenset(
    {"port", "bind-address", "socket", "datadir", "pid-file", "log-error", "user"}
)
_SETTING_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")

# mariadb-install-db takes a few seconds and start-up about one; these bounds
# only keep a wedged server from hanging the demo or the test session forever.
_INSTALL_TIMEOUT = 180.0
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 60.0
_CLIENT_TIMEOUT = 120.0
_APT_TIMEOUT = 900.0
_MAX_SOCKET_PATH = 107

# What the demo and the test fixtures want from a throwaway server: no binary
# log, no durability, little memory.
QUICK_SETTINGS: Mapping[str, str] = {
    "skip-log-bin": "",
    "innodb-flush-log-at-trx-commit": "0",
    "innodb-buffer-pool-size": "64M",
    "innodb-log-file-size": "16M",
    "character-set-server": "utf8mb4",
    "collation-server": "utf8mb4_general_ci",
}


@attrs.frozen
class MariaDBBinaries:
    """Paths of the server, installer, client and admin tool."""

    server: pathlib.Path
    install_db: pathlib.Path
    client: pathlib.Path
    admin: pathlib.Path


def _which(name: str, extra: Sequence[str] = ("/usr/sbin", "/usr/bin")) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    for folder in extra:
        candidate = pathlib.Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_mariadb() -> MariaDBBinaries | None:
    """Return the MariaDB binaries found on PATH (or in /usr/sbin), or None."""
    paths = [
        _which("mariadbd"),
        _which("mariadb-install-db"),
        _which("mariadb"),
        _which("mariadb-admin"),
    ]
    if any(path is None for path in paths):
        return None
    server, install_db, client, admin = (pathlib.Path(str(p)) for p in paths)
    return MariaDBBinaries(server, install_db, client, admin)


def ensure_mariadb_installed() -> MariaDBBinaries:
    """Return the MariaDB binaries, installing Debian's packages if they are missing.

    Prints each step to stderr. Raises PamwireError when apt-get is missing, we
    are not root, or the install does not yield the binaries.
    """
    found = find_mariadb()
    if found is not None:
        return found
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        raise PamwireError("mariadb is not installed and apt-get is not available")
    if os.geteuid() != 0:
        raise PamwireError("mariadb is not installed; installing it needs root")

    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        [apt_get, "update"],
        [apt_get, "install", "-y", "mariadb-server", "mariadb-client"],
    ]
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
    found = find_mariadb()
    if found is None:
        raise PamwireError("installed mariadb but found no mariadbd/mariadb-install-db")
    return found


def quote_identifier(name: str) -> str:
    """Quote an identifier with backticks."""
    if "\x00" in name:
        raise PamwireError(f"nul byte in identifier {name!r}")
    return "`" + name.replace("`", "``") + "`"


def quote_string(value: str) -> str:
    """Quote a string literal for the server's default sql_mode (backslash escapes)."""
    if "\x00" in value:
        raise PamwireError(f"nul byte in sql literal {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def account(user: str, host: str) -> str:
    """An account name, user@host, quoted."""
    return f"{quote_identifier(user)}@{quote_identifier(host)}"


# Servers started by this process and not yet stopped; stopped at interpreter
# exit as a safety net for callers that forget (or crash before) stop().
_running: dict[int, MariaDBServer] = {}


def _stop_all() -> None:
    for server in list(_running.values()):
        with contextlib.suppress(PamwireError):
            server.stop()


atexit.register(_stop_all)


class MariaDBServer:
    """One throwaway MariaDB server under ``base_dir``.

    Layout: ``data/`` (datadir), ``mysqld.sock``, ``mysqld.pid``, ``server.log``.
    Every method raises PamwireError on failure.
    """

    def __init__(
        self,
        base_dir: pathlib.Path,
        *,
        port: int,
        root_password: str,
        settings: Mapping[str, str] | None = None,
        binaries: MariaDBBinaries | None = None,
    ) -> None:
        settings = dict(QUICK_SETTINGS if settings is None else settings)
        for name in settings:
            if name in _RESERVED_SETTINGS:
                raise ConfigError(f"setting {name!r} is chosen by mariadbcluster")
            if not _SETTING_NAME.match(name):
                raise ConfigError(f"invalid setting name {name!r}")
        if not root_password:
            raise ConfigError("root password must not be empty", key="root_password")
        self.base_dir = pathlib.Path(base_dir).absolute()
        self._port = port
        self._root_password = root_password
        self.settings = settings
        self._binaries = binaries
        self._process: subprocess.Popen[bytes] | None = None
        self._passwords: dict[str, str] = {ROOT: root_password}

    # -- properties ---------------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def root_password(self) -> str:
        return self._root_password

    @property
    def data_dir(self) -> pathlib.Path:
        return self.base_dir / "data"

    @property
    def socket_path(self) -> pathlib.Path:
        return self.base_dir / "mysqld.sock"

    @property
    def pid_path(self) -> pathlib.Path:
        return self.base_dir / "mysqld.pid"

    @property
    def log_path(self) -> pathlib.Path:
        return self.base_dir / "server.log"

    @property
    def binaries(self) -> MariaDBBinaries:
        if self._binaries is None:
            found = find_mariadb()
            if found is None:
                raise PamwireError("mariadb binaries not found (mariadbd)")
            self._binaries = found
        return self._binaries

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- set-up ---------------------------------------------------------------------

    def _user_args(self) -> list[str]:
        return [f"--user={OS_USER}"] if as_root() else []

    def _give_to_os_user(self, path: pathlib.Path) -> None:
        give_to_os_user(path, OS_USER)

    def _run(
        self, argv: Sequence[str], *, timeout: float, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                list(argv),
                input=stdin,
                capture_output=True,
                text=True,
                cwd="/",
                timeout=timeout,
                check=False,
                env=self._client_env(None),
            )
        except subprocess.TimeoutExpired as exc:
            raise PamwireError(f"{argv[0]} timed out after {timeout:.0f}s") from exc

    def init(self) -> None:
        """Create the data folder with mariadb-install-db unless it exists."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o750)
        self._give_to_os_user(self.base_dir)
        if len(str(self.socket_path).encode()) > _MAX_SOCKET_PATH:
            raise PamwireError(f"socket path too long: {self.socket_path}")
        if as_root():
            probe = self._run(
                ["runuser", "-u", OS_USER, "--", "test", "-w", str(self.base_dir)],
                timeout=30,
            )
            if probe.returncode != 0:
                raise PamwireError(
                    f"the {OS_USER} os user cannot write {self.base_dir}; "
                    "make its parent folders traversable"
                )
        if (self.data_dir / "mysql").is_dir():
            return
        result = self._run(
            [
                str(self.binaries.install_db),
                "--no-defaults",
                *self._user_args(),
                f"--datadir={self.data_dir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            timeout=_INSTALL_TIMEOUT,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()[-2000:]
            raise PamwireError(
                f"mariadb-install-db failed for {self.data_dir}: {detail}"
            )

    def use_tls(self, cert_file: pathlib.Path, key_file: pathlib.Path) -> None:
        """Serve TLS with this certificate and key (PEM) from the next start.

        The files are copied into the base folder for the server's OS user.
        Call after init().
        """
        folder = self.base_dir / "tls"
        folder.mkdir(mode=0o700, exist_ok=True)
        for source, name in ((cert_file, "server.crt"), (key_file, "server.key")):
            shutil.copyfile(source, folder / name)
            (folder / name).chmod(0o600)
        self._give_to_os_user(folder)
        for name in ("server.crt", "server.key"):
            self._give_to_os_user(folder / name)
        self.settings["ssl-cert"] = str(folder / "server.crt")
        self.settings["ssl-key"] = str(folder / "server.key")

    # -- lifecycle ------------------------------------------------------------------

    def _server_argv(self) -> list[str]:
        argv = [
            str(self.binaries.server),
            "--no-defaults",
            *self._user_args(),
            f"--datadir={self.data_dir}",
            f"--port={self._port}",
            f"--bind-address={HOST}",
            f"--socket={self.socket_path}",
            f"--pid-file={self.pid_path}",
            f"--log-error={self.log_path}",
            "--skip-name-resolve",
        ]
        for name, value in self.settings.items():
            argv.append(f"--{name}={value}" if value else f"--{name}")
        return argv

    def start(self) -> None:
        """Start the server and wait until it answers; set root's passwords once.

        A no-op when this object already runs it. Raises PamwireError with the
        tail of the server log when the server does not come up.
        """
        if self.running:
            return
        if not (self.data_dir / "mysql").is_dir():
            raise PamwireError(f"no datadir in {self.data_dir}; call init() first")
        self._process = subprocess.Popen(
            self._server_argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
        )
        _running[id(self)] = self
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise PamwireError(
                    f"mariadb on port {self._port} failed to start\n"
                    f"--- tail of {self.log_path} ---\n{log_tail(self.log_path)}"
                )
            time.sleep(0.1)
        self._secure_root()

    def _ping(self) -> bool:
        # ping answers "alive" even when access is denied, so no password needed.
        result = self._run(
            [
                str(self.binaries.admin),
                "--no-defaults",
                f"--socket={self.socket_path}",
                "--connect-timeout=2",
                f"--user={ROOT}",
                "ping",
            ],
            timeout=30,
        )
        return "is alive" in result.stdout

    def _secure_root(self) -> None:
        marker = self.base_dir / "root-password-set"
        if marker.exists():
            return
        hosts = self._socket_sql(
            "SELECT Host FROM mysql.user WHERE User = 'root'", password=""
        ).split()
        # Accounts for the machine's host name never match under
        # --skip-name-resolve (ALTER USER fails on them): drop them.
        statements = [
            "DELETE FROM mysql.global_priv WHERE User = 'root' AND Host NOT IN "
            "('localhost', '127.0.0.1', '::1');",
            "FLUSH PRIVILEGES;",
        ]
        statements += [
            f"ALTER USER {account(ROOT, host)} "
            f"IDENTIFIED BY {quote_string(self._root_password)};"
            for host in hosts
            if host in ("localhost", HOST, "::1")
        ]
        if HOST not in hosts:
            statements.append(
                f"CREATE USER {account(ROOT, HOST)} "
                f"IDENTIFIED BY {quote_string(self._root_password)};"
                f"GRANT ALL ON *.* TO {account(ROOT, HOST)} WITH GRANT OPTION;"
            )
        self._socket_sql("\n".join(statements), password="")
        marker.write_text("", encoding="utf-8")

    def stop(self) -> None:
        """Shut the server down and wait for it; does nothing when not running."""
        _running.pop(id(self), None)
        process = self._process
        if process is None or process.poll() is not None:
            self._process = None
            return
        process.terminate()  # SIGTERM is a normal shutdown for mariadbd
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            raise PamwireError(f"mariadb on port {self._port} did not stop") from None
        self._process = None

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self._process = None
        _running.pop(id(self), None)

    def __enter__(self) -> MariaDBServer:
        """Initialise (if needed) and start the server."""
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

    # -- clients ----------------------------------------------------------------------

    @staticmethod
    def _client_env(password: str | None) -> dict[str, str]:
        # Drop MYSQL_* variables so a stray MYSQL_HOST cannot point elsewhere.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
        if password:
            env["MYSQL_PWD"] = password
        return env

    def _client(
        self,
        target: list[str],
        sql: str,
        *,
        user: str,
        password: str,
        database: str | None,
    ) -> str:
        argv = [
            str(self.binaries.client),
            "--no-defaults",
            *target,
            f"--user={user}",
            "--batch",
            "--skip-column-names",
            "--connect-timeout=10",
        ]
        if database is not None:
            argv.append(f"--database={database}")
        try:
            result = subprocess.run(
                argv,
                input=sql,
                capture_output=True,
                text=True,
                cwd="/",
                env=self._client_env(password),
                timeout=_CLIENT_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PamwireError(f"mariadb client as {user!r} timed out") from exc
        if result.returncode != 0:
            raise PamwireError(
                f"mariadb client as {user!r} failed: {result.stderr.strip()}"
            )
        return result.stdout

    def _socket_sql(self, sql: str, *, password: str) -> str:
        return self._client(
            [f"--socket={self.socket_path}", "--protocol=socket"],
            sql,
            user=ROOT,
            password=password,
            database=None,
        )

    def sql(
        self,
        sql: str,
        *,
        database: str | None = None,
        user: str = ROOT,
        password: str | None = None,
    ) -> str:
        """Run sql with the mariadb client over TCP; return its tab-separated output.

        The password defaults to the one this object knows for user. Raises
        PamwireError carrying the client's stderr on failure.
        """
        if password is None:
            password = self._passwords.get(user, "")
        return self._client(
            [f"--host={HOST}", f"--port={self._port}", "--protocol=tcp"],
            sql,
            user=user,
            password=password,
            database=database,
        )

    def run_sql_file(self, path: pathlib.Path, *, database: str | None = None) -> None:
        """Run an SQL file as root; stops at the first error."""
        self.sql(pathlib.Path(path).read_text(encoding="utf-8"), database=database)

    def create_database(self, name: str) -> None:
        self.sql(f"CREATE DATABASE {quote_identifier(name)}")

    def create_user(
        self,
        name: str,
        password: str,
        *,
        host: str = HOST,
        plugin: str = "mysql_native_password",
        grant_database: str | None = None,
    ) -> None:
        """Create name@host identified by password with plugin; grant a database.

        plugin is mysql_native_password or ed25519 (which needs auth_ed25519).
        """
        if not _IDENTIFIER.match(plugin):
            raise ConfigError(f"invalid auth plugin name {plugin!r}", key="plugin")
        who = account(name, host)
        statements = [
            f"CREATE USER {who} IDENTIFIED VIA {plugin} "
            f"USING PASSWORD({quote_string(password)});"
        ]
        if grant_database is not None:
            statements.append(
                f"GRANT ALL ON {quote_identifier(grant_database)}.* TO {who};"
            )
        self.sql("\n".join(statements))
        self._passwords[name] = password

"""A real pamwire process with a MySQL listener in front of a throwaway MariaDB 10.11.

pamwire runs as `pamwire serve` in a subprocess, as users run it. Its target
`app` is the MariaDB database `app` (tests/mysql/conftest.py's schema and
account); the person `alice` (password `alice-pw`) may log in. mysql_proxy has
the shipped baseline pack plus the tests' own rules (`extra-rules.toml`);
mysql_open_proxy the tests' rules only.

Test modules import the fixtures below. pytest gives each importing module its
own copy of a fixture, so the server and the proxy are kept in this module and
started once per test run, then stopped at exit.
"""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
from typing import Any

import pytest

from pamwire.localserver import free_port
from pamwire.mariadbcluster import MariaDBServer
from tests.integration.pamwire_process import PamwireProcess
from tests.mysql.conftest import (
    APP_DATABASE,
    APP_PASSWORD,
    APP_USER,
    ROOT_PASSWORD,
    TEST_SCHEMA,
    require_mariadb,
)

PERSON = "alice"
PERSON_PASSWORD = "alice-pw"
TARGET = "app"

# Target app_ed25519 logs in as this MariaDB account (IDENTIFIED VIA ed25519),
# created by the tests that use it; the password is longer than 32 bytes.
ED25519_USER = "app_ed"
ED25519_PASSWORD = "ed25519 pässwörd longer than thirty-two bytes"

# Rules of the tests themselves, next to the baseline pack: LOCAL INFILE into
# table ld is allowed by name (MY-19), and one rule denies a recognisable table.
EXTRA_RULES = """\
[[rule]]
id = "allow-local-infile-ld"
description = "LOAD DATA LOCAL INFILE into ld is allowed"
action = "allow"
when.kind = ["load", "copy", "other"]
when.tables = ["*.ld"]

[[rule]]
id = "no-forbidden-table"
description = "the table forbidden is off limits"
action = "deny"
message = "table forbidden is off limits"
when.tables = ["*forbidden"]
"""

CONFIG = """\
[[listener]]
protocol = "mysql"
host = "127.0.0.1"
port = {port}
login_timeout = 5

[target.app]
protocol = "mysql"
host = "127.0.0.1"
port = {db_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
connect_timeout = 5

[target.down]
protocol = "mysql"
host = "127.0.0.1"
port = {dead_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
connect_timeout = 2

[target.app_eof_on]
protocol = "mysql"
host = "127.0.0.1"
port = {db_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
deprecate_eof = "on"

[target.app_eof_off]
protocol = "mysql"
host = "127.0.0.1"
port = {db_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
deprecate_eof = "off"

[target.app_values]
protocol = "mysql"
host = "127.0.0.1"
port = {db_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
audit_params = "values"

[target.app_ed25519]
protocol = "mysql"
host = "127.0.0.1"
port = {db_port}
database = "app"
credential.user = "app_ed"
credential.password_file = "ed25519.password"

[target.wrongpw]
protocol = "mysql"
host = "127.0.0.1"
port = {db_port}
database = "app"
credential.user = "app"
credential.password_file = "wrong.password"

[audit]
path = "audit.db"

[users]
path = "users.db"

[rules]
files = {rules}
"""


class MysqlProxy(PamwireProcess):
    """A running pamwire with a MySQL listener, with mariadb-client helpers."""

    def __init__(self, workdir: pathlib.Path, port: int, server: MariaDBServer):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
        env["PAMWIRE_TEST_APP_PASSWORD"] = APP_PASSWORD
        super().__init__(workdir, port, env)
        self.server = server

    def connect_args(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for PyMySQL or mysql-connector through pamwire."""
        args: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": PERSON,
            "password": PERSON_PASSWORD,
            "database": TARGET,
        }
        args.update(extra)
        return args

    def mariadb(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        database: str = TARGET,
        password: str = PERSON_PASSWORD,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run the mariadb command-line client through pamwire."""
        cmd = [
            "mariadb",
            "--no-defaults",
            "-h",
            "127.0.0.1",
            "-P",
            str(self.port),
            "-u",
            PERSON,
            f"-p{password}",
            "--ssl=0",
            database,
            *args,
        ]
        result = subprocess.run(
            cmd,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=self.workdir,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"mariadb failed ({result.returncode}): {result.stderr}"
            )
        return result


_shared: dict[str, Any] = {}


def _start_server() -> MariaDBServer:
    base_dir = pathlib.Path(tempfile.mkdtemp(prefix="pamwire-mysql-it-"))
    base_dir.chmod(0o755)
    server = MariaDBServer(
        base_dir,
        port=free_port(),
        root_password=ROOT_PASSWORD,
        settings={
            "skip-log-bin": "",
            "innodb-flush-log-at-trx-commit": "0",
            "innodb-buffer-pool-size": "64M",
            "character-set-server": "utf8mb4",
            "collation-server": "utf8mb4_general_ci",
            "max-allowed-packet": "256M",
            "local-infile": "1",
        },
    )

    def close() -> None:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)

    atexit.register(close)
    server.init()
    server.start()
    server.create_database(APP_DATABASE)
    server.create_user(APP_USER, APP_PASSWORD, grant_database=APP_DATABASE)
    script = "DELIMITER //\n" + "".join(f"{s}\n//\n" for s in TEST_SCHEMA)
    server.sql(script, database=APP_DATABASE)
    server.sql("CREATE TABLE forbidden (id INT)", database=APP_DATABASE)
    return server


def _start_proxy(server: MariaDBServer, rules: list[str]) -> MysqlProxy:
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pamwire-mysql-proxy-"))
    proxy = MysqlProxy(workdir, free_port(), server)
    (workdir / "extra-rules.toml").write_text(EXTRA_RULES)
    (workdir / "wrong.password").write_text("not-the-password\n")
    (workdir / "ed25519.password").write_text(ED25519_PASSWORD + "\n")
    proxy.config.write_text(
        CONFIG.format(
            port=proxy.port,
            db_port=server.port,
            dead_port=free_port(),
            rules=json.dumps(rules),
        )
    )
    added = proxy.pamwire(
        "user", "add", PERSON, "--password-stdin", input=PERSON_PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    proxy.start()

    def close() -> None:
        proxy.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(close)
    return proxy


@pytest.fixture
def mysql_server() -> MariaDBServer:
    """The run's MariaDB (database app, account app, the MySQL tests' schema)."""
    require_mariadb()
    if "server" not in _shared:
        _shared["server"] = _start_server()
    server: MariaDBServer = _shared["server"]
    return server


def _proxy(key: str, server: MariaDBServer, rules: list[str]) -> MysqlProxy:
    if key not in _shared:
        _shared[key] = _start_proxy(server, rules)
    proxy: MysqlProxy = _shared[key]
    if proxy.process is None or proxy.process.poll() is not None:
        raise RuntimeError(f"pamwire is not running: {proxy.log_tail()}")
    return proxy


@pytest.fixture
def mysql_proxy(mysql_server: MariaDBServer) -> MysqlProxy:
    """pamwire serving target `app` on a MySQL listener: baseline and test rules."""
    return _proxy("proxy", mysql_server, ["pack:baseline", "extra-rules.toml"])


@pytest.fixture
def mysql_open_proxy(mysql_server: MariaDBServer) -> MysqlProxy:
    """pamwire with the tests' rules only (no baseline: CALL, KILL, LOCAL INFILE
    and DDL pass unless a test rule says otherwise; unparsable text is refused)."""
    return _proxy("open", mysql_server, ["extra-rules.toml"])

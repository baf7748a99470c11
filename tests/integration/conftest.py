"""A real pamwire process in front of the session's PostgreSQL, for client tests.

The proxy runs as `pamwire serve` in a subprocess, exactly as users run it, with a
configuration whose target `app` points at the test cluster's database `app`. The
person `alice` (password `alice-pw`) may log in.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pamwire.localserver import free_port
from pamwire.pgcluster import PostgresCluster
from tests.conftest import SUPERUSER_PASSWORD
from tests.integration.pamwire_process import PamwireProcess

PERSON = "alice"
PERSON_PASSWORD = "alice-pw"
TARGET = "app"

CONFIG = """\
[[listener]]
protocol = "postgres"
host = "127.0.0.1"
port = {port}
login_timeout = 5

[target.app]
protocol = "postgres"
host = "127.0.0.1"
port = {pg_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
connect_timeout = 5

[target.app_ro]
protocol = "postgres"
host = "127.0.0.1"
port = {pg_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
role = "read-only"

[target.down]
protocol = "postgres"
host = "127.0.0.1"
port = {dead_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
connect_timeout = 2

[target.wrongpw]
protocol = "postgres"
host = "127.0.0.1"
port = {pg_port}
database = "app"
credential.user = "app"
credential.password_file = "wrong.password"

[target.md5]
protocol = "postgres"
host = "127.0.0.1"
port = {md5_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"

[audit]
path = "{audit_path}"
{audit_extra}

[users]
path = "users.db"

[rules]
files = {rules}
"""


class Proxy(PamwireProcess):
    """A running pamwire for PostgreSQL clients, with psql helpers."""

    def __init__(
        self, workdir: Path, port: int, pg: PostgresCluster, env: dict[str, str]
    ):
        super().__init__(workdir, port, env)
        self.pg = pg

    def dsn(self, database: str = TARGET, user: str = PERSON, **extra: str) -> str:
        parts = {
            "host": "127.0.0.1",
            "port": str(self.port),
            "dbname": database,
            "user": user,
            "password": PERSON_PASSWORD,
            "sslmode": "disable",
            **extra,
        }
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def psql(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        dsn: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run psql through pamwire; returns the completed process."""
        cmd = ["psql", "-X", "-v", "ON_ERROR_STOP=1", dsn or self.dsn(), *args]
        result = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=60, env=self.env
        )
        if check and result.returncode != 0:
            raise AssertionError(f"psql failed ({result.returncode}): {result.stderr}")
        return result


def _start_proxy(
    pg: PostgresCluster,
    pg_md5: PostgresCluster,
    workdir: Path,
    rules: list[str],
    *,
    extra: str = "",
    audit_path: str = "audit.db",
    audit_extra: str = "",
) -> Proxy:
    env = dict(os.environ)
    env["PAMWIRE_TEST_APP_PASSWORD"] = "app-secret-pw"
    env["PAMWIRE_TEST_SUPERUSER_PASSWORD"] = SUPERUSER_PASSWORD
    env["PGCONNECT_TIMEOUT"] = "10"
    env.pop("PGPASSWORD", None)
    port = free_port()
    proxy = Proxy(workdir, port, pg, env)
    proxy.config.write_text(
        CONFIG.format(
            port=port,
            pg_port=pg.port,
            dead_port=free_port(),
            md5_port=pg_md5.port,
            rules=json.dumps(rules),
            audit_path=audit_path,
            audit_extra=audit_extra,
        )
        + extra
    )
    (workdir / "wrong.password").write_text("not-the-password\n")
    (workdir / "allow-all.toml").write_text(
        "# no rules: every parsable statement is allowed\n"
    )
    added = proxy.pamwire(
        "user", "add", PERSON, "--password-stdin", input=PERSON_PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    proxy.start()
    return proxy


@pytest.fixture(scope="session")
def proxy(
    pg: PostgresCluster,
    pg_md5: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    """pamwire with the shipped packs, serving `app` (and read-only `app_ro`)."""
    packs = ["pack:baseline", "pack:read-only", "pack:sensitive-data"]
    proxy = _start_proxy(pg, pg_md5, tmp_path_factory.mktemp("pamwire"), packs)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def open_proxy(
    pg: PostgresCluster,
    pg_md5: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    """pamwire with no rules (unparsable text is still refused), for DDL."""
    workdir = tmp_path_factory.mktemp("pamwire-open")
    proxy = _start_proxy(pg, pg_md5, workdir, ["allow-all.toml"])
    try:
        yield proxy
    finally:
        proxy.stop()

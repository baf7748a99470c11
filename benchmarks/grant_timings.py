"""The two grant figures that matter: approval to a usable connection, and expiry to
the last session closed and the account disabled.

Theory of operation: a throwaway PostgreSQL (and MariaDB, when installed) and a real
`pamwire serve` process whose configuration gives both targets grants. This script
drives a GrantService of its own on the same grants file, as `pamwire grant` does;
the proxy's expiry loop (`GrantService.expiry_loop`) does the expiry work.

(a) approve(), then connect and query as the person through pamwire (its
    PostgreSQL and MySQL listeners) until the query runs as the grant's account.
(b) a short grant with a session through pamwire running `SELECT 1` in a loop:
    from the grant's end to the loop's error, and
    to the moment the server shows no connection of the account and the account
    dropped or unable to log in (confirmed by a login attempt).

Every process and folder is removed at the end, also after a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]

from pamwire.grants.cli import open_service
from pamwire.grants.service import GrantService
from pamwire.localserver import free_port
from pamwire.mariadbcluster import MariaDBServer, find_mariadb
from pamwire.pgcluster import PostgresCluster

log = logging.getLogger("pamwire.bench.grants")

HOST = "127.0.0.1"
PERSON = "alice"
PERSON_PASSWORD = "alice-bench-pw"
APPROVER = "bob"
PG_ADMIN_PW = secrets.token_urlsafe(16)
MARIA_ADMIN_PW = secrets.token_urlsafe(16)
# Every wait below is bounded by this many seconds.
WAIT_LIMIT = 20.0
POLL = 0.02

CONFIG = """\
[[listener]]
protocol = "postgres"
host = "127.0.0.1"
port = {port}

[target.pg]
protocol = "postgres"
host = "127.0.0.1"
port = {pg_port}
database = "bench"
credential.user = "postgres"
credential.password_env = "PAMWIRE_BENCH_PG_ADMIN_PW"

[target.pg.grants]
roles = {{ "read-only" = "bench_ro" }}
approvers = ["bob"]
reason_required = false
admin.user = "postgres"
admin.password_env = "PAMWIRE_BENCH_PG_ADMIN_PW"

[audit]
path = "audit.db"

[users]
path = "users.db"

[rules]
files = ["allow-all.toml"]

[grants]
path = "grants.db"
key_file = "grants.key"
"""

MARIA_TARGET = """
[[listener]]
protocol = "mysql"
host = "127.0.0.1"
port = {my_port}

[target.maria]
protocol = "mysql"
host = "127.0.0.1"
port = {maria_port}
database = "bench"
credential.user = "root"
credential.password_env = "PAMWIRE_BENCH_MARIA_ADMIN_PW"

[target.maria.grants]
roles = {{ "read-only" = "bench_ro" }}
approvers = ["bob"]
reason_required = false
admin.user = "root"
admin.password_env = "PAMWIRE_BENCH_MARIA_ADMIN_PW"
"""


@dataclass
class Results:
    """Seconds per measure, in the order measured."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.values.setdefault(name, []).append(seconds)

    def table(self) -> str:
        lines = [
            "| measure | runs | median s | max s |",
            "| --- | --- | --- | --- |",
        ]
        for name, runs in self.values.items():
            lines.append(
                f"| {name} | {len(runs)} | {statistics.median(runs):.3f} "
                f"| {max(runs):.3f} |"
            )
        return "\n".join(lines)


def wait_until(what: str, check: Callable[[], bool]) -> float:
    """Poll `check` until true; return time.time() then. RuntimeError on timeout."""
    deadline = time.monotonic() + WAIT_LIMIT
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what}")
        time.sleep(POLL)
    return time.time()


# -- the servers and the proxy -------------------------------------------------------


@contextlib.contextmanager
def postgres(base: Path) -> Iterator[PostgresCluster]:
    folder = Path(tempfile.mkdtemp(prefix="pamwire-bench-pg-"))
    cluster = PostgresCluster(
        folder,
        port=free_port(),
        superuser_password=PG_ADMIN_PW,
        settings={"fsync": "off", "synchronous_commit": "off"},
    )
    try:
        cluster.init()
        cluster.start()
        cluster.psql("CREATE DATABASE bench")
        cluster.psql("CREATE ROLE bench_ro NOLOGIN")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def mariadb() -> Iterator[MariaDBServer]:
    folder = Path(tempfile.mkdtemp(prefix="pamwire-bench-maria-"))
    server = MariaDBServer(folder, port=free_port(), root_password=MARIA_ADMIN_PW)
    try:
        server.init()
        server.start()
        server.sql(
            "CREATE DATABASE bench; CREATE ROLE bench_ro;"
            " GRANT SELECT ON bench.* TO bench_ro; SET GLOBAL event_scheduler = ON;"
        )
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def pamwire(workdir: Path, env: dict[str, str], *args: str, stdin: str = "") -> None:
    command = [sys.executable, "-m", "pamwire", *args]
    command += ["--config", str(workdir / "pamwire.toml")]
    result = subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=env, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"pamwire {args[0]} failed: {result.stderr.strip()}")


@contextlib.contextmanager
def proxy(
    workdir: Path, env: dict[str, str], port: int, my_port: int | None = None
) -> Iterator[None]:
    config = workdir / "pamwire.toml"
    with (workdir / "pamwire.log").open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pamwire", "serve", "--config", str(config)],
            stdout=out,
            stderr=out,
            env=env,
            cwd=workdir,
        )
    try:

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError("pamwire serve exited; see pamwire.log")
            for each in (port, my_port):
                if each is None:
                    continue
                try:
                    socket.create_connection((HOST, each)).close()
                except OSError:
                    return False
            return True

        wait_until("pamwire to listen", listening)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


# -- PostgreSQL ----------------------------------------------------------------------


def pg_via_proxy(port: int) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=HOST,
        port=port,
        dbname="pg",
        user=PERSON,
        password=PERSON_PASSWORD,
        sslmode="disable",
        autocommit=True,
        connect_timeout=5,
    )


def pg_admin(cluster: PostgresCluster) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=HOST,
        port=cluster.port,
        dbname="bench",
        user="postgres",
        password=PG_ADMIN_PW,
        autocommit=True,
    )


def pg_usable(service: GrantService, port: int, results: Results) -> None:
    grant = service.request(PERSON, "pg", "read-only", 600, None)
    start = time.time()
    grant = service.approve(grant.id, APPROVER)
    results.add("pg: approve() returned (account minted)", time.time() - start)

    def works() -> bool:
        try:
            with pg_via_proxy(port) as conn:
                row = conn.execute("SELECT current_user").fetchone()
        except psycopg.Error:
            return False
        return row is not None and row[0] == grant.account

    results.add(
        "pg: approval to first query through pamwire",
        wait_until("a query as the grant's account", works) - start,
    )
    service.revoke(grant.id, APPROVER)


def query_loop(run: Callable[[], object], ended: list[float]) -> None:
    """Run `run` until it raises; record when."""
    deadline = time.monotonic() + WAIT_LIMIT * 2
    while time.monotonic() < deadline:
        try:
            run()
        except Exception:  # any driver error ends the session for this purpose
            ended.append(time.time())
            return
        time.sleep(0.005)


def pg_expiry(
    service: GrantService, cluster: PostgresCluster, port: int, results: Results
) -> None:
    grant = service.request(PERSON, "pg", "read-only", 3, None)
    grant = service.approve(grant.id, APPROVER)
    assert grant.expires_at is not None and grant.account is not None
    password = service.credential(grant).password
    session = pg_via_proxy(port)
    ended: list[float] = []
    loop = threading.Thread(
        target=query_loop, args=(lambda: session.execute("SELECT 1"), ended)
    )
    with pg_admin(cluster) as admin:
        row = admin.execute(
            "SELECT oid FROM pg_roles WHERE rolname = %s", (grant.account,)
        ).fetchone()
        assert row is not None
        oid = row[0]
        loop.start()

        def gone() -> bool:
            backends = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE usesysid = %s", (oid,)
            ).fetchone()
            login = admin.execute(
                "SELECT rolcanlogin FROM pg_roles WHERE oid = %s", (oid,)
            ).fetchone()
            return backends == (0,) and (login is None or login == (False,))

        disabled = wait_until("the account to be disabled", gone)
    loop.join(WAIT_LIMIT * 2)
    session.close()
    with contextlib.suppress(psycopg.Error):
        psycopg.connect(
            host=HOST,
            port=cluster.port,
            dbname="bench",
            user=grant.account,
            password=password,
            connect_timeout=5,
        ).close()
        raise RuntimeError(f"{grant.account} still logs in after its grant ended")
    if not ended:
        raise RuntimeError("the session through pamwire outlived its grant")
    results.add(
        "pg: expiry to session ended (client sees error)", ended[0] - grant.expires_at
    )
    results.add(
        "pg: expiry to no backend and account disabled", disabled - grant.expires_at
    )


# -- MariaDB -------------------------------------------------------------------------


def maria_connect(server: MariaDBServer, user: str, password: str) -> Any:
    return pymysql.connect(
        host=HOST,
        port=server.port,
        user=user,
        password=password,
        database="bench",
        connect_timeout=5,
        autocommit=True,
    )


def maria_via_proxy(my_port: int) -> Any:
    """The person's session through pamwire's MySQL listener (target maria)."""
    return pymysql.connect(
        host=HOST,
        port=my_port,
        user=PERSON,
        password=PERSON_PASSWORD,
        database="maria",
        connect_timeout=5,
        autocommit=True,
    )


def maria_query(conn: Any, sql: str, args: tuple[object, ...] = ()) -> list[Any]:
    with conn.cursor() as cursor:
        cursor.execute(sql, args)
        return list(cursor.fetchall())


def maria_usable(service: GrantService, my_port: int, results: Results) -> None:
    grant = service.request(PERSON, "maria", "read-only", 600, None)
    start = time.time()
    grant = service.approve(grant.id, APPROVER)
    results.add("mariadb: approve() returned (account minted)", time.time() - start)
    account = grant.account or ""

    def works() -> bool:
        try:
            conn = maria_via_proxy(my_port)
        except pymysql.MySQLError:
            return False
        try:
            rows = maria_query(conn, "SELECT CURRENT_USER()")
            return bool(rows) and str(rows[0][0]).startswith(f"{account}@")
        finally:
            conn.close()

    results.add(
        "mariadb: approval to first query through pamwire",
        wait_until("a query as the grant's account", works) - start,
    )
    service.revoke(grant.id, APPROVER)


def maria_expiry(
    service: GrantService, server: MariaDBServer, my_port: int, results: Results
) -> None:
    grant = service.request(PERSON, "maria", "read-only", 3, None)
    grant = service.approve(grant.id, APPROVER)
    assert grant.expires_at is not None and grant.account is not None
    account, password = grant.account, service.credential(grant).password
    session = maria_via_proxy(my_port)
    ended: list[float] = []
    loop = threading.Thread(
        target=query_loop, args=(lambda: maria_query(session, "SELECT 1"), ended)
    )
    admin = maria_connect(server, "root", MARIA_ADMIN_PW)
    try:
        loop.start()

        def gone() -> bool:
            left = maria_query(
                admin,
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = %s",
                (account,),
            )
            locked = maria_query(
                admin,
                "SELECT JSON_EXTRACT(Priv, '$.account_locked') FROM mysql.global_priv"
                " WHERE User = %s",
                (account,),
            )
            return left[0][0] == 0 and (not locked or locked[0][0] == "true")

        disabled = wait_until("the account to be disabled", gone)
    finally:
        admin.close()
    loop.join(WAIT_LIMIT * 2)
    with contextlib.suppress(pymysql.MySQLError):
        session.close()
    with contextlib.suppress(pymysql.MySQLError):
        maria_connect(server, account, password).close()
        raise RuntimeError(f"{account} still logs in after its grant ended")
    if not ended:
        raise RuntimeError("the MariaDB session outlived its grant")
    results.add(
        "mariadb: expiry to session ended (client sees error)",
        ended[0] - grant.expires_at,
    )
    results.add(
        "mariadb: expiry to no connection and account locked or dropped",
        disabled - grant.expires_at,
    )


# -- driver --------------------------------------------------------------------------


def run(rounds: int, skip_mariadb: bool) -> Results:
    results = Results()
    workdir = Path(tempfile.mkdtemp(prefix="pamwire-bench-grants-"))
    port, my_port = free_port(), free_port()
    env = dict(os.environ)
    env["PAMWIRE_BENCH_PG_ADMIN_PW"] = PG_ADMIN_PW
    env["PAMWIRE_BENCH_MARIA_ADMIN_PW"] = MARIA_ADMIN_PW
    os.environ.update({k: v for k, v in env.items() if k.startswith("PAMWIRE_BENCH_")})
    use_maria = not skip_mariadb and find_mariadb() is not None
    if not skip_mariadb and not use_maria:
        print(
            "MariaDB is not installed: skipping the MariaDB half "
            "(see pamwire.mariadbcluster.ensure_mariadb_installed)"
        )
    try:
        with contextlib.ExitStack() as stack:
            cluster = stack.enter_context(postgres(workdir))
            server = stack.enter_context(mariadb()) if use_maria else None
            text = CONFIG.format(port=port, pg_port=cluster.port)
            if server is not None:
                text += MARIA_TARGET.format(maria_port=server.port, my_port=my_port)
            (workdir / "pamwire.toml").write_text(text)
            (workdir / "allow-all.toml").write_text("# no rules\n")
            pamwire(
                workdir,
                env,
                "user",
                "add",
                PERSON,
                "--password-stdin",
                stdin=PERSON_PASSWORD + "\n",
            )
            stack.enter_context(
                proxy(workdir, env, port, my_port if server is not None else None)
            )
            service = open_service(workdir / "pamwire.toml")
            stack.callback(service.close)
            for _ in range(rounds):
                pg_usable(service, port, results)
                pg_expiry(service, cluster, port, results)
                if server is not None:
                    maria_usable(service, my_port, results)
                    maria_expiry(service, server, my_port, results)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="repetitions (5)")
    parser.add_argument(
        "--skip-mariadb", action="store_true", help="measure PostgreSQL only"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    results = run(args.rounds, args.skip_mariadb)
    print(
        f"grant timings, {started}, {args.rounds} rounds, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(results.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tests of the throwaway PostgreSQL cluster used by the demo and the fixtures."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from pamwire.errors import ConfigError, PamwireError
from pamwire.localserver import free_port
from pamwire.pgcluster import (
    PostgresCluster,
    demo_schema_path,
    ensure_postgres_installed,
    find_pg_bindir,
    quote_ident,
    quote_literal,
)
from tests.conftest import (
    RO_PASSWORD,
    ClusterFactory,
    _require_postgres,
    make_cluster_dir,
)

PASSWORD = "s3cret 'quoted' pw"


def _new_cluster(base_dir: pathlib.Path) -> PostgresCluster:
    return PostgresCluster(base_dir, port=free_port(), superuser_password=PASSWORD)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A bare cluster (no test schema) shared by this module's tests."""
    _require_postgres()
    base_dir = make_cluster_dir()
    try:
        with _new_cluster(base_dir) as started:
            yield started
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)


# -- without a server -------------------------------------------------------------


def test_pgcluster_rejects_unknown_auth_method(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="'ident'"):
        PostgresCluster(tmp_path, port=5, superuser_password="x", auth_method="ident")


def test_pgcluster_rejects_reserved_setting(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="listen_addresses"):
        PostgresCluster(
            tmp_path,
            port=5,
            superuser_password="x",
            settings={"listen_addresses": "*"},
        )


def test_pgcluster_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_pgcluster_quoting() -> None:
    assert quote_ident('we"ird') == '"we""ird"'
    assert quote_literal("it's") == "'it''s'"
    with pytest.raises(PamwireError):
        quote_literal("a\x00b")


def test_pgcluster_find_bindir_without_path(monkeypatch: pytest.MonkeyPatch) -> None:
    found = find_pg_bindir()
    if found is None:
        pytest.skip("postgresql binaries not installed")
    monkeypatch.setenv("PATH", "")
    fallback = find_pg_bindir()
    assert fallback is not None
    assert (fallback / "initdb").is_file()
    assert ensure_postgres_installed() == found


# -- with a server ----------------------------------------------------------------


@pytest.mark.integration
def test_pgcluster_scram_login_over_tcp(cluster: PostgresCluster) -> None:
    assert cluster.psql("SELECT current_user") == "postgres\n"
    stored = cluster.psql(
        "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'"
    )
    assert stored.startswith("SCRAM-SHA-256$")
    methods = cluster.psql(
        "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'"
    )
    assert methods == "scram-sha-256\n"
    listen = cluster.psql("SHOW listen_addresses")
    assert listen == "127.0.0.1\n"

    with pytest.raises(PamwireError, match="password authentication failed"):
        cluster.psql("SELECT 1", password="wrong")


@pytest.mark.integration
def test_pgcluster_roles_and_databases(cluster: PostgresCluster) -> None:
    cluster.create_role("demo_owner", "owner-pw")
    cluster.create_database("demo db", owner="demo_owner")
    out = cluster.psql(
        "SELECT current_user, current_database()",
        database="demo db",
        user="demo_owner",
    )
    assert out == "demo_owner|demo db\n"
    dsn = cluster.dsn(database="demo db", user="demo_owner")
    assert dsn == f"postgresql://demo_owner:owner-pw@127.0.0.1:{cluster.port}/demo%20db"
    assert "s3cret%20%27quoted%27%20pw@" in cluster.dsn()
    with psycopg.connect(cluster.dsn(), connect_timeout=10) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)


@pytest.mark.integration
def test_pgcluster_sql_error_carries_stderr(cluster: PostgresCluster) -> None:
    with pytest.raises(PamwireError, match="no_such_table"):
        cluster.psql("SELECT * FROM no_such_table")


@pytest.mark.integration
def test_pgcluster_demo_schema_loads(cluster: PostgresCluster) -> None:
    cluster.create_database("demo")
    cluster.run_sql_file(demo_schema_path(), database="demo")

    counts = cluster.psql(
        "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders)",
        database="demo",
    )
    customers, orders = (int(n) for n in counts.strip().split("|"))
    assert customers >= 10
    assert orders >= 10
    orphans = cluster.psql(
        "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id"
        " WHERE c.id IS NULL",
        database="demo",
    )
    assert orphans == "0\n"


@pytest.mark.integration
def test_pgcluster_stop_twice_and_restart(pg_cluster_dir: pathlib.Path) -> None:
    with _new_cluster(pg_cluster_dir) as cluster:
        cluster.stop()
        cluster.stop()
        assert not (cluster.data_dir / "postmaster.pid").exists()
        with pytest.raises(PamwireError):
            cluster.psql("SELECT 1")

        cluster.init()  # already initialised: a no-op
        cluster.start()
        assert cluster.psql("SELECT 1") == "1\n"
    assert not (cluster.data_dir / "postmaster.pid").exists()


@pytest.mark.integration
def test_pgcluster_start_failure_has_log_tail(pg_cluster_dir: pathlib.Path) -> None:
    cluster = _new_cluster(pg_cluster_dir)
    cluster.init()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", cluster.port))
        squatter.listen()
        with pytest.raises(PamwireError) as info:
            cluster.start()

    message = str(info.value)
    assert f"port {cluster.port} failed to start" in message
    assert "tail of" in message
    assert "could not bind" in message or "Address already in use" in message
    assert not (cluster.data_dir / "postmaster.pid").exists()


@pytest.mark.integration
def test_pgcluster_start_without_init(pg_cluster_dir: pathlib.Path) -> None:
    with pytest.raises(PamwireError, match="init"):
        _new_cluster(pg_cluster_dir).start()


# -- the shared fixtures ----------------------------------------------------------


@pytest.mark.integration
def test_pgcluster_fixture_has_test_schema(pg: PostgresCluster) -> None:
    assert pg.psql("SELECT count(*) FROM t", database="app", user="app") == "10\n"
    owner = pg.psql(
        "SELECT tableowner FROM pg_tables WHERE schemaname = 'hr' AND tablename = "
        "'payroll_confidential_records_for_all_employees_and_contractors2'",
        database="app",
    )
    assert owner == "app\n"
    rows = pg.psql("SELECT count(*) FROM v_u", database="app", user="ro")
    assert rows == "4\n"
    assert pg.psql("SELECT 1", database="app", user="ro", password=RO_PASSWORD) == "1\n"


@pytest.mark.integration
def test_pgcluster_factory_md5(pg_cluster_factory: ClusterFactory) -> None:
    cluster = pg_cluster_factory("md5")
    assert pg_cluster_factory("md5") is cluster
    stored = cluster.psql(
        "SELECT rolname, left(rolpassword, 3) FROM pg_authid"
        " WHERE rolname IN ('postgres', 'app') ORDER BY 1"
    )
    assert stored == "app|md5\npostgres|md5\n"
    methods = cluster.psql(
        "SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type = 'host'"
    )
    assert methods == "md5\n"
    assert cluster.psql("SELECT 1", database="app", user="app") == "1\n"


_EXIT_WITHOUT_STOP = """
import pathlib, sys
from pamwire.pgcluster import PostgresCluster
from pamwire.localserver import free_port
cluster = PostgresCluster(
    pathlib.Path(sys.argv[1]), port=free_port(), superuser_password="x"
)
cluster.init()
cluster.start()
print(cluster.psql("SELECT 1"), end="")
"""


@pytest.mark.integration
def test_pgcluster_stopped_at_interpreter_exit(pg_cluster_dir: pathlib.Path) -> None:
    try:
        result = subprocess.run(
            [sys.executable, "-c", _EXIT_WITHOUT_STOP, str(pg_cluster_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "1\n"
        assert not (pg_cluster_dir / "data" / "postmaster.pid").exists()
    finally:
        # Should the safety net fail, stop the orphan here rather than leak it.
        PostgresCluster(pg_cluster_dir, port=1, superuser_password="x").stop()

"""Shared fixtures: throwaway PostgreSQL 15 clusters for the integration tests.

One cluster per host authentication method is started on first use, shared by the
whole session and stopped at its end. Each has the role ``app`` (password
``app-secret-pw``) owning the database ``app``, the role ``ro``, and
fixtures/pg/test-schema.sql loaded into ``app``. Tests that use them are marked
``@pytest.mark.integration`` by their authors.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from pamwire.errors import PamwireError
from pamwire.localserver import free_port
from pamwire.pgcluster import PostgresCluster, find_pg_bindir

SUPERUSER_PASSWORD = "postgres-secret-pw"
APP_ROLE = "app"
APP_PASSWORD = "app-secret-pw"
RO_ROLE = "ro"
RO_PASSWORD = "ro-secret-pw"
TEST_SCHEMA = (
    pathlib.Path(__file__).parent.parent / "fixtures" / "pg" / "test-schema.sql"
)

# A test cluster holds nothing worth keeping: skip durability for speed. The
# logical wal_level lets replication-protocol cases run against the real server.
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "logical",
}


def make_cluster_dir(prefix: str = "pamwire-pg-") -> pathlib.Path:
    """Create an empty folder the postgres OS user can own.

    pytest's own tmp dirs sit under 0700 root-owned parents that the postgres user
    cannot traverse, so use a fresh folder directly in the system temp dir;
    PostgresCluster chowns it. The caller removes it.
    """
    return pathlib.Path(tempfile.mkdtemp(prefix=prefix))


def _require_postgres() -> None:
    if find_pg_bindir() is None:
        if os.environ.get("PAMWIRE_REQUIRE_SERVERS") == "1":
            pytest.fail(
                "postgresql binaries not found, and this run requires real servers"
            )
        pytest.skip(
            "postgresql binaries not found; see "
            "pamwire.pgcluster.ensure_postgres_installed()"
        )


class ClusterFactory:
    """Start and cache one prepared cluster per auth method; close() stops all."""

    def __init__(self) -> None:
        self._clusters: dict[str, PostgresCluster] = {}
        self._dirs: list[pathlib.Path] = []

    def __call__(self, auth_method: str = "scram-sha-256") -> PostgresCluster:
        cluster = self._clusters.get(auth_method)
        if cluster is None:
            cluster = self._start(auth_method)
            self._clusters[auth_method] = cluster
        return cluster

    def _start(self, auth_method: str) -> PostgresCluster:
        base_dir = make_cluster_dir(f"pamwire-pg-{auth_method}-")
        self._dirs.append(base_dir)
        cluster = PostgresCluster(
            base_dir,
            port=free_port(),
            superuser_password=SUPERUSER_PASSWORD,
            auth_method=auth_method,
            settings=TEST_SETTINGS,
        )
        try:
            cluster.init()
            cluster.start()
            cluster.create_role(APP_ROLE, APP_PASSWORD)
            cluster.create_role(RO_ROLE, RO_PASSWORD)
            cluster.create_database(APP_ROLE, owner=APP_ROLE)
            cluster.run_sql_file(TEST_SCHEMA, database=APP_ROLE)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def close(self) -> None:
        """Stop every cluster and remove its folder; safe to call twice."""
        errors: list[PamwireError] = []
        for cluster in self._clusters.values():
            try:
                cluster.stop()
            except PamwireError as exc:
                errors.append(exc)
        self._clusters.clear()
        for base_dir in self._dirs:
            shutil.rmtree(base_dir, ignore_errors=True)
        self._dirs.clear()
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def pg_cluster_factory() -> Iterator[ClusterFactory]:
    """Call with an auth method (scram-sha-256, md5, password, trust) for a cluster."""
    _require_postgres()
    factory = ClusterFactory()
    # Safety net when the session dies before fixture teardown runs; pgcluster also
    # stops running servers at exit, this removes the folders too.
    atexit.register(factory.close)
    try:
        yield factory
    finally:
        factory.close()
        atexit.unregister(factory.close)


@pytest.fixture(scope="session")
def pg(pg_cluster_factory: ClusterFactory) -> PostgresCluster:
    """The session's PostgreSQL 15 cluster with scram-sha-256 host authentication."""
    return pg_cluster_factory("scram-sha-256")


@pytest.fixture(scope="session")
def pg_md5(pg_cluster_factory: ClusterFactory) -> PostgresCluster:
    """A cluster with md5 host authentication and md5-stored passwords."""
    return pg_cluster_factory("md5")


@pytest.fixture
def pg_cluster_dir() -> Iterator[pathlib.Path]:
    """An empty folder for a test's own cluster, removed afterwards.

    The test must stop its cluster itself (a ``with`` block does).
    """
    _require_postgres()
    base_dir = make_cluster_dir()
    try:
        yield base_dir
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)

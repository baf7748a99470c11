"""pamwire answers whatever authentication the upstream server asks for."""

from __future__ import annotations

import pytest

from pamwire.pgcluster import PostgresCluster
from tests.conftest import ClusterFactory
from tests.integration.conftest import Proxy, _start_proxy

pytestmark = pytest.mark.integration

CLEARTEXT_TARGET = """
[target.cleartext]
protocol = "postgres"
host = "127.0.0.1"
port = {port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"
"""


@pytest.mark.parametrize("method", ["scram-sha-256", "md5", "password"])
def test_upstream_login_with_each_method(
    pg: PostgresCluster,
    pg_md5: PostgresCluster,
    pg_cluster_factory: ClusterFactory,
    tmp_path_factory: pytest.TempPathFactory,
    method: str,
) -> None:
    cluster = pg_cluster_factory(method)
    proxy: Proxy = _start_proxy(
        pg,
        pg_md5,
        tmp_path_factory.mktemp(f"pamwire-{method}"),
        ["pack:baseline"],
        extra=CLEARTEXT_TARGET.format(port=cluster.port),
    )
    try:
        out = proxy.psql(
            "-At", "-c", "select current_user", dsn=proxy.dsn(database="cleartext")
        )
        assert out.stdout.strip() == "app"
        method_seen = cluster.psql(
            "select count(*) from pg_hba_file_rules where auth_method = "
            f"'{method}' and 'host' = type"
        )
        assert int(method_seen.strip()) >= 1
    finally:
        proxy.stop()

"""sysbench's OLTP workloads through pamwire's MySQL listener: short, bounded runs."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.integration.mysql_conftest import (
    PERSON,
    PERSON_PASSWORD,
    TARGET,
    MysqlProxy,
    mysql_open_proxy,
    mysql_proxy,
    mysql_server,
)

__all__ = ["mysql_open_proxy", "mysql_proxy", "mysql_server"]

pytestmark = pytest.mark.integration

TABLE_SIZE = 1000


def _sysbench(proxy: MysqlProxy, workload: str, command: str, *extra: str) -> str:
    if shutil.which("sysbench") is None:
        pytest.skip("sysbench is not installed (apt-get install sysbench)")
    argv = [
        "sysbench",
        workload,
        "--db-driver=mysql",
        "--mysql-host=127.0.0.1",
        f"--mysql-port={proxy.port}",
        f"--mysql-user={PERSON}",
        f"--mysql-password={PERSON_PASSWORD}",
        f"--mysql-db={TARGET}",
        "--mysql-ssl=off",
        "--tables=1",
        f"--table-size={TABLE_SIZE}",
        *extra,
        command,
    ]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, env=proxy.env
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def sbtest(mysql_open_proxy: MysqlProxy) -> None:
    """The sysbench table, created through pamwire (DDL needs the open rules)."""
    mysql_open_proxy.server.sql("DROP TABLE IF EXISTS sbtest1", database="app")
    _sysbench(mysql_open_proxy, "oltp_read_only", "prepare")


@pytest.mark.usefixtures("sbtest")
@pytest.mark.parametrize("workload", ["oltp_read_only", "oltp_read_write"])
def test_mysql_sysbench_through_baseline_rules(
    mysql_proxy: MysqlProxy, workload: str
) -> None:
    out = _sysbench(mysql_proxy, workload, "run", "--time=5", "--threads=2")
    assert "transactions:" in out
    # sysbench ignores only deadlocks and lock waits (its --mysql-ignore-errors
    # default), which two writers on one small table may meet; all else is fatal.
    assert "FATAL" not in out
    transactions = int(out.split("transactions:")[1].split()[0])
    assert transactions > 0

"""pgbench through pamwire: initialisation (DDL, COPY), then select-only runs."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.integration.conftest import PERSON, PERSON_PASSWORD, TARGET, Proxy

pytestmark = pytest.mark.integration


def _pgbench(proxy: Proxy, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(proxy.env)
    env["PGPASSWORD"] = PERSON_PASSWORD
    cmd = [
        "pgbench",
        "-h",
        "127.0.0.1",
        "-p",
        str(proxy.port),
        "-U",
        PERSON,
        *args,
        TARGET,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_pgbench_init_through_pamwire(open_proxy: Proxy) -> None:
    # Drops and recreates the pgbench tables at the scale the test schema has, so
    # the select-only runs below work whether or not this ran first.
    initialised = _pgbench(open_proxy, "-i", "-s", "1")
    assert initialised.returncode == 0, initialised.stderr
    assert "done in" in initialised.stderr
    count = open_proxy.pg.psql("select count(*) from pgbench_accounts", database="app")
    assert count.strip() == "100000"
    branches = open_proxy.pg.psql(
        "select count(*) from pgbench_branches", database="app"
    )
    assert branches.strip() == "1"


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_select_only_runs_without_failures(proxy: Proxy, mode: str) -> None:
    result = _pgbench(proxy, "-S", "-n", "-T", "3", "-c", "4", "-j", "2", "-M", mode)
    assert result.returncode == 0, result.stderr
    out = result.stdout

    assert f"query mode: {mode}" in out
    failed = re.search(r"number of failed transactions: (\d+)", out)
    assert failed is not None, out
    assert failed.group(1) == "0"
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    assert processed is not None and int(processed.group(1)) > 0, out
    tps = re.search(r"tps = ([0-9.]+)", out)
    assert tps is not None and float(tps.group(1)) > 0, out
    assert "error" not in result.stderr.lower(), result.stderr

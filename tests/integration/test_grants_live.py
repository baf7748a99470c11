"""Just-in-time grants through the proxy: no grant, approve, minted login, revoke.

A pamwire of its own serves target `granted` (database `app`), which takes grants:
sessions log in upstream as the account minted for the person's approved grant, and
end when the grant does.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pamwire.pgcluster import PostgresCluster
from tests.integration.conftest import PERSON, Proxy, _start_proxy

pytestmark = pytest.mark.integration

GRANTS = """
[grants]
path = "grants.db"
key_file = "grants.key"

[target.granted]
protocol = "postgres"
host = "127.0.0.1"
port = {pg_port}
database = "app"
credential.user = "app"
credential.password_env = "PAMWIRE_TEST_APP_PASSWORD"

[target.granted.grants]
roles = {{ "read-only" = "ro", "read-write" = "app" }}
approvers = ["bob"]
max_duration = "1h"
default_duration = "10m"
reason_required = true
admin.user = "postgres"
admin.password_env = "PAMWIRE_TEST_SUPERUSER_PASSWORD"
"""


@pytest.fixture(scope="module")
def granting_proxy(
    pg: PostgresCluster,
    pg_md5: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    workdir = tmp_path_factory.mktemp("pamwire-grants")
    proxy = _start_proxy(
        pg, pg_md5, workdir, ["pack:baseline"], extra=GRANTS.format(pg_port=pg.port)
    )
    added = proxy.pamwire("user", "add", "bob", "--password-stdin", input="bob-pw\n")
    assert added.returncode == 0, added.stderr
    try:
        yield proxy
    finally:
        proxy.stop()


def _grant(proxy: Proxy, *args: str) -> str:
    result = proxy.pamwire("grant", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _request(proxy: Proxy, role: str, person: str = PERSON) -> int:
    out = _grant(
        proxy, "request", "granted", "--role", role, "--reason", "test", "--as", person
    )
    found = re.search(r"grant (\d+)", out)
    assert found, out
    return int(found.group(1))


def test_grant_flow_through_the_proxy(granting_proxy: Proxy) -> None:
    proxy = granting_proxy
    dsn = proxy.dsn(database="granted")

    refused = proxy.psql("-c", "select 1", dsn=dsn, check=False)
    assert refused.returncode != 0 and "pamwire grant request" in refused.stderr

    grant_id = _request(proxy, "read-write")
    own = proxy.pamwire("grant", "approve", str(grant_id), "--as", PERSON)
    assert own.returncode != 0  # nobody approves her own request
    _grant(proxy, "approve", str(grant_id), "--as", "bob")

    account = proxy.psql("-At", "-c", "select current_user", dsn=dsn).stdout.strip()
    assert account.startswith("pamwire_") and account != "app"
    denied = proxy.psql("-c", "DELETE FROM delete_log", dsn=dsn, check=False)
    assert denied.returncode != 0 and "denied" in denied.stderr

    events = proxy.log_events("--user", PERSON)
    assert any(e.get("grant") == str(grant_id) for e in events)
    assert any(e.get("db_account") == account for e in events)

    with psycopg.connect(dsn, autocommit=True) as connection:
        assert connection.execute("select 1").fetchone() == (1,)
        _grant(proxy, "revoke", str(grant_id), "--as", "bob", "--reason", "done")
        deadline = time.monotonic() + 5
        with pytest.raises(psycopg.OperationalError) as ended:
            while time.monotonic() < deadline:
                connection.execute("select 1")
                time.sleep(0.2)
        assert "administrator command" in str(ended.value)

    gone = proxy.pg.psql(f"select count(*) from pg_roles where rolname = '{account}'")
    assert gone.strip() == "0"
    listed = json.loads(_grant(proxy, "show", str(grant_id), "--format", "json"))
    assert "revoked" in json.dumps(listed)


def test_grant_password_never_shown(granting_proxy: Proxy) -> None:
    proxy = granting_proxy
    grant_id = _request(proxy, "read-only")
    _grant(proxy, "approve", str(grant_id), "--as", "bob")
    account = proxy.psql(
        "-At", "-c", "select current_user", dsn=proxy.dsn(database="granted")
    ).stdout.strip()
    assert account.startswith("pamwire_")
    outputs = [
        _grant(proxy, "list", "--format", "json"),
        _grant(proxy, "show", str(grant_id), "--format", "json"),
        proxy.log_tail(10_000),
    ]
    # The stored verifier of the minted role must not appear in any output.
    verifier = proxy.pg.psql(
        f"select rolpassword from pg_authid where rolname = '{account}'"
    ).strip()
    assert verifier and all(verifier not in text for text in outputs)
    for path in Path(proxy.workdir).iterdir():
        if path.is_file():
            assert verifier.encode() not in path.read_bytes()
    _grant(proxy, "revoke", str(grant_id), "--as", "bob", "--reason", "done")

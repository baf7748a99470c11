"""Overrides end to end: LOAD DATA LOCAL INFILE through pamwire with pack:baseline.

baseline's no-load-data-local denies every LOCAL INFILE. An allow rule that
overrides it for one person (bob) and one group (importers, holding carol)
lets their transfers through; everyone else is still refused. The file is
named relative to the client's working folder, which is not pamwire's: only
the client can open it, so a loaded row shows the client sent it.
"""

from __future__ import annotations

import atexit
import json
import pathlib
import shutil
import tempfile
import uuid
from typing import Any

import mysql.connector
import pymysql
import pytest

from pamwire.localserver import free_port
from pamwire.mariadbcluster import MariaDBServer
from tests.integration.mysql_conftest import CONFIG, MysqlProxy, mysql_server
from tests.mysql.conftest import APP_DATABASE

__all__ = ["mysql_server"]

pytestmark = pytest.mark.integration

PERSONS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
TABLE = "ld_override"
SCRATCH = "scratch_override"

EXCEPTIONS = f"""\
[[rule]]
id = "bob-loads-local"
description = "bob loads CSV files from his machine into {TABLE}"
action = "allow"
overrides = ["baseline/no-load-data-local"]
when.kind = ["load"]
when.copy = ["stdio"]
when.user = ["bob"]
when.tables_written = ["*.{TABLE}"]

[[rule]]
id = "importers-load-local"
action = "allow"
overrides = ["baseline/no-load-data-local"]
when.kind = ["load"]
when.copy = ["stdio"]
when.group = ["importers"]
when.tables_written = ["*.{TABLE}"]

[[rule]]
id = "bob-truncates-scratch"
action = "allow"
overrides = ["baseline/no-truncate"]
when.kind = ["truncate"]
when.user = ["bob"]
when.tables_written = ["*.{SCRATCH}"]
"""

GROUPS = """
[grants.groups]
importers = ["carol"]
"""

_shared: dict[str, MysqlProxy] = {}


def _start(server: MariaDBServer) -> MysqlProxy:
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="pamwire-mysql-overrides-"))
    proxy = MysqlProxy(workdir, free_port(), server)
    (workdir / "exceptions.toml").write_text(EXCEPTIONS)
    rules = json.dumps(["pack:baseline", "exceptions.toml"])
    config = CONFIG.format(
        port=proxy.port, db_port=server.port, dead_port=free_port(), rules=rules
    )
    proxy.config.write_text(config + GROUPS)
    for person, password in PERSONS.items():
        added = proxy.pamwire(
            "user", "add", person, "--password-stdin", input=password + "\n"
        )
        assert added.returncode == 0, added.stderr
    server.sql(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (tag VARCHAR(40), n INT); "
        f"CREATE TABLE IF NOT EXISTS {SCRATCH} (n INT)",
        database=APP_DATABASE,
    )
    proxy.start()

    def close() -> None:
        proxy.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(close)
    return proxy


@pytest.fixture
def proxy(mysql_server: MariaDBServer) -> MysqlProxy:
    """pamwire with pack:baseline and the exceptions above, persons of PERSONS."""
    if "proxy" not in _shared:
        _shared["proxy"] = _start(mysql_server)
    return _shared["proxy"]


@pytest.fixture
def client_dir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """The client's working folder, where relative LOCAL INFILE names resolve."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _load(proxy: MysqlProxy, person: str, name: str) -> None:
    conn = pymysql.connect(
        **proxy.connect_args(user=person, password=PERSONS[person]),
        local_infile=True,
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"LOAD DATA LOCAL INFILE '{name}' INTO TABLE {TABLE} "
                "FIELDS TERMINATED BY ','"
            )
    finally:
        conn.close()


def _rows(proxy: MysqlProxy, tag: str) -> list[str]:
    out = proxy.server.sql(
        f"SELECT n FROM {TABLE} WHERE tag = '{tag}' ORDER BY n",
        database=APP_DATABASE,
    )
    return out.split()


def _load_events(proxy: MysqlProxy, name: str) -> list[dict[str, Any]]:
    statement = f"LOAD DATA LOCAL INFILE '{name}'"
    return [
        e
        for e in proxy.log_events()
        if e["kind"] == "statement" and statement in (e["statement"] or "")
    ]


def test_mysql_override_loads_the_client_file_for_its_person_only(
    proxy: MysqlProxy, client_dir: pathlib.Path
) -> None:
    tag = uuid.uuid4().hex[:12]
    name = f"rows-{tag}.csv"
    (client_dir / name).write_text(f"{tag},1\n{tag},2\n")
    assert not (proxy.workdir / name).exists()

    _load(proxy, "bob", name)
    assert _rows(proxy, tag) == ["1", "2"]

    # alice right after bob: the same statement, with no override of her own.
    with pytest.raises(pymysql.err.OperationalError) as caught:
        _load(proxy, "alice", name)
    assert caught.value.args[0] == 1142
    assert "no-load-data-local" in caught.value.args[1]
    assert _rows(proxy, tag) == ["1", "2"]

    events = _load_events(proxy, name)
    by_user = {e["user"]: e for e in events}
    bob, alice = by_user["bob"], by_user["alice"]
    assert (bob["verdict"], bob["rule"]) == ("allow", "bob-loads-local")
    assert bob["detail"] == (
        "deny rule baseline/no-load-data-local lifted by exceptions/bob-loads-local"
    )
    assert (alice["verdict"], alice["rule"]) == ("deny", "no-load-data-local")
    assert alice["detail"] is None


def test_mysql_override_for_a_group(
    proxy: MysqlProxy, client_dir: pathlib.Path
) -> None:
    tag = uuid.uuid4().hex[:12]
    name = f"group-{tag}.csv"
    (client_dir / name).write_text(f"{tag},7\n")
    _load(proxy, "carol", name)
    assert _rows(proxy, tag) == ["7"]
    (event,) = [e for e in _load_events(proxy, name) if e["user"] == "carol"]
    assert event["rule"] == "importers-load-local"
    assert "lifted by exceptions/importers-load-local" in event["detail"]


def test_mysql_override_does_not_reach_other_tables(
    proxy: MysqlProxy, client_dir: pathlib.Path
) -> None:
    name = f"other-{uuid.uuid4().hex[:12]}.csv"
    (client_dir / name).write_text("1\n")
    conn = pymysql.connect(
        **proxy.connect_args(user="bob", password=PERSONS["bob"]),
        local_infile=True,
    )
    try:
        with conn.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as no:
            cur.execute(f"LOAD DATA LOCAL INFILE '{name}' INTO TABLE d")
        assert "no-load-data-local" in no.value.args[1]
        with conn.cursor() as cur:
            cur.execute("SELECT 1")  # the session stays usable
            assert cur.fetchone() == (1,)
    finally:
        conn.close()


def test_mysql_override_of_a_prepared_statement_is_audited_at_execute(
    proxy: MysqlProxy,
) -> None:
    proxy.server.sql(f"INSERT INTO {SCRATCH} VALUES (1)", database=APP_DATABASE)
    statement = f"TRUNCATE TABLE {SCRATCH}"
    bob = mysql.connector.connect(
        **proxy.connect_args(user="bob", password=PERSONS["bob"]),
        use_pure=True,
        ssl_disabled=True,
    )
    try:
        cur = bob.cursor(prepared=True)  # type: ignore[call-arg]
        cur.execute(statement)
        cur.close()
    finally:
        bob.close()
    count = proxy.server.sql(f"SELECT COUNT(*) FROM {SCRATCH}", database=APP_DATABASE)
    assert count.split() == ["0"]

    alice = mysql.connector.connect(
        **proxy.connect_args(user="alice", password=PERSONS["alice"]),
        use_pure=True,
        ssl_disabled=True,
    )
    try:
        cur = alice.cursor(prepared=True)  # type: ignore[call-arg]
        with pytest.raises(mysql.connector.Error) as caught:
            cur.execute(statement)
        assert "no-truncate" in str(caught.value)
    finally:
        alice.close()

    events = [
        e
        for e in proxy.log_events()
        if e["kind"] == "statement" and e["statement"] == statement
    ]
    lifted = "deny rule baseline/no-truncate lifted by exceptions/bob-truncates-scratch"
    # An allowed COM_STMT_PREPARE leaves no event; its execution does.
    (run,) = [e for e in events if e["user"] == "bob"]
    assert run["operation"] == "execute"
    assert (run["verdict"], run["rule"]) == ("allow", "bob-truncates-scratch")
    assert run["detail"] == lifted
    (refused,) = [e for e in events if e["user"] == "alice"]
    assert (refused["verdict"], refused["rule"]) == ("deny", "no-truncate")

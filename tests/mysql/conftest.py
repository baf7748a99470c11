"""Fixtures of the MySQL tests: a throwaway MariaDB 10.11 server for the session.

The server listens on a free loopback port and holds the database ``app`` with
a few tables; the account ``app``@``127.0.0.1`` (password ``app-secret-pw``,
mysql_native_password) has all rights on it. Tests that use it are marked
``@pytest.mark.integration``. With PAMWIRE_REQUIRE_SERVERS=1 a missing MariaDB
fails the tests instead of skipping them.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from pamwire.localserver import free_port
from pamwire.mariadbcluster import MariaDBServer, find_mariadb

ROOT_PASSWORD = "mariadb-root-pw"
APP_USER = "app"
APP_PASSWORD = "app-secret-pw"
APP_DATABASE = "app"

# t is the table most tests read; d has column defaults (COM_FIELD_LIST shows
# them); p returns two result sets and an OK (a CALL reply).
TEST_SCHEMA = (
    "CREATE TABLE t (id INT PRIMARY KEY, a TEXT, b INT)",
    "INSERT INTO t SELECT seq, CONCAT('row ', seq), seq * 10 FROM seq_1_to_10",
    """CREATE TABLE d (
        id INT PRIMARY KEY AUTO_INCREMENT,
        name VARCHAR(20) NOT NULL DEFAULT 'nobody',
        n INT DEFAULT 7,
        at DATETIME(3) NULL,
        blob_col BLOB
    )""",
    """INSERT INTO d (name, n, at) VALUES
        ('alice', 1, '2024-01-02 03:04:05.678'), ('bob', NULL, NULL)""",
    """CREATE PROCEDURE p(IN x INT)
    BEGIN
        SELECT x AS a;
        SELECT x + 1 AS b;
        UPDATE t SET a = a WHERE 1 = 0;
    END""",
)


def require_mariadb() -> None:
    """Skip (or fail under PAMWIRE_REQUIRE_SERVERS=1) when MariaDB is missing."""
    if find_mariadb() is None:
        if os.environ.get("PAMWIRE_REQUIRE_SERVERS") == "1":
            pytest.fail(
                "mariadb binaries not found, and this run requires real servers"
            )
        pytest.skip(
            "mariadb binaries not found; see "
            "pamwire.mariadbcluster.ensure_mariadb_installed()"
        )


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """The session's MariaDB with database app, user app and the test schema."""
    require_mariadb()
    base_dir = pathlib.Path(tempfile.mkdtemp(prefix="pamwire-mariadb-"))
    server = MariaDBServer(base_dir, port=free_port(), root_password=ROOT_PASSWORD)

    def close() -> None:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)

    atexit.register(close)
    try:
        server.init()
        server.start()
        server.create_database(APP_DATABASE)
        server.create_user(APP_USER, APP_PASSWORD, grant_database=APP_DATABASE)
        script = "DELIMITER //\n" + "".join(f"{s}\n//\n" for s in TEST_SCHEMA)
        server.sql(script, database=APP_DATABASE)
        yield server
    finally:
        close()
        atexit.unregister(close)

"""Record real client/server conversations into protocols/mysql/captures/*.json.

Starts a throwaway MariaDB on loopback, puts a recording relay in front of it,
and runs PyMySQL, mysql-connector-python (pure Python) and the mariadb client
through the relay. Each file lists the logical packets in order, with their
direction, sequence id and payload in hex. Run from the repository root:

    python protocols/mysql/captures/record.py

It needs PyMySQL and mysql-connector-python; tests/mysql/test_captures.py
decodes and re-encodes every recorded packet.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from pamwire.mariadbcluster import MariaDBServer, ensure_mariadb_installed  # noqa: E402
from pamwire.mysql.packets import PacketReader, payload  # noqa: E402
from pamwire.pgcluster import free_port  # noqa: E402

USER, PASSWORD, DATABASE = "app", "app-secret-pw", "app"
SCHEMA = """
CREATE TABLE t (id INT PRIMARY KEY, a TEXT, b INT);
INSERT INTO t SELECT seq, CONCAT('row ', seq), seq * 10 FROM seq_1_to_10;
CREATE TABLE k (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20), at DATETIME(3),
                price DECIMAL(8,2), blob_col BLOB);
CREATE TABLE ld (a INT, b TEXT);
"""
PROCEDURE = """CREATE PROCEDURE p(IN x INT)
BEGIN
    SELECT x AS a;
    SELECT x + 1 AS b;
    UPDATE t SET a = a WHERE 1 = 0;
END"""
RELAY_TIMEOUT = 30.0


class Relay:
    """Forwards one client connection at a time to the server, recording both ways."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.chunks: list[tuple[str, bytes]] = []
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.chunks = []
        self._thread = threading.Thread(target=self._serve_one, daemon=True)
        self._thread.start()

    def wait(self) -> None:
        assert self._thread is not None
        self._thread.join(RELAY_TIMEOUT)

    def _serve_one(self) -> None:
        self.listener.settimeout(RELAY_TIMEOUT)
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.upstream_port))
        peers = {client: (server, "client"), server: (client, "server")}
        open_ = True
        while open_:
            ready, _, _ = select.select(list(peers), [], [], RELAY_TIMEOUT)
            if not ready:
                break
            for sock in ready:
                data = sock.recv(1 << 16)
                other, who = peers[sock]
                if not data:
                    open_ = False
                    break
                self.chunks.append((who, data))
                other.sendall(data)
        client.close()
        server.close()

    def packets(self) -> list[dict[str, object]]:
        readers = {"client": PacketReader(), "server": PacketReader()}
        out: list[dict[str, object]] = []
        for who, data in self.chunks:
            reader = readers[who]
            reader.feed(data)
            block, packets = reader.read_packets()
            for packet in packets:
                body = bytes(payload(block, packet))
                out.append({"from": who, "seq": packet.sequence_id, "hex": body.hex()})
        return out


def pymysql_text(port: int, work: pathlib.Path) -> None:
    import pymysql
    from pymysql.constants import CLIENT

    csv = work / "ld.csv"
    csv.write_text("1,a\n2,b\n", encoding="utf-8")
    conn = pymysql.connect(
        host="127.0.0.1",
        port=port,
        user=USER,
        password=PASSWORD,
        database=DATABASE,
        client_flag=CLIENT.MULTI_STATEMENTS,
        local_infile=True,
    )
    with conn.cursor() as cur:
        cur.execute("SELECT id, a, b FROM t WHERE id <= %s", (3,))
        cur.fetchall()
        cur.execute("SELECT 1; SELECT NULL, 'x'; UPDATE t SET b = b WHERE id = 1")
        while cur.nextset():
            pass
        cur.callproc("p", (5,))
        while cur.nextset():
            pass
        cur.executemany(
            "INSERT INTO k (v, at, price) VALUES (%s, %s, %s)",
            [("a", "2024-01-02 03:04:05.678", "1.50"), ("b", None, None)],
        )
        with contextlib.suppress(pymysql.MySQLError):
            cur.execute("SELECT * FROM no_such_table")
        # A relative name (from the work folder) keeps machine paths out of the file.
        here = os.getcwd()
        os.chdir(work)
        try:
            cur.execute(
                "LOAD DATA LOCAL INFILE 'ld.csv' INTO TABLE ld FIELDS TERMINATED BY ','"
            )
        finally:
            os.chdir(here)
        cur.execute("SELECT * FROM seq_1_to_300")
        cur.fetchall()
    conn.select_db(DATABASE)
    conn.ping()
    conn.commit()
    conn.close()


def connector_prepared(port: int, work: pathlib.Path) -> None:
    import mysql.connector

    conn = mysql.connector.connect(
        host="127.0.0.1",
        port=port,
        user=USER,
        password=PASSWORD,
        database=DATABASE,
        use_pure=True,
        ssl_disabled=True,
    )
    cur = conn.cursor(prepared=True)
    cur.execute("SELECT id, a, b FROM t WHERE id > ? AND a LIKE ?", (7, "row %"))
    cur.fetchall()
    cur.execute("SELECT id, a, b FROM t WHERE id > ? AND a LIKE ?", (2, "%"))
    cur.fetchall()
    cur.execute(
        "INSERT INTO k (v, at, price, blob_col) VALUES (?, ?, ?, ?)",
        ("c", "2024-02-29 23:59:58.123", 2.5, b"\x00\x01\xfe\xff" * 50),
    )
    cur.execute("SELECT id, v, at, price, blob_col FROM k ORDER BY id")
    cur.fetchall()
    cur.close()
    plain = conn.cursor()
    plain.execute("SELECT @@version, NOW(6), 1.5e3, CAST(NULL AS INT)")
    plain.fetchall()
    plain.close()
    conn.cmd_statistics()
    conn.cmd_reset_connection()
    conn.close()


def mariadb_cli(port: int, work: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
    env["MYSQL_PWD"] = PASSWORD
    subprocess.run(
        [
            "mariadb",
            "--no-defaults",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--user={USER}",
            "--ssl=0",
            DATABASE,
            "-e",
            "SELECT * FROM t LIMIT 3; SHOW TABLES; CALL p(1); SELECT 'after' AS c",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=RELAY_TIMEOUT,
    )


CONVERSATIONS: dict[str, Callable[[int, pathlib.Path], None]] = {
    "pymysql-text": pymysql_text,
    "mysql-connector-prepared": connector_prepared,
    "mariadb-cli": mariadb_cli,
}


def main() -> int:
    ensure_mariadb_installed()
    work = pathlib.Path(tempfile.mkdtemp(prefix="pamwire-capture-"))
    work.chmod(0o755)  # the mysql os user must reach the server folder inside
    server = MariaDBServer(
        work / "server", port=free_port(), root_password="capture-root"
    )
    try:
        server.init()
        server.start()
        server.create_database(DATABASE)
        server.create_user(USER, PASSWORD, grant_database=DATABASE)
        server.sql("SET GLOBAL local_infile = 1")
        server.sql(SCHEMA, database=DATABASE)
        server.sql(f"DELIMITER //\n{PROCEDURE}\n//\n", database=DATABASE)
        relay = Relay(server.port)
        for name, run in CONVERSATIONS.items():
            relay.start()
            run(relay.port, work)
            relay.wait()
            target = HERE / f"{name}.json"
            body = {
                "client": name,
                "server": "MariaDB 10.11",
                "packets": relay.packets(),
            }
            target.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
            print(f"wrote {target.name}: {len(body['packets'])} packets")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

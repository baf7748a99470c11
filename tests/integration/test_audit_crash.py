"""No statement that reached the server is missing from the trail, even after kill -9.

The server logs every statement (log_statement = all). A client runs numbered
statements through pamwire while pamwire is killed with SIGKILL; pamwire is started
again (it recovers its journal), and every numbered statement in the server's log
must have its event in the trail, which must still verify.
"""

from __future__ import annotations

import pathlib
import re
import signal
import threading
import time

import psycopg
import pytest

from pamwire.localserver import free_port
from pamwire.pgcluster import PostgresCluster
from tests.conftest import APP_PASSWORD, SUPERUSER_PASSWORD, TEST_SCHEMA
from tests.integration.conftest import _start_proxy

pytestmark = pytest.mark.integration


def test_kill_9_loses_no_statement_the_server_ran(
    pg_cluster_dir: pathlib.Path,
    pg_md5: PostgresCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = {"fsync": "off", "log_statement": "all"}
    with PostgresCluster(
        pg_cluster_dir,
        port=free_port(),
        superuser_password=SUPERUSER_PASSWORD,
        settings=settings,
    ) as cluster:
        cluster.create_role("app", APP_PASSWORD)
        cluster.create_database("app", owner="app")
        cluster.run_sql_file(TEST_SCHEMA, database="app")
        proxy = _start_proxy(
            cluster, pg_md5, tmp_path_factory.mktemp("pamwire-k9"), ["pack:baseline"]
        )
        stop = threading.Event()

        def workload() -> None:
            n = 0
            while not stop.is_set() and n < 20000:
                try:
                    with psycopg.connect(proxy.dsn(), autocommit=True) as conn:
                        while not stop.is_set() and n < 20000:
                            n += 1
                            conn.execute(f"select 'k9-{n}'")
                except psycopg.Error:
                    time.sleep(0.05)

        worker = threading.Thread(target=workload)
        worker.start()
        try:
            time.sleep(2.0)
            assert proxy.process is not None
            proxy.process.send_signal(signal.SIGKILL)
            proxy.process.wait(10)
            time.sleep(0.3)
            proxy.start()  # recovers what the journal holds
            time.sleep(1.0)
        finally:
            stop.set()
            worker.join(30)
            proxy.stop()

        logged = {
            int(m)
            for m in re.findall(
                r"statement: select 'k9-(\d+)'",
                cluster.log_path.read_text(errors="replace"),
            )
        }
        events = proxy.log_events()
        audited = {
            int(m.group(1))
            for e in events
            if (m := re.fullmatch(r"select 'k9-(\d+)'", str(e.get("statement"))))
        }
        assert len(logged) > 100, "the workload did not run"
        assert logged <= audited, sorted(logged - audited)[:10]
        verified = proxy.pamwire("log", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr

"""`pamwire demo`: a throwaway PostgreSQL behind pamwire, ready to try in a minute.

It starts a disposable cluster with a sample schema, writes a configuration into the
demo folder, creates the person `demo`, serves until Ctrl+C, then stops everything.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from pamwire.config import load_config
from pamwire.pgcluster import (
    PostgresCluster,
    demo_schema_path,
    ensure_postgres_installed,
    free_port,
)
from pamwire.users import UserStore

log = logging.getLogger("pamwire.demo")

DEMO_PERSON = "demo"
DEMO_PASSWORD = "demo"
DEMO_TARGET = "demo"
DB_ACCOUNT = "pamwire_demo"

_CONFIG = """\
# pamwire demo configuration, written by `pamwire demo`.
# The database name a client asks for picks the target.

[[listener]]
protocol = "postgres"
host = "127.0.0.1"
port = {port}

[target.demo]
protocol = "postgres"
host = "127.0.0.1"
port = {pg_port}
database = "demo"
credential.user = "{account}"
credential.password_file = "secrets/demo-db.password"

[audit]
path = "audit.db"

[users]
path = "users.db"

[rules]
files = ["pack:baseline"]
"""

_WELCOME = """
pamwire demo is running.

  Connect (password: {password}):
    psql "host=127.0.0.1 port={port} dbname={target} user={person}"

  Things to try:
    SELECT name, country FROM customers ORDER BY id LIMIT 5;     -- a read
    UPDATE orders SET status = 'shipped' WHERE id = 1;            -- a scoped write
    DELETE FROM customers;                                        -- refused by a rule

  See the audit trail:
    {pamwire} log search --config {config}
    {pamwire} log search --config {config} --verdict deny --format json

Press Ctrl+C to stop (the demo database is thrown away).
"""


def run_demo(folder: Path, *, port: int = 6432) -> int:
    """Set up, serve until interrupted, tear down. Returns the exit code."""
    ensure_postgres_installed()
    folder = folder.resolve()
    (folder / "secrets").mkdir(parents=True, exist_ok=True)
    os.chmod(folder / "secrets", 0o700)

    db_password = secrets.token_urlsafe(24)
    secret_file = folder / "secrets" / "demo-db.password"
    secret_file.touch(mode=0o600)
    secret_file.write_text(db_password + "\n", encoding="utf-8")

    cluster_dir = Path(tempfile.mkdtemp(prefix="pamwire-demo-pg-"))
    pg_port = free_port()
    cluster = PostgresCluster(
        cluster_dir, port=pg_port, superuser_password=secrets.token_urlsafe(24)
    )
    try:
        print(f"starting a throwaway PostgreSQL on 127.0.0.1:{pg_port} ...", flush=True)
        cluster.init()
        cluster.start()
        cluster.create_role(DB_ACCOUNT, db_password)
        cluster.create_database("demo", owner=DB_ACCOUNT)
        cluster.run_sql_file(demo_schema_path(), database="demo")
        cluster.psql(
            f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {DB_ACCOUNT}; "
            f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {DB_ACCOUNT};",
            database="demo",
        )

        config_path = folder / "pamwire.toml"
        config_path.write_text(
            _CONFIG.format(port=port, pg_port=pg_port, account=DB_ACCOUNT),
            encoding="utf-8",
        )
        config = load_config(config_path)
        users = UserStore(config.resolve(config.users.path))
        try:
            if users.get(DEMO_PERSON) is None:
                users.add(DEMO_PERSON, DEMO_PASSWORD)
            else:
                users.set_password(DEMO_PERSON, DEMO_PASSWORD)
        finally:
            users.close()

        welcome = _WELCOME.format(
            password=DEMO_PASSWORD,
            port=port,
            target=DEMO_TARGET,
            person=DEMO_PERSON,
            config=_shown(config_path),
            pamwire=_pamwire_command(),
        )
        from pamwire.server.app import run

        try:
            # The welcome is printed only once pamwire listens, so a busy port
            # never shows instructions that would reach someone else's server.
            run(config, on_ready=lambda _: print(welcome, flush=True))
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(cluster_dir, ignore_errors=True)
    print("demo stopped; the audit trail stays in", _shown(folder / "audit.db"))
    return 0


def _pamwire_command() -> str:
    """How to run pamwire from this shell: `pamwire` if it is on PATH, else its path."""
    found = shutil.which("pamwire")
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    if found and (script is None or Path(found).resolve() == script):
        return "pamwire"
    if script is not None and script.name == "pamwire":
        return _shown(script)
    return f"{_shown(Path(sys.executable))} -m pamwire"


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder if inside."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)

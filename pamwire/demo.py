"""`pamwire demo`: a throwaway PostgreSQL behind pamwire, ready to try in a minute.

It starts a disposable cluster with a sample schema, writes a configuration into the
demo folder, creates the persons `demo` and `approver`, has the approver approve a
grant for `demo` (so her sessions log in as a freshly minted account), serves until
Ctrl+C, then stops everything.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from pamwire.config import Config, load_config
from pamwire.grants.service import GrantService
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
APPROVER = "approver"
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

[target.demo.grants]
roles = {{ "read-only" = "demo_ro", "read-write" = "demo_rw" }}
approvers = ["{approver}"]
max_duration = "8h"
default_duration = "8h"
reason_required = true
admin.user = "postgres"
admin.password_file = "secrets/admin.password"

[grants]
path = "grants.db"
key_file = "secrets/grants.key"

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

  Your session logs in upstream as an account minted for grant {grant_id}
  (approved by "{approver}"); nobody holds its password.

  Things to try:
    SELECT current_user;                                          -- the minted account
    SELECT name, country FROM customers ORDER BY id LIMIT 5;     -- a read
    UPDATE orders SET status = 'shipped' WHERE id = 1;            -- a scoped write
    DELETE FROM customers;                                        -- refused by a rule

  See the grant, and the audit trail:
    {pamwire} grant list --config {config}
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

    # Grants of an earlier demo name accounts of a database that is gone.
    for stale in folder.glob("grants.db*"):
        stale.unlink()

    db_password = secrets.token_urlsafe(24)
    secret_file = folder / "secrets" / "demo-db.password"
    secret_file.touch(mode=0o600)
    secret_file.write_text(db_password + "\n", encoding="utf-8")

    cluster_dir = Path(tempfile.mkdtemp(prefix="pamwire-demo-pg-"))
    pg_port = free_port()
    admin_password = secrets.token_urlsafe(24)
    admin_file = folder / "secrets" / "admin.password"
    admin_file.touch(mode=0o600)
    admin_file.write_text(admin_password + "\n", encoding="utf-8")
    cluster = PostgresCluster(
        cluster_dir, port=pg_port, superuser_password=admin_password
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
            f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {DB_ACCOUNT}; "
            # The database roles grants inherit: minted accounts join one of them.
            "CREATE ROLE demo_ro NOLOGIN; CREATE ROLE demo_rw NOLOGIN; "
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO demo_ro, demo_rw; "
            "GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO demo_rw; "
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO demo_rw;",
            database="demo",
        )

        config_path = folder / "pamwire.toml"
        config_path.write_text(
            _CONFIG.format(
                port=port, pg_port=pg_port, account=DB_ACCOUNT, approver=APPROVER
            ),
            encoding="utf-8",
        )
        config = load_config(config_path)
        users = UserStore(config.resolve(config.users.path))
        try:
            for person in (DEMO_PERSON, APPROVER):
                password = DEMO_PASSWORD if person == DEMO_PERSON else None
                _ensure_person(users, person, password or secrets.token_urlsafe(16))
        finally:
            users.close()
        grant_id = _approved_grant(config)

        welcome = _WELCOME.format(
            password=DEMO_PASSWORD,
            port=port,
            target=DEMO_TARGET,
            person=DEMO_PERSON,
            config=_shown(config_path),
            pamwire=_pamwire_command(),
            grant_id=grant_id,
            approver=APPROVER,
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


def _ensure_person(users: UserStore, name: str, password: str) -> None:
    if users.get(name) is None:
        users.add(name, password)
    else:
        users.set_password(name, password)


def _approved_grant(config: Config) -> int:
    """Request a grant for the demo person and have the approver approve it."""
    assert config.grants is not None
    service = GrantService(config, config.grants)
    try:
        grant = service.request(
            DEMO_PERSON, DEMO_TARGET, "read-write", None, "trying pamwire's demo"
        )
        service.approve(grant.id, APPROVER)
        return grant.id
    finally:
        service.close()


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

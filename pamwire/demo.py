"""`pamwire demo`: throwaway databases behind pamwire, ready to try in a minute.

It starts a disposable PostgreSQL and a disposable MariaDB with the same sample
schema, writes a configuration (target `demo` on both listeners) into the demo
folder, creates the persons `demo` and `approver`, has the approver approve grants
for `demo` (so her sessions log in as freshly minted accounts), serves until Ctrl+C,
then stops everything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pamwire.config import Config, load_config
from pamwire.errors import PamwireError
from pamwire.grants.service import GrantService
from pamwire.localserver import free_port
from pamwire.mariadbcluster import (
    QUICK_SETTINGS,
    MariaDBServer,
    ensure_mariadb_installed,
)
from pamwire.pgcluster import (
    PostgresCluster,
    demo_schema_path,
    ensure_postgres_installed,
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

_MARIADB_CONFIG = """
[[listener]]
protocol = "mysql"
host = "127.0.0.1"
port = {port}

[target.demo-mariadb]
protocol = "mysql"
alias = "demo"
host = "127.0.0.1"
port = {db_port}
database = "demo"
credential.user = "{account}"
credential.password_file = "secrets/demo-db.password"

[target.demo-mariadb.grants]
roles = {{ "read-only" = "demo_ro", "read-write" = "demo_rw" }}
approvers = ["{approver}"]
max_duration = "8h"
default_duration = "8h"
reason_required = true
admin.user = "root"
admin.password_file = "secrets/admin.password"
"""

_MARIADB_WELCOME = """
  The same with MariaDB (password: demo):
    mariadb -h 127.0.0.1 -P {port} -u demo -pdemo demo
"""

_WELCOME = """
pamwire demo is running.

  Connect (password: {password}):
    psql "host=127.0.0.1 port={port} dbname={target} user={person}"

  Your sessions log in upstream as accounts minted for grants {grant_id}
  (approved by "{approver}"); nobody holds their passwords.

  Things to try:
    SELECT current_user;                                          -- the minted account
    SELECT name, country FROM customers ORDER BY id LIMIT 5;     -- a read
    UPDATE orders SET status = 'shipped' WHERE id = 1;            -- a scoped write
    DELETE FROM customers;                                        -- refused by a rule
{mariadb}
  See the grants, the audit trail and the recorded sessions:
    {pamwire} grant list --config {config}
    {pamwire} log search --config {config}
    {pamwire} log search --config {config} --verdict deny --format json
    {pamwire} session list --config {config}
    {pamwire} session replay SESSION --config {config}

Press Ctrl+C to stop (the demo database is thrown away).
"""


def run_demo(
    folder: Path, *, port: int = 6432, mysql_port: int = 3307, mariadb: bool = True
) -> int:
    """Set up, serve until interrupted, tear down. Returns the exit code."""
    ensure_postgres_installed()
    if mariadb:
        ensure_mariadb_installed()
    folder = folder.resolve()
    _refuse_if_running(folder)
    (folder / "secrets").mkdir(parents=True, exist_ok=True)
    os.chmod(folder / "secrets", 0o700)
    # Grants of an earlier demo name accounts of databases that are gone, and its
    # trail names grant ids the new grants file starts again: both go aside.
    for stale in folder.glob("grants.db*"):
        stale.unlink()
    _archive_trail(folder)
    db_password = _secret(folder, "demo-db.password")
    admin_password = _secret(folder, "admin.password")

    with contextlib.ExitStack() as stack:
        pg_port = _start_postgres(stack, admin_password, db_password)
        maria_port = (
            _start_mariadb(stack, admin_password, db_password) if mariadb else 0
        )
        config_path = folder / "pamwire.toml"
        text = _CONFIG.format(
            port=port, pg_port=pg_port, account=DB_ACCOUNT, approver=APPROVER
        )
        if mariadb:
            text += _MARIADB_CONFIG.format(
                port=mysql_port,
                db_port=maria_port,
                account=DB_ACCOUNT,
                approver=APPROVER,
            )
        config_path.write_text(text, encoding="utf-8")
        config = load_config(config_path)
        users = UserStore(config.resolve(config.users.path))
        try:
            _ensure_person(users, DEMO_PERSON, DEMO_PASSWORD)
            _ensure_person(users, APPROVER, secrets.token_urlsafe(16))
        finally:
            users.close()
        grants = [_approved_grant(config, name) for name in config.targets]

        welcome = _WELCOME.format(
            password=DEMO_PASSWORD,
            port=port,
            target=DEMO_TARGET,
            person=DEMO_PERSON,
            config=_shown(config_path),
            pamwire=_pamwire_command(),
            grant_id=", ".join(str(g) for g in grants),
            approver=APPROVER,
            mariadb=_MARIADB_WELCOME.format(port=mysql_port) if mariadb else "",
        )
        from pamwire.server.app import run

        try:
            # The welcome is printed only once pamwire listens, so a busy port
            # never shows instructions that would reach someone else's server.
            run(config, on_ready=lambda _: print(welcome, flush=True))
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
    print("demo stopped; the audit trail stays in", _shown(folder / "audit.db"))
    return 0


def _archive_trail(folder: Path) -> None:
    """Move an earlier demo's audit trail (store, head, journal) to earlier-runs/."""
    files = sorted(folder.glob("audit.db*"))
    if not any(f.name == "audit.db" for f in files):
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = folder / "earlier-runs" / stamp
    aside.mkdir(parents=True, exist_ok=True)
    for path in files:
        if path.name != "audit.db.lock":
            path.rename(aside / path.name)
    print(f"the previous demo's audit trail is now in {_shown(aside)}", flush=True)


def _refuse_if_running(folder: Path) -> None:
    """A demo already running in this folder must keep its files."""
    from pamwire.server.app import lock_store

    store = folder / "audit.db"
    if not store.exists():
        return
    try:
        fd = lock_store(store)
    except PamwireError:
        raise PamwireError(
            f"a pamwire demo is already running in {_shown(folder)}; "
            "stop it first or use --dir for another folder"
        ) from None
    os.close(fd)


def _secret(folder: Path, name: str) -> str:
    """A new random secret in the demo's secrets folder (mode 0600)."""
    value = secrets.token_urlsafe(24)
    path = folder / "secrets" / name
    path.touch(mode=0o600)
    path.write_text(value + "\n", encoding="utf-8")
    return value


def _start_postgres(
    stack: contextlib.ExitStack, admin_password: str, db_password: str
) -> int:
    """A throwaway PostgreSQL with the sample schema; stopped when the stack ends."""
    cluster_dir = Path(tempfile.mkdtemp(prefix="pamwire-demo-pg-"))
    stack.callback(shutil.rmtree, cluster_dir, ignore_errors=True)
    cluster = PostgresCluster(
        cluster_dir, port=free_port(), superuser_password=admin_password
    )
    stack.callback(cluster.stop)
    print(
        f"starting a throwaway PostgreSQL on 127.0.0.1:{cluster.port} ...", flush=True
    )
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
    return cluster.port


def _start_mariadb(
    stack: contextlib.ExitStack, admin_password: str, db_password: str
) -> int:
    """A throwaway MariaDB with the same sample schema; stopped when the stack ends."""
    base_dir = Path(tempfile.mkdtemp(prefix="pamwire-demo-mariadb-"))
    stack.callback(shutil.rmtree, base_dir, ignore_errors=True)
    # The event scheduler on, so that each minted account also gets the server's
    # own lock at its grant's end (the second lock).
    server = MariaDBServer(
        base_dir,
        port=free_port(),
        root_password=admin_password,
        settings={**QUICK_SETTINGS, "event-scheduler": "ON"},
    )
    stack.callback(server.stop)
    print(f"starting a throwaway MariaDB on 127.0.0.1:{server.port} ...", flush=True)
    server.init()
    server.start()
    server.create_database("demo")
    server.run_sql_file(demo_mysql_schema_path(), database="demo")
    server.create_user(DB_ACCOUNT, db_password)
    server.sql(
        f"GRANT ALL ON demo.* TO {DB_ACCOUNT}@'127.0.0.1'; "
        "CREATE ROLE demo_ro; CREATE ROLE demo_rw; "
        "GRANT SELECT ON demo.* TO demo_ro; "
        "GRANT SELECT, INSERT, UPDATE, DELETE ON demo.* TO demo_rw;"
    )
    return server.port


def demo_mysql_schema_path() -> Path:
    """The MariaDB/MySQL version of the sample schema, shipped as package data."""
    return demo_schema_path().with_name("demo-schema-mysql.sql")


def _ensure_person(users: UserStore, name: str, password: str) -> None:
    if users.get(name) is None:
        users.add(name, password)
    else:
        users.set_password(name, password)


def _approved_grant(config: Config, target: str) -> int:
    """Request a grant for the demo person and have the approver approve it."""
    assert config.grants is not None
    service = GrantService(config, config.grants)
    try:
        grant = service.request(
            DEMO_PERSON, target, "read-write", None, "trying pamwire's demo"
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

"""pgbench -S through pamwire beside a direct connection, pgbouncer and a trio relay.

Theory of operation: one throwaway PostgreSQL 15 serves four setups on 127.0.0.1
(direct, pgbouncer in session mode, the byte relay of trio_relay.py, and pamwire
with its rules and audit trail on). Each round runs every query mode against every
setup, one after the other, with the setup order rotated per round, so drift on a
shared machine hits all setups alike. Results are reported as ratios of mean TPS and
as microseconds added per round trip at one client, and checked against the
product's bars. Every process and folder is cleaned up, also on Ctrl+C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import pwd
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from pamwire.localserver import free_port
from pamwire.pgcluster import PostgresCluster

log = logging.getLogger("pamwire.bench")

HOST = "127.0.0.1"
MODES = ("simple", "extended", "prepared")

DB_NAME = "bench"
DB_ROLE = "bench"
PERSON = "bench_person"
TARGET = "bench"

# The product's bars (docs: product brief, "Bars").
BAR_VS_RELAY = 1.0
BAR_VS_PGBOUNCER = 0.6
BAR_ADDED_US = 80.0

# Durability is irrelevant to a read-only benchmark on a throwaway cluster; these
# keep pgbench -i fast and say nothing about the -S numbers.
PG_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

# Bounds that only keep a wedged process from hanging the benchmark.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PGBENCH_SLACK = 60.0

_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)$", re.M)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms$", re.M)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)

_PAMWIRE_CONFIG = """\
# written by benchmarks/pgbench_ratio.py
[[listener]]
protocol = "postgres"
host = "127.0.0.1"
port = {port}

[target.{target}]
protocol = "postgres"
host = "127.0.0.1"
port = {pg_port}
database = "{database}"
credential.user = "{role}"
credential.password_file = "secret.pw"

[audit]
path = "audit.db"

[users]
path = "users.db"

[rules]
files = ["pack:baseline"]
"""

_PGBOUNCER_INI = """\
;; written by benchmarks/pgbench_ratio.py
[databases]
{database} = host=127.0.0.1 port={pg_port} dbname={database} user={role}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {folder}/userlist.txt
pool_mode = session
max_client_conn = 100
default_pool_size = {pool_size}
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""


T = TypeVar("T")


class BenchError(Exception):
    """A setup failed to start or a pgbench run failed; the message says which."""


@dataclass(frozen=True)
class Endpoint:
    """Where pgbench connects for one setup, and as whom."""

    name: str
    port: int
    user: str
    password: str
    database: str
    log_path: Path | None = None
    audit_path: Path | None = None


@dataclass(frozen=True)
class Run:
    """What one pgbench run reported."""

    tps: float
    latency_ms: float
    transactions: int


# -- processes --------------------------------------------------------------------


def _interrupt_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt, so cleanup always runs.

    SIGINT is set explicitly because a shell starts background jobs with it ignored,
    and the servers started from here would inherit that and ignore it too.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, handler)


def _tail(path: Path | None, lines: int = 20) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return f"--- tail of {path} ---\n" + "\n".join(text.splitlines()[-lines:])


def _stop_process(name: str, proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop within %ss; killing it", name, STOP_TIMEOUT)
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def _signal_pid_file(pid_file: Path, sig: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text().strip()), sig)


def start_process(
    stack: contextlib.ExitStack,
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    stop_signal: int = signal.SIGTERM,
    cwd: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv in its own session (Ctrl+C reaches only us) and stop it on exit."""
    log_file = stack.enter_context(log_path.open("wb"))
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=cwd,
    )
    stack.callback(_stop_process, name, proc, stop_signal)
    return proc


def wait_for_port(
    name: str, port: int, proc: subprocess.Popen[bytes], logp: Path
) -> None:
    """Wait until something accepts TCP connections on port; fail if proc exits."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with code {proc.returncode}\n{_tail(logp)}"
            )
        with contextlib.suppress(OSError):
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        time.sleep(0.1)
    raise BenchError(f"{name} did not listen on port {port}\n{_tail(logp)}")


def temp_folder(stack: contextlib.ExitStack, prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _give_to_postgres(path: Path) -> None:
    entry = pwd.getpwnam("postgres")
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _clean_env(password: str) -> dict[str, str]:
    # Drop the caller's PG* variables so nothing points pgbench elsewhere; TLS off
    # everywhere so every setup does the same work.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        PGPASSWORD=password,
        PGCONNECT_TIMEOUT="10",
        PGSSLMODE="disable",
        PGGSSENCMODE="disable",
    )
    return env


# -- the setups -------------------------------------------------------------------


def start_postgres(stack: contextlib.ExitStack, password: str) -> PostgresCluster:
    cluster = PostgresCluster(
        temp_folder(stack, "pamwire-bench-pg-"),
        port=free_port(),
        superuser_password=secrets.token_urlsafe(24),
        settings=PG_SETTINGS,
    )
    stack.callback(cluster.stop)
    cluster.init()
    cluster.start()
    cluster.create_role(DB_ROLE, password)
    cluster.create_database(DB_NAME, owner=DB_ROLE)
    log.info("postgresql on port %s; running pgbench -i -s 1", cluster.port)
    argv = ["pgbench", "-i", "-s", "1", "-q", "-h", HOST, "-p", str(cluster.port)]
    argv += ["-U", DB_ROLE, DB_NAME]
    result = subprocess.run(
        argv,
        env=_clean_env(password),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(f"pgbench -i failed:\n{result.stderr.strip()}")
    return cluster


def start_pamwire(
    stack: contextlib.ExitStack, pg_port: int, db_password: str
) -> Endpoint:
    folder = temp_folder(stack, "pamwire-bench-pw-")
    secret = folder / "secret.pw"
    secret.touch(mode=0o600)
    secret.write_text(db_password + "\n", encoding="utf-8")
    port = free_port()
    config = folder / "pamwire.toml"
    config.write_text(
        _PAMWIRE_CONFIG.format(
            port=port, pg_port=pg_port, database=DB_NAME, role=DB_ROLE, target=TARGET
        ),
        encoding="utf-8",
    )

    person_password, logp, _ = serve_pamwire(stack, config, port)
    return Endpoint(
        "pamwire", port, PERSON, person_password, TARGET, logp, folder / "audit.db"
    )


def serve_pamwire(
    stack: contextlib.ExitStack, config: Path, port: int
) -> tuple[str, Path, subprocess.Popen[bytes]]:
    """Add the benchmark's person to the configuration in config and run `pamwire
    serve` on it until the stack closes; returns her password, the log file and
    the process."""
    person_password = secrets.token_urlsafe(18)
    cli = [sys.executable, "-m", "pamwire.cli"]
    added = subprocess.run(
        [*cli, "user", "add", PERSON, "--password-stdin", "--config", str(config)],
        input=person_password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if added.returncode != 0:
        raise BenchError(f"pamwire user add failed:\n{added.stderr.strip()}")

    logp = config.parent / "pamwire.log"
    proc = start_process(
        stack,
        "pamwire",
        [*cli, "serve", "--config", str(config)],
        logp,
        stop_signal=signal.SIGINT,
    )
    wait_for_port("pamwire", port, proc, logp)
    log.info("pamwire on port %s (rules pack:baseline, audit trail on)", port)
    return person_password, logp, proc


def start_relay(stack: contextlib.ExitStack, pg_port: int, password: str) -> Endpoint:
    folder = temp_folder(stack, "pamwire-bench-relay-")
    port = free_port()
    logp = folder / "relay.log"
    relay = Path(__file__).with_name("trio_relay.py")
    argv = [sys.executable, str(relay), "--listen-port", str(port)]
    proc = start_process(
        stack,
        "trio relay",
        [*argv, "--target-port", str(pg_port)],
        logp,
        stop_signal=signal.SIGINT,
    )
    wait_for_port("trio relay", port, proc, logp)
    log.info("trio relay on port %s", port)
    return Endpoint("relay", port, DB_ROLE, password, DB_NAME, logp)


def start_pgbouncer(
    stack: contextlib.ExitStack, pg_port: int, password: str, clients: int
) -> Endpoint:
    binary = shutil.which("pgbouncer") or ensure_pgbouncer()
    folder = temp_folder(stack, "pamwire-bench-pgb-")
    _give_to_postgres(folder)
    port = free_port()
    ini = folder / "pgbouncer.ini"
    userlist = folder / "userlist.txt"
    ini.write_text(
        _PGBOUNCER_INI.format(
            database=DB_NAME,
            pg_port=pg_port,
            role=DB_ROLE,
            port=port,
            folder=folder,
            pool_size=clients + 2,
        ),
        encoding="utf-8",
    )
    # A plain password in the userlist lets pgbouncer run SCRAM on both legs.
    userlist.write_text(f'"{DB_ROLE}" "{password}"\n', encoding="utf-8")
    for path in (ini, userlist):
        path.chmod(0o600)
        _give_to_postgres(path)

    logp = folder / "pgbouncer.log"
    # pgbouncer refuses root; run it in the foreground as postgres so we own its
    # lifetime. SIGTERM to pgbouncer itself (its pid file) makes it exit at once and
    # lets runuser reap it; runuser would forward a SIGTERM too, but leave a zombie.
    proc = start_process(
        stack,
        "pgbouncer",
        ["runuser", "-u", "postgres", "--", binary, str(ini)],
        folder / "stdout.log",
        cwd="/tmp",
    )
    stack.callback(_signal_pid_file, folder / "pgbouncer.pid", signal.SIGTERM)
    wait_for_port("pgbouncer", port, proc, logp)
    log.info("pgbouncer on port %s (session pool mode)", port)
    return Endpoint("pgbouncer", port, DB_ROLE, password, DB_NAME, logp)


def ensure_pgbouncer() -> str:
    """Install Debian's pgbouncer package when it is missing (needs root)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError("pgbouncer is not installed; install it or --skip-pgbouncer")
    print("pgbouncer is missing: installing it with apt-get", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "pgbouncer"]):
        subprocess.run(argv, env=env, check=True, timeout=900)
    binary = shutil.which("pgbouncer")
    if binary is None:
        raise BenchError("installed pgbouncer but it is not on PATH")
    return binary


# -- pgbench ----------------------------------------------------------------------


def pgbench(
    endpoint: Endpoint, *, mode: str, clients: int, threads: int, duration: int
) -> Run:
    """Run pgbench -S once; raises BenchError on any error or failed transaction."""
    argv = ["pgbench", "-h", HOST, "-p", str(endpoint.port), "-U", endpoint.user]
    argv += ["-S", "-n", "-c", str(clients), "-j", str(threads), "-T", str(duration)]
    argv += ["-M", mode, endpoint.database]
    try:
        result = subprocess.run(
            argv,
            env=_clean_env(endpoint.password),
            capture_output=True,
            text=True,
            timeout=duration + PGBENCH_SLACK,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(argv)} timed out") from exc

    out, err = result.stdout, result.stderr
    tps = _TPS.search(out)
    latency = _LATENCY.search(out)
    processed = _PROCESSED.search(out)
    failed = _FAILED.search(out)
    problems = []
    if result.returncode != 0:
        problems.append(f"exit code {result.returncode}")
    if failed is None or int(failed.group(1)) != 0:
        problems.append("failed transactions" if failed else "no failure count")
    if processed is None or int(processed.group(1)) == 0:
        problems.append("no transactions processed")
    if tps is None or latency is None:
        problems.append("no tps or latency line")
    if re.search(r"error|fatal|abort", err, re.I):
        problems.append("errors on stderr")
    if problems or tps is None or latency is None or processed is None:
        raise BenchError(
            f"pgbench against {endpoint.name} ({mode}): {', '.join(problems)}\n"
            f"$ {' '.join(argv)}\n{out.strip()}\n{err.strip()}\n"
            f"{_tail(endpoint.log_path)}"
        )
    return Run(float(tps.group(1)), float(latency.group(1)), int(processed.group(1)))


def rotated(items: Sequence[T], by: int) -> list[T]:
    by %= len(items)
    return [*items[by:], *items[:by]]


def measure(
    endpoints: Sequence[Endpoint], args: argparse.Namespace
) -> dict[str, dict[str, dict[str, list[Run]]]]:
    """Run all rounds: results[kind][mode][setup] -> runs.

    kind is throughput (-c clients), one_client (-c 1) or warmup (not reported).
    """
    results: dict[str, dict[str, dict[str, list[Run]]]] = {
        kind: {mode: {e.name: [] for e in endpoints} for mode in args.modes}
        for kind in ("throughput", "one_client", "warmup")
    }
    if args.warmup > 0:
        for endpoint in endpoints:
            log.info("warm-up: %s", endpoint.name)
            results["warmup"][args.modes[0]][endpoint.name].append(
                pgbench(
                    endpoint,
                    mode=args.modes[0],
                    clients=args.clients,
                    threads=min(2, args.clients),
                    duration=args.warmup,
                )
            )

    for round_no in range(args.rounds):
        for mode in args.modes:
            for endpoint in rotated(endpoints, round_no):
                for kind, clients in (("throughput", args.clients), ("one_client", 1)):
                    run = pgbench(
                        endpoint,
                        mode=mode,
                        clients=clients,
                        threads=min(2, clients),
                        duration=args.duration,
                    )
                    results[kind][mode][endpoint.name].append(run)
                    log.info(
                        "round %d/%d %-8s %-9s c=%-2d %9.0f tps %7.3f ms",
                        round_no + 1,
                        args.rounds,
                        mode,
                        endpoint.name,
                        clients,
                        run.tps,
                        run.latency_ms,
                    )
    return results


def audit_counts(audit_path: Path | None) -> dict[str, int]:
    """Count pamwire's statement events by verdict (a check that auditing ran)."""
    if audit_path is None:
        return {}
    # The trail reaches SQLite in groups; give the last group time to land.
    time.sleep(0.5)
    uri = f"file:{audit_path}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            rows = db.execute(
                "SELECT coalesce(verdict, '-'), count(*) FROM events"
                " WHERE kind = 'statement' GROUP BY 1"
            ).fetchall()
    except sqlite3.Error as exc:
        raise BenchError(f"cannot read {audit_path}: {exc}") from exc
    return {str(verdict): int(count) for verdict, count in rows}


# -- report -----------------------------------------------------------------------


def summarise(
    results: dict[str, dict[str, dict[str, list[Run]]]], setups: Sequence[str]
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for mode, per_setup in results["throughput"].items():
        tps = {s: statistics.fmean(r.tps for r in per_setup[s]) for s in setups}
        latency = {
            s: statistics.fmean(r.latency_ms for r in results["one_client"][mode][s])
            for s in setups
        }
        entry: dict[str, Any] = {
            "tps": tps,
            "tps_runs": {s: [r.tps for r in per_setup[s]] for s in setups},
            "one_client_latency_ms": latency,
            "ratios": {},
            "added_us": {},
        }
        if "pamwire" in setups:
            for other in setups:
                if other != "pamwire":
                    entry["ratios"][f"pamwire/{other}"] = tps["pamwire"] / tps[other]
        for s in setups:
            if s != "direct":
                entry["added_us"][s] = (latency[s] - latency["direct"]) * 1000.0
        summary[mode] = entry
    return summary


def bars(summary: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for mode, entry in summary.items():
        ratios, added = entry["ratios"], entry["added_us"]
        if "pamwire/relay" in ratios:
            checks.append(
                (mode, "pamwire >= 1.0x trio relay", ratios["pamwire/relay"], "x")
            )
        if "pamwire/pgbouncer" in ratios:
            checks.append(
                (mode, "pamwire >= 0.6x pgbouncer", ratios["pamwire/pgbouncer"], "x")
            )
        if "pamwire" in added:
            checks.append((mode, "pamwire adds <= 80 us", added["pamwire"], "us"))
    out = []
    for mode, name, value, unit in checks:
        if unit == "x":
            ok = value >= (BAR_VS_RELAY if "relay" in name else BAR_VS_PGBOUNCER)
        else:
            ok = value <= BAR_ADDED_US
        out.append(
            {"mode": mode, "bar": name, "value": value, "unit": unit, "pass": ok}
        )
    return out


def markdown(summary: dict[str, Any], setups: Sequence[str], clients: int) -> str:
    lines = [f"Mean TPS, pgbench -S -c {clients} -j 2:", ""]
    ratio_names = [f"pamwire/{s}" for s in setups if s != "pamwire"]
    if "pamwire" not in setups:
        ratio_names = []
    header = ["mode", *setups, *ratio_names]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for mode, entry in summary.items():
        cells = [mode]
        cells += [f"{entry['tps'][s]:,.0f}" for s in setups]
        cells += [f"{entry['ratios'][r]:.2f}" for r in ratio_names]
        lines.append("| " + " | ".join(cells) + " |")

    others = [s for s in setups if s != "direct"]
    lines += [
        "",
        "One client (-c 1 -j 1): average latency, and µs added vs direct:",
        "",
    ]
    header = ["mode", "direct ms", *(f"{s} +µs" for s in others)]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for mode, entry in summary.items():
        cells = [mode, f"{entry['one_client_latency_ms']['direct']:.3f}"]
        cells += [f"{entry['added_us'][s]:+.0f}" for s in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name, argv in {
        "pgbench": ["pgbench", "--version"],
        "pgbouncer": ["pgbouncer", "--version"],
    }.items():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            versions[name] = out.stdout.splitlines()[0] if out.stdout else ""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


# -- main -------------------------------------------------------------------------


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    for mode in modes:
        if mode not in MODES:
            raise argparse.ArgumentTypeError(
                f"unknown mode {mode!r}; expected {', '.join(MODES)}"
            )
    if not modes:
        raise argparse.ArgumentTypeError("no mode given")
    return modes


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="pgbench -S through pamwire beside direct, pgbouncer and a "
        "bare trio relay, interleaved per round; prints ratios and the bars."
    )
    parser.add_argument("--duration", type=_positive, default=10, help="s per run")
    parser.add_argument("--rounds", type=_positive, default=3)
    parser.add_argument("--clients", type=_positive, default=8)
    parser.add_argument("--modes", type=_modes, default=list(MODES))
    parser.add_argument("--warmup", type=int, default=2, help="s per setup, 0: none")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--skip-pgbouncer", action="store_true")
    parser.add_argument(
        "--skip-pamwire",
        action="store_true",
        help="measure only the reference setups (to check the harness)",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def setups(args: argparse.Namespace) -> Iterator[list[Endpoint]]:
    """Start every setup; stop them all (and remove their folders) on exit."""
    with contextlib.ExitStack() as stack:
        password = secrets.token_urlsafe(18)
        cluster = start_postgres(stack, password)
        endpoints = [Endpoint("direct", cluster.port, DB_ROLE, password, DB_NAME)]
        if not args.skip_pgbouncer:
            endpoints.append(
                start_pgbouncer(stack, cluster.port, password, args.clients)
            )
        endpoints.append(start_relay(stack, cluster.port, password))
        if not args.skip_pamwire:
            endpoints.append(start_pamwire(stack, cluster.port, password))
        yield endpoints


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr
    )
    _interrupt_on_signals()
    if os.geteuid() != 0:
        print("pgbench_ratio: run as root (servers run as the postgres user)")
        return 2
    started = datetime.datetime.now(datetime.UTC)
    try:
        with setups(args) as endpoints:
            results = measure(endpoints, args)
            audit = {
                e.name: audit_counts(e.audit_path) for e in endpoints if e.audit_path
            }
    except BenchError as exc:
        print(f"pgbench_ratio: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pgbench_ratio: interrupted; everything stopped", file=sys.stderr)
        return 130

    names = [e.name for e in endpoints]
    summary = summarise(results, names)
    checks = bars(summary)
    print(markdown(summary, names, args.clients))
    print()
    for name, counts in audit.items():
        ran = sum(
            run.transactions
            for by_mode in results.values()
            for run in (r for runs in by_mode.values() for r in runs[name])
        )
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"
        print(
            f"{name} audit trail: statement events by verdict {shown}; "
            f"pgbench transactions through {name}: {ran}"
        )
    print()
    for check in checks:
        verdict = "PASS" if check["pass"] else "MISS"
        value = f"{check['value']:.2f}{check['unit']}"
        print(f"{verdict}  {check['mode']:<8} {check['bar']}: {value}")

    if args.json is not None:
        report = {
            "date": started.isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "machine": machine(),
            "settings": {
                "duration": args.duration,
                "rounds": args.rounds,
                "clients": args.clients,
                "modes": args.modes,
                "postgres": PG_SETTINGS,
            },
            "summary": summary,
            "bars": checks,
            "audit_statement_events": audit,
            "runs": {
                kind: {
                    mode: {s: [vars(r) for r in runs] for s, runs in per.items()}
                    for mode, per in by_mode.items()
                }
                for kind, by_mode in results.items()
            },
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Bootstrap pamwire's development environment on Debian and run one job.
#
#   ./dev.sh demo    the demo: throwaway PostgreSQL and MariaDB behind pamwire
#   ./dev.sh test    the whole test suite (lint, type check, unit and integration tests)
#   ./dev.sh lint    ruff format --check, ruff check, mypy --strict
#   ./dev.sh bench   the benchmarks in benchmarks/
#   ./dev.sh bench-mysql   sysbench through pamwire's MySQL listener
#
# Everything Python goes into ./.venv; missing Debian packages are installed with
# apt-get when running as root (PostgreSQL, MariaDB, Chromium for the evidence
# report test; pgbouncer and sysbench for benchmarks).
set -euo pipefail
cd "$(dirname "$0")"

log() { printf 'dev.sh: %s\n' "$*" >&2; }

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        log "missing Debian packages: $*; install them (as root: apt-get install $*)"
        exit 1
    fi
    log "installing Debian packages: $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_python() {
    if ! python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
        apt_install python3 python3-venv python3-pip
    fi
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt_install python3-venv
    fi
}

ensure_venv() {
    ensure_python
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv"
        python3 -m venv .venv || { apt_install python3-venv; python3 -m venv .venv; }
    fi
    if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
        log "installing pamwire and its test tools into .venv"
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[test,lint]'
        touch .venv/.installed
    fi
}

pg_bindir() {
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

ensure_servers() {
    local missing=()
    pg_bindir >/dev/null || missing+=(postgresql)
    command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
    command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-contrib)
    command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
    command -v mariadb >/dev/null 2>&1 || missing+=(mariadb-client)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # evidence report render
    if [ ${#missing[@]} -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

lint() {
    .venv/bin/ruff format --check pamwire tests benchmarks
    .venv/bin/ruff check pamwire tests benchmarks
    .venv/bin/mypy --strict pamwire
}

job=${1:-}
[ $# -gt 0 ] && shift
case "$job" in
    demo)
        ensure_venv
        exec .venv/bin/pamwire demo "$@"
        ;;
    test)
        ensure_venv
        ensure_servers
        lint
        PAMWIRE_REQUIRE_SERVERS=1 exec .venv/bin/pytest -q "$@"
        ;;
    lint)
        ensure_venv
        lint
        ;;
    bench)
        ensure_venv
        ensure_servers
        exec .venv/bin/python benchmarks/pgbench_ratio.py "$@"
        ;;
    bench-mysql)
        ensure_venv
        ensure_servers
        command -v sysbench >/dev/null 2>&1 || apt_install sysbench
        exec .venv/bin/python benchmarks/sysbench_ratio.py "$@"
        ;;
    *)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
        ;;
esac

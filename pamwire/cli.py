"""The `pamwire` command: one subcommand per job, each taking --config.

Exit codes: 0 success, 1 the job failed (a check found problems), 2 usage or
configuration errors.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pamwire import __version__
from pamwire.config import Config, default_config_path, load_config
from pamwire.errors import PamwireError

log = logging.getLogger("pamwire.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
    except PamwireError as exc:
        print(f"pamwire: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pamwire", description="Privileged-access proxy for PostgreSQL."
    )
    parser.add_argument("--version", action="version", version=f"pamwire {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help="configuration file (default: $PAMWIRE_CONFIG or ./pamwire.toml)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("serve", parents=[common], help="run the proxy")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("demo", help="run a throwaway demo setup")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument(
        "--dir",
        type=Path,
        default=Path("pamwire-demo"),
        help="folder for the demo's configuration, persons and audit trail "
        "(default: ./pamwire-demo)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=6432,
        help="pamwire's PostgreSQL port (default 6432)",
    )
    p.add_argument(
        "--mysql-port",
        type=int,
        default=3307,
        help="pamwire's MySQL port (default 3307)",
    )
    p.add_argument(
        "--no-mariadb", action="store_true", help="PostgreSQL only: start no MariaDB"
    )
    p.set_defaults(func=_cmd_demo)

    user = sub.add_parser("user", help="manage the persons who log in to pamwire")
    user_sub = user.add_subparsers(title="user commands", metavar="ACTION")
    p = user_sub.add_parser("add", parents=[common], help="add a person")
    p.add_argument("name")
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    p.set_defaults(func=_cmd_user_add)
    p = user_sub.add_parser("passwd", parents=[common], help="change a password")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(func=_cmd_user_passwd)
    p = user_sub.add_parser("list", parents=[common], help="list persons")
    p.set_defaults(func=_cmd_user_list)
    p = user_sub.add_parser("remove", parents=[common], help="remove a person")
    p.add_argument("name")
    p.set_defaults(func=_cmd_user_remove)

    from pamwire.grants.cli import add_grant_commands

    add_grant_commands(sub, common)

    logp = sub.add_parser("log", help="the audit trail")
    log_sub = logp.add_subparsers(title="log commands", metavar="ACTION")
    p = log_sub.add_parser("search", parents=[common], help="search statement events")
    from pamwire.audit.search import add_search_arguments

    add_search_arguments(p)
    p.set_defaults(func=_cmd_log_search)
    p = log_sub.add_parser(
        "verify", parents=[common], help="check the audit trail for gaps and edits"
    )
    from pamwire.audit.verify import add_verify_arguments

    add_verify_arguments(p)
    p.set_defaults(func=_cmd_log_verify)

    p = log_sub.add_parser(
        "export", parents=[common], help="stream events as JSON lines for a SIEM"
    )
    from pamwire.audit.export import add_export_arguments

    add_export_arguments(p)
    p.set_defaults(func=_cmd_log_export)

    from pamwire.audit.replay import add_session_commands
    from pamwire.evidence.bundle import add_evidence_commands

    add_session_commands(sub, common)
    add_evidence_commands(sub, common)

    rules = sub.add_parser("rules", help="rule files")
    rules_sub = rules.add_subparsers(title="rules commands", metavar="ACTION")
    p = rules_sub.add_parser("check", parents=[common], help="validate rule files")
    p.add_argument(
        "files", nargs="*", help="files or pack:NAME (default: the configured ones)"
    )
    p.set_defaults(func=_cmd_rules_check)
    p = rules_sub.add_parser(
        "test", parents=[common], help="run examples in rule files"
    )
    p.add_argument(
        "files", nargs="*", help="files or pack:NAME (default: the configured ones)"
    )
    p.set_defaults(func=_cmd_rules_test)

    p = rules_sub.add_parser(
        "explain", parents=[common], help="show how the rules decide a statement"
    )
    p.add_argument(
        "--rules",
        dest="files",
        action="append",
        default=[],
        metavar="FILE",
        help="a rule file or pack:NAME; repeat for several (default: the configured)",
    )
    from pamwire.rules.explain import add_explain_arguments

    add_explain_arguments(p)
    p.set_defaults(func=_cmd_rules_explain)

    from pamwire.rules.replay import add_replay_arguments

    p = rules_sub.add_parser(
        "replay",
        parents=[common],
        help="re-decide audited statements with candidate rules",
    )
    add_replay_arguments(p)
    p.set_defaults(func=_cmd_rules_replay)

    cfg = sub.add_parser("config", help="the configuration file")
    cfg_sub = cfg.add_subparsers(title="config commands", metavar="ACTION")
    p = cfg_sub.add_parser("check", parents=[common], help="validate the configuration")
    p.set_defaults(func=_cmd_config_check)
    p = cfg_sub.add_parser(
        "keys", parents=[common], help="list every configuration key"
    )
    p.set_defaults(func=lambda args: print(_describe()) or 0)
    return parser


def _describe() -> str:
    from pamwire.config import describe

    return describe()


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config or default_config_path())


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise PamwireError("the two passwords differ")
    if not password:
        raise PamwireError("empty password")
    return password


# -- commands ---------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    from pamwire.server.app import run

    config = _config(args)
    try:
        run(config)
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pamwire.demo import run_demo

    return run_demo(
        args.dir,
        port=args.port,
        mysql_port=args.mysql_port,
        mariadb=not args.no_mariadb,
    )


def _users(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from pamwire.users import UserStore

    config = _config(args)
    return UserStore(config.resolve(config.users.path))


def _cmd_user_add(args: argparse.Namespace) -> int:
    store = _users(args)
    try:
        store.add(args.name, _read_password(args))
    finally:
        store.close()
    print(f"added {args.name}")
    return 0


def _cmd_user_passwd(args: argparse.Namespace) -> int:
    store = _users(args)
    try:
        store.set_password(args.name, _read_password(args))
    finally:
        store.close()
    print(f"password changed for {args.name}")
    return 0


def _cmd_user_list(args: argparse.Namespace) -> int:
    store = _users(args)
    try:
        for person in store.list():
            state = "disabled" if person.disabled else "active"
            print(f"{person.name}\t{state}")
    finally:
        store.close()
    return 0


def _cmd_user_remove(args: argparse.Namespace) -> int:
    store = _users(args)
    try:
        removed = store.remove(args.name)
    finally:
        store.close()
    if not removed:
        print(f"pamwire: no person named {args.name!r}", file=sys.stderr)
        return 1
    print(f"removed {args.name}")
    return 0


def _cmd_log_search(args: argparse.Namespace) -> int:
    from pamwire.audit.search import run_search
    from pamwire.audit.store import AuditStore

    config = _config(args)
    store = AuditStore(config.resolve(config.audit.path), read_only=True)
    try:
        out = run_search(store, args)
    finally:
        store.close()
    if out:
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


def _cmd_log_export(args: argparse.Namespace) -> int:
    from pamwire.audit.export import run_export

    config = _config(args)
    return run_export(args, config.resolve(config.audit.path), sys.stdout)


def _cmd_log_verify(args: argparse.Namespace) -> int:
    from pamwire.audit.verify import verify_command

    config = _config(args)
    code, text = verify_command(config.resolve(config.audit.path), quiet=args.quiet)
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return code


def _rule_paths(args: argparse.Namespace) -> list[Path]:
    from pamwire.server.app import rule_path

    if args.files:
        return [rule_path(str(entry), None) for entry in args.files]
    config = _config(args)
    return [rule_path(entry, config) for entry in config.rules.files]


def _cmd_rules_check(args: argparse.Namespace) -> int:
    from pamwire.rules.loader import load_rules

    paths = _rule_paths(args)
    ruleset = load_rules(paths)
    print(f"ok: {len(ruleset.rule_ids)} rules in {len(paths)} file(s)")
    return 0


def _cmd_rules_test(args: argparse.Namespace) -> int:
    from pamwire.rules.loader import load_rules, run_examples

    ruleset = load_rules(_rule_paths(args))
    failures = run_examples(ruleset)
    for failure in failures:
        print(f"FAIL {failure}")
    if failures:
        return 1
    print("ok: every example gives its expected verdict")
    return 0


def _cmd_rules_explain(args: argparse.Namespace) -> int:
    from pamwire.rules.explain import run_explain
    from pamwire.rules.loader import load_rules

    ruleset = load_rules(_rule_paths(args))
    print(run_explain(args, ruleset))
    return 0


def _cmd_rules_replay(args: argparse.Namespace) -> int:
    from pamwire.rules.replay import run_replay

    config = _config(args)
    return run_replay(args, None, config.resolve(config.audit.path))


def _cmd_config_check(args: argparse.Namespace) -> int:
    config = _config(args)
    from pamwire.server.app import load_ruleset

    load_ruleset(config)
    print(
        f"ok: {config.path}: {len(config.targets)} target(s), "
        f"{len(config.listeners)} listener(s)"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

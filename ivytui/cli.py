"""Command line: arguments -> options -> the app or a headless command.

Heavy imports (Textual, the Kubernetes client, boto) are done inside the commands that need them,
so that `--help` and errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ivytui import __version__
from ivytui.config import Config, resolve
from ivytui.errors import ConfigError, IvyError

COMMANDS = ("sandbox", "demo", "status", "manifest", "grants", "monitor")


class UsageError(IvyError):
    title = "usage"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _add_target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "cluster", nargs="?", help="the v4 cluster (default: $IVYTUI_CLUSTER, else hippo)"
    )
    p.add_argument("-n", "--namespace", help="namespace (default: the context's namespace)")
    p.add_argument("--flavor", choices=("ivyo", "pgo"), help="the v5 operator (default: ivyo)")
    p.add_argument("--v5-name", help="the v5 cluster's name (default: the v4 cluster's name)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current context)")
    p.add_argument("--config", help="a YAML file with settings and overrides")
    p.add_argument("--interval", type=float, help="seconds between polls (default: 2)")


def _sandbox_up_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--flavor", choices=("ivyo", "pgo"), default="ivyo", help="which v5 operator to play"
    )
    p.add_argument("-n", "--namespace", default="pgo")
    p.add_argument("--cluster", default="hippo")
    p.add_argument(
        "--storage", choices=("s3", "gcs"), default="s3", help="object storage of the repo"
    )
    p.add_argument(
        "--backrest",
        choices=("auto", "pgbackrest", "builtin"),
        default="auto",
        help="archive with real pgBackRest (auto: when installed) or the built-in archiver",
    )
    p.add_argument(
        "--kube-port", type=int, default=0, help="port of the API emulator (default: free)"
    )
    p.add_argument("--s3-port", type=int, default=0, help="port of the S3 server (default: free)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ivytui",
        description="Watch and drive the move of a PostgreSQL/IvorySQL cluster from operator v4 to v5 "
        "through a repo-based standby cluster.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sb = sub.add_parser(
        "sandbox", help="a local rehearsal world on real PostgreSQL, S3 and an API emulator"
    )
    sbsub = sb.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    sb_up = sbsub.add_parser(
        "up", help="start the world in the background and return when it is ready"
    )
    sb_up.add_argument("--dir", required=True, type=Path, help="directory for the world's files")
    _sandbox_up_options(sb_up)
    sb_up.add_argument(
        "--with-standby",
        action="store_true",
        help="also create the v5 standby object (as kubectl apply would) and wait until it replays",
    )
    sb_status = sbsub.add_parser("status", help="say what runs where")
    sb_status.add_argument("--dir", required=True, type=Path)
    sb_status.add_argument("--json", action="store_true", help="print the recorded state as JSON")
    sb_down = sbsub.add_parser("down", help="stop every process the world started")
    sb_down.add_argument("--dir", required=True, type=Path)

    demo = sub.add_parser(
        "demo", help="start a world in a temporary directory and open the console on it"
    )
    _sandbox_up_options(demo)
    demo.add_argument(
        "--fresh",
        action="store_true",
        help="start without the v5 standby (the default creates it, so there is WAL to watch)",
    )
    demo.add_argument(
        "--read-only", action="store_true", help="monitor mode: no key changes anything"
    )
    return parser


def build_console_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ivytui",
        usage="ivytui [CLUSTER] [options]\n       ivytui COMMAND ...",
        description="Watch and drive the move of a PostgreSQL/IvorySQL cluster from operator v4 "
        "to v5 through a repo-based standby cluster.",
        epilog="commands:\n"
        "  status      print one snapshot of the three sources and the runbook (--json)\n"
        "  sandbox     up | status | down: a local rehearsal world on real parts\n"
        "  demo        a rehearsal world in a temporary directory, and the console on it\n"
        "  manifest    print the v5 standby built from the live v4 cluster (YAML)\n"
        "  grants      print the SQL of step 6 for a flavor\n"
        "\nrun `ivytui COMMAND --help` for the options of a command",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ivytui {__version__}")
    _add_target_options(parser)
    parser.add_argument(
        "--read-only",
        action="store_true",
        default=None,
        help="monitor mode: no key changes anything (for watchers; needs only get/list/watch)",
    )
    parser.add_argument(
        "--keymap",
        metavar="FILE",
        help="a YAML file mapping binding ids to keys, e.g. `freeze: F` (default: "
        "$XDG_CONFIG_HOME/ivytui/keymap.yaml, else ~/.config/ivytui/keymap.yaml, if it exists)",
    )
    return parser


def build_status_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ivytui status",
        description="Print one snapshot of the v4 cluster, the repo and the v5 standby with the "
        "runbook's evaluation. Exit 0 when every source answered, 1 when one failed, 2 on bad "
        "input.",
    )
    _add_target_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON (the default is text)")
    return parser


def build_manifest_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ivytui manifest",
        description="Print the v5 standby (the pgBackRest configuration Secret and the cluster) "
        "built from the live v4 cluster, as YAML for GitOps or `kubectl apply -f -`. Secret "
        "values are placeholders unless --include-secrets is given.",
    )
    _add_target_options(parser)
    parser.add_argument(
        "--include-secrets",
        action="store_true",
        help="put the real values of v4's repo Secret into the output (keep it safe)",
    )
    return parser


def build_grants_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ivytui grants",
        description="Print the SQL of step 6: the replication role and its four grants.",
    )
    parser.add_argument("--flavor", choices=("ivyo", "pgo"), default="ivyo")
    parser.add_argument("--role", help="another replication role name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(args_list)
    except (UsageError, ConfigError) as exc:
        print(f"ivytui: {exc}", file=sys.stderr)
        return 2
    except IvyError as exc:
        print(f"ivytui: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ivytui: interrupted", file=sys.stderr)
        return 130


def _config_from(args: argparse.Namespace) -> Config:
    flags = {
        "config": args.config,
        "cluster": args.cluster,
        "namespace": args.namespace,
        "flavor": args.flavor,
        "v5_name": args.v5_name,
        "kubeconfig": args.kubeconfig,
        "context": args.context,
        "interval": args.interval,
        "read_only": getattr(args, "read_only", None),
    }
    return resolve(flags)


def _dispatch(argv: list[str]) -> int:
    first = argv[0] if argv else ""
    if first in ("sandbox", "demo"):
        args = build_parser().parse_args(argv)
        if args.command == "sandbox":
            return _sandbox(args)
        return _demo(args)
    if first == "status":
        return _status(build_status_parser().parse_args(argv[1:]))
    if first == "manifest":
        return _manifest(build_manifest_parser().parse_args(argv[1:]))
    if first == "grants":
        return _grants(build_grants_parser().parse_args(argv[1:]))
    args = build_console_parser().parse_args(argv)
    config = _config_from(args)
    from ivytui.tui.app import run_app

    return run_app(config, keymap=args.keymap)


def _status(args: argparse.Namespace) -> int:
    import asyncio

    config = _config_from(args)
    from ivytui.sources.hub import Hub, view_to_json

    try:
        view = asyncio.run(Hub(config).once())
    except IvyError as exc:
        print(f"ivytui: {exc}", file=sys.stderr)
        return 2
    doc = view_to_json(view)
    failed = [name for name, src in doc.get("sources", {}).items() if not src.get("ok")]
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(_status_text(doc))
    return 1 if failed else 0


def _grants(args: argparse.Namespace) -> int:
    from ivytui.domain.flavor import flavor_named
    from ivytui.domain.sql import grants_sql

    flavor = flavor_named(args.flavor)
    if args.role:
        flavor = flavor.with_overrides(replication_role=args.role)
    print(grants_sql(flavor), end="")
    return 0


def _manifest(args: argparse.Namespace) -> int:
    import asyncio

    from ivytui.domain.manifest import build_standby
    from ivytui.sources.hub import flavor_of
    from ivytui.sources.kube import KubeSource

    config = _config_from(args)
    flavor = flavor_of(config)

    async def build() -> str:
        kube = KubeSource(config, flavor)
        try:
            await kube.list_all()
            v4 = kube.v4_object()
            if v4 is None:
                raise ConfigError(
                    f"v4 cluster {config.cluster} not found in namespace {kube.namespace}"
                )
            secret = await kube.read_secret(f"{config.cluster}-backrest-repo-config")
            manifest = build_standby(
                v4,
                secret,
                flavor=flavor,
                v5_name=config.standby_name,
                namespace=kube.namespace,
                include_secrets=args.include_secrets,
            )
            for warning in manifest.warnings:
                print(f"ivytui: warning: {warning}", file=sys.stderr)
            shown = manifest if args.include_secrets else manifest.redacted()
            return shown.to_yaml()
        finally:
            await kube.close()

    print(asyncio.run(build()), end="")
    return 0


def _status_text(doc: dict[str, object]) -> str:
    lines: list[str] = []
    sources = doc.get("sources", {})
    assert isinstance(sources, dict)
    for name, src in sources.items():
        ok = src.get("ok")
        lines.append(
            f"{name:<5} {'ok' if ok else 'FAILED'}" + ("" if ok else f": {src.get('error')}")
        )
    steps = doc.get("steps", [])
    assert isinstance(steps, list)
    for step in steps:
        lines.append(f"step {step.get('number')} {step.get('title')}: {step.get('state')}")
        for check in step.get("checks", []):
            mark = "ok " if check.get("ok") else "NO "
            lines.append(f"    {mark} {check.get('text')}")
    return "\n".join(lines)


def _up_options(args: argparse.Namespace, *, with_standby: bool) -> object:
    from ivytui.sandbox.control import UpOptions

    return UpOptions(
        flavor=args.flavor,
        namespace=args.namespace,
        cluster=args.cluster,
        storage=args.storage,
        with_standby=with_standby,
        backrest=args.backrest,
        kube_port=args.kube_port,
        s3_port=args.s3_port,
    )


def _sandbox(args: argparse.Namespace) -> int:
    from ivytui.sandbox import control

    directory: Path = args.dir
    if args.action == "up":
        opts = _up_options(args, with_standby=args.with_standby)
        tty = sys.stderr.isatty()

        def progress(stage: str, frac: float) -> None:
            line = f"[{frac * 100:3.0f}%] {stage}"
            if tty:
                print(
                    f"\r\033[K{line}",
                    end="" if stage != "ready" else "\n",
                    file=sys.stderr,
                    flush=True,
                )
            else:
                print(line, file=sys.stderr, flush=True)

        def interrupted(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupted)
        try:
            control.up(directory, opts, on_progress=progress)  # type: ignore[arg-type]
        except KeyboardInterrupt:
            if tty:
                print(file=sys.stderr)
            print("ivytui: interrupted: stopping what was started", file=sys.stderr)
            control.stop_pids(directory.resolve())
            return 130
        except IvyError:
            if tty:
                print(file=sys.stderr)
            raise
        print((directory.resolve() / control.ENV_FILE).read_text(), end="")
        return 0
    if args.action == "status":
        state, rows = control.status(directory)
        if args.json:
            print(json.dumps(state, indent=2))
            return 0 if all(r[2] == "up" for r in rows) else 1
        if state.get("stopped"):
            print(f"the world in {directory.resolve()} is stopped")
            return 1
        print(
            f"world in {directory.resolve()}: flavor {state.get('flavor')}, namespace "
            f"{state.get('namespace')}, cluster {state.get('cluster')}, archiving with "
            f"{state.get('backrest')}, {'ready' if state.get('ready') else 'starting'}"
        )
        width = max(len(r[0]) for r in rows)
        for part, where, up in rows:
            print(f"  {part:<{width}}  {up:<4}  {where}")
        return 0 if all(r[2] == "up" for r in rows) else 1
    if args.action == "down":
        stopped = control.down(directory)
        for what in stopped:
            print(f"stopped {what}")
        print(f"nothing of the world in {directory.resolve()} is running or listening")
        return 0
    raise UsageError(f"unknown sandbox action {args.action}")


def _demo(args: argparse.Namespace) -> int:
    from ivytui.sandbox import control

    directory = Path(tempfile.mkdtemp(prefix="ivytui-demo-"))
    opts = _up_options(args, with_standby=not args.fresh)
    proc = control.spawn(directory, opts, parent_pid=os.getpid())  # type: ignore[arg-type]
    try:
        from ivytui.tui.demo import run_demo

        return run_demo(directory, proc, read_only=args.read_only)
    finally:
        try:
            control.stop_pids(directory)
        finally:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

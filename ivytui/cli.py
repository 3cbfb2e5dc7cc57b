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
from ivytui.errors import IvyError

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
    parser.add_argument("--version", action="version", version=f"ivytui {__version__}")
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


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(args_list)
    except IvyError as exc:
        print(f"ivytui: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print("ivytui: interrupted", file=sys.stderr)
        return 130


def _dispatch(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "sandbox":
        return _sandbox(args)
    if args.command == "demo":
        return _demo(args)
    parser.print_help()
    return 0


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
